"""Compile for KFP v2 / Vertex AI, and the submit / schedule requests, tested at the boundary."""
import importlib
import json
import os

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tfx_bonsai.pipeline import cli
from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.runners import kubeflow

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERTEX = os.path.join(REPO, "configs", "vertex.yaml")
IMAGE = "us-central1-docker.pkg.dev/p/bonsai/tfx-bonsai:0.2.0"
COMPONENTS = ["ImportExampleGen", "StatisticsGen", "SchemaGen", "Trainer", "PruneTrainer",
              "SparsityValidator", "TFLiteConverter", "CompressionEvaluator", "Pusher"]


def _config(*overrides):
  return config_lib.load(VERTEX, ["runner.project=p", f"runner.image={IMAGE}",
                                  "pruning.target_sparsity=0.93", *overrides])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("kfp") / "pipeline.json")
  return kubeflow.compile_pipeline(_config(), path), path


def test_compiled_json_is_a_kfp_pipeline_spec_naming_every_component(compiled):
  job, _ = compiled
  spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec(),
                               ignore_unknown_fields=False)
  tasks = set(spec.root.dag.tasks)
  assert set(COMPONENTS) <= tasks
  assert any("latest_blessed_model_resolver" in t for t in tasks)
  assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://YOUR_BUCKET/bonsai/pipeline"


def test_every_executor_runs_our_image_and_is_importable_from_the_package(compiled):
  job, _ = compiled
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  containers = {k: v["container"] for k, v in executors.items() if "container" in v}
  assert len(containers) >= len(COMPONENTS)
  for name, container in containers.items():
    assert container["image"] == IMAGE, name
    assert container["command"][-1] == "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"
    args = container["args"]
    path = args[args.index("--executor_class_path") + 1]
    module, cls = path.rsplit(".", 1)
    assert hasattr(importlib.import_module(module), cls), path  # no files outside the package


def test_runtime_parameters_and_beam_args_reach_the_components(compiled):
  job, _ = compiled
  tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
  prune = tasks["PruneTrainer"]["inputs"]["parameters"]
  assert prune["target_sparsity"]["runtimeValue"]["constantValue"]["doubleValue"] == 0.93
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  for beam_component in ("ImportExampleGen", "StatisticsGen", "CompressionEvaluator"):
    args = executors[f"{beam_component}_executor"]["container"]["args"]
    assert "--runner=DataflowRunner" in args and "--region=us-central1" in args, beam_component


def test_production_lookup_matches_only_the_gates_blessings(compiled):
  job, _ = compiled
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  query = executors["latest_blessed_model_resolver-model-blessing-resolver_executor"]
  blessing_filter = query["resolver"]["outputArtifactQueries"]["model_blessing"]["filter"]
  assert blessing_filter.startswith('schema_title="tfx_bonsai.CompressionBlessing" AND')
  assert "metadata.blessed.number_value=1" in blessing_filter
  model = executors["latest_blessed_model_resolver-model-resolver_executor"]
  assert model["resolver"]["outputArtifactQueries"]["model"]["filter"].startswith(
      'schema_title="tfx.Model" AND')
  def title(component):
    kind = job["pipelineSpec"]["components"][component]["outputDefinitions"]["artifacts"]["blessing"]["artifactType"]
    return kind.get("schemaTitle") or kind["instanceSchema"].split("\n")[0].split(": ")[1]

  assert title("CompressionEvaluator") == "tfx_bonsai.CompressionBlessing"
  assert title("SparsityValidator") == "tfx_bonsai.SparsityBlessing"


def test_tfxs_own_compiler_would_query_the_evaluators_blessing_type(tmp_path):
  # Why compile_pipeline uses our runner: TFX's writes tfx.ModelBlessing whatever the channel.
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  from tfx_bonsai.pipeline import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  stock = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=IMAGE),
      output_dir=str(tmp_path), output_filename="stock.json")
  job = stock.run(pipeline_lib.create_pipeline(_config()), write_out=False)
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  query = executors["latest_blessed_model_resolver-model-blessing-resolver_executor"]
  assert query["resolver"]["outputArtifactQueries"]["model_blessing"]["filter"].startswith(
      'schema_title="tfx.ModelBlessing"')
  fixed = kubeflow.typed_resolver_queries(pipeline_lib.create_pipeline(_config()), job)
  query = fixed["pipelineSpec"]["deploymentSpec"]["executors"][
      "latest_blessed_model_resolver-model-blessing-resolver_executor"]
  assert query["resolver"]["outputArtifactQueries"]["model_blessing"]["filter"].startswith(
      'schema_title="tfx_bonsai.CompressionBlessing"')


def test_compiling_twice_gives_the_same_json(compiled, tmp_path):
  _, first = compiled
  second = str(tmp_path / "again.json")
  kubeflow.compile_pipeline(_config(), second)
  assert open(first, "rb").read() == open(second, "rb").read()


@pytest.mark.parametrize("override,message", [
    ("runner.project=", r"runner.project: must be set for runner.type 'vertex'"),
    ("runner.region=", r"runner.region: must be set for runner.type 'vertex'"),
    ("runner.image=", r"runner.image: must be set"),
    ("pipeline_root=/tmp/local/root", r"pipeline_root: must be a remote URI"),
    ("data.embedded=digits", r"data.embedded: must be '' for remote runs"),
    ("runner.type=local", r"runner.type: must be 'kubeflow' or 'vertex'"),
])
def test_incomplete_remote_config_fails_before_compiling(override, message, tmp_path):
  path = tmp_path / "p.json"
  with pytest.raises(config_lib.ConfigError, match=message):
    kubeflow.compile_pipeline(_config(override), str(path))
  assert not path.exists()


def _pipeline_job(config, path, parameters=None):
  from google.auth import credentials as auth_credentials  # pylint: disable=g-import-not-at-top
  return kubeflow.vertex_pipeline_job(config, path, parameters,
                                      credentials=auth_credentials.AnonymousCredentials())


VERTEX_OPTIONS = ["runner.labels={team: vision, cost-center: ml-42}",
                  "runner.network=projects/123/global/networks/ml-vpc",
                  "runner.encryption_key=projects/p/locations/us-central1/keyRings/r/cryptoKeys/k",
                  "runner.experiment=bonsai-refresh"]


def test_vertex_submit_request_through_aiplatform_pipeline_job(compiled):
  _, path = compiled
  config = _config(*VERTEX_OPTIONS)
  request = kubeflow.vertex_request(config, _pipeline_job(config, path))
  assert request["parent"] == "projects/p/locations/us-central1"
  job = request["pipelineJob"]
  assert job["serviceAccount"] == "bonsai-runner@YOUR_PROJECT.iam.gserviceaccount.com"
  assert job["network"] == "projects/123/global/networks/ml-vpc"
  assert job["encryptionSpec"]["kmsKeyName"].endswith("/cryptoKeys/k")
  assert job["labels"]["team"] == "vision" and job["labels"]["cost-center"] == "ml-42"
  assert request["experiment"] == "bonsai-refresh"
  assert set(COMPONENTS) <= set(job["pipelineSpec"]["root"]["dag"]["tasks"])
  assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://YOUR_BUCKET/bonsai/pipeline"


def test_vertex_schedule_request(compiled):
  _, path = compiled
  request = kubeflow.vertex_request(_config(), _pipeline_job(_config(), path),
                                    "TZ=Europe/Paris 0 3 * * 1")
  assert request["parent"] == "projects/p/locations/us-central1"
  assert request["schedule"]["cron"] == "TZ=Europe/Paris 0 3 * * 1"
  assert request["schedule"]["maxConcurrentRunCount"] == 1
  assert request["schedule"]["createPipelineJobRequest"]["pipelineJob"]["displayName"] == "bonsai-digits"


def test_per_component_resources_reach_the_compiled_container(tmp_path):
  config = _config("runner.resources={PruneTrainer: {cpu: 8, memory_gb: 32, "
                   "accelerator: NVIDIA_TESLA_T4, accelerator_count: 1}, "
                   "CompressionEvaluator: {cpu: 4}}")
  job = kubeflow.compile_pipeline(config, str(tmp_path / "p.json"))
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  prune = executors["PruneTrainer_executor"]["container"]["resources"]
  assert prune["cpuLimit"] == 8 and prune["memoryLimit"] == 32
  assert prune["resourceCpuLimit"] == "8" and prune["resourceMemoryLimit"] == "32G"
  assert prune["accelerator"]["type"] == "NVIDIA_TESLA_T4" and prune["accelerator"]["count"] == "1"
  assert executors["CompressionEvaluator_executor"]["container"]["resources"]["cpuLimit"] == 4
  assert "resources" not in executors["Trainer_executor"]["container"]


@pytest.mark.parametrize("override,message", [
    ("runner.resources={PruneTrainr: {cpu: 8}}",
     r"runner.resources.PruneTrainr: not a component .*did you mean 'PruneTrainer'"),
    ("runner.resources={PruneTrainer: {cpu: -1}}", r"runner.resources.PruneTrainer: cpu and memory_gb must be >= 0"),
    ("runner.resources={PruneTrainer: {accelerator: NVIDIA_L4}}",
     r"runner.resources.PruneTrainer: accelerator and accelerator_count go together"),
    ("runner.labels={Team: x}", r"runner.labels.Team: a label key must start with a lowercase"),
    ("runner.encryption_key=my-key", r"runner.encryption_key: must be a Cloud KMS key name"),
    ("runner.network=ml-vpc", r"runner.network: must be projects/PROJECT_NUMBER/global/networks/NAME"),
])
def test_bad_vertex_options_are_named(override, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    _config(override)


def test_param_must_name_a_runtime_parameter(compiled):
  job, _ = compiled
  with pytest.raises(config_lib.ConfigError, match=r"--param gate.max_accuracy_drop: not a runtime "
                                                   r"parameter of this pipeline"):
    kubeflow.parse_parameters(job, ["gate.max_accuracy_drop=0.02"])
  with pytest.raises(config_lib.ConfigError, match=r"--param x: expected NAME=VALUE"):
    kubeflow.parse_parameters(job, ["x"])


def test_kfp_arguments(compiled):
  job, path = compiled
  spec_path = kubeflow.kfp_pipeline_spec_file(job, path)
  json_format.ParseDict(json.load(open(spec_path)), pipeline_spec_pb2.PipelineSpec())
  args = kubeflow.kfp_schedule_arguments(_config("runner.type=kubeflow"), spec_path, "30 2 * * *", "e1")
  assert args["cron_expression"] == "0 30 2 * * *"  # KFP's cron has seconds first
  assert args["pipeline_package_path"] == spec_path and args["max_concurrency"] == 1


@pytest.mark.parametrize("cron,message", [
    ("0 3 * *", r"must have 5 fields .* got 4"),
    ("61 3 * * 1", r"minute field '61' must be within 0-59"),
    ("0 24 * * 1", r"hour field '24' must be within 0-23"),
    ("0 3 0 * 1", r"day of month field '0' must be within 1-31"),
    ("0 3 * 13 1", r"month field '13' must be within 1-12"),
    ("0 3 * * mon", r"day of week field 'mon' is not a number"),
    ("0 5-3 * * *", r"hour field '5-3' must be within 0-23"),
    ("*/0 * * * *", r"minute step in '\*/0' must be >= 1"),
])
def test_invalid_cron_is_named(cron, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    kubeflow.validate_cron(cron)


@pytest.mark.parametrize("cron", ["0 3 * * 1", "*/15 0-6,22-23 1,15 * 1-5", "TZ=America/New_York 0 3 * * 7"])
def test_valid_cron(cron):
  assert kubeflow.validate_cron(cron) == cron


def test_missing_credentials_are_reported_clearly(compiled, monkeypatch, capsys, tmp_path):
  # A credentials file that does not exist fails google-auth at once, without probing any server.
  monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
  monkeypatch.setenv("NO_GCE_CHECK", "True")
  code = cli.main(["submit", "--config", VERTEX, "--set", "runner.project=p", "--set",
                   f"runner.image={IMAGE}", "--output", str(tmp_path / "p.json")])
  err = capsys.readouterr().err
  assert code == 1
  assert "no Google Cloud credentials found" in err and "gcloud auth application-default login" in err


def test_dry_run_prints_the_request_without_secrets(capsys, tmp_path, monkeypatch):
  monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
  monkeypatch.setenv("NO_GCE_CHECK", "True")
  code = cli.main(["schedule", "--config", VERTEX, "--set", "runner.project=p", "--set",
                   f"runner.image={IMAGE}", "--cron", "0 3 * * 1", "--dry-run",
                   "--output", str(tmp_path / "p.json")])
  out = capsys.readouterr().out
  assert code == 0
  request = json.loads(out)
  assert request["schedule"]["cron"] == "0 3 * * 1"
  assert "PruneTrainer" in request["schedule"]["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]["tasks"]
  assert request["schedule"]["createPipelineJobRequest"]["pipelineJob"]["serviceAccount"]
  assert not any(word in out.lower() for word in ("private_key", "token", "secret"))
