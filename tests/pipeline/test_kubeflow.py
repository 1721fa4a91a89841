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
IMAGE = "us-central1-docker.pkg.dev/p/bonsai/tfx-bonsai:0.1.0"
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
  assert 'schema_title="tfx.ModelBlessing"' in query["resolver"]["outputArtifactQueries"]["model_blessing"]["filter"]
  def title(component):
    kind = job["pipelineSpec"]["components"][component]["outputDefinitions"]["artifacts"]["blessing"]["artifactType"]
    return kind.get("schemaTitle") or kind["instanceSchema"].split("\n")[0].split(": ")[1]

  assert title("CompressionEvaluator") == "tfx.ModelBlessing"
  assert title("SparsityValidator") == "tfx_bonsai.SparsityBlessing"


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


def test_vertex_submit_request(compiled):
  job, _ = compiled
  request = kubeflow.vertex_submit_request(_config(), job)
  assert request.parent == "projects/p/locations/us-central1"
  assert request.pipeline_job.service_account == "bonsai-runner@YOUR_PROJECT.iam.gserviceaccount.com"
  assert set(COMPONENTS) <= set(request.pipeline_job.pipeline_spec["root"]["dag"]["tasks"])
  assert request.pipeline_job.runtime_config.gcs_output_directory.startswith("gs://")


def test_vertex_schedule_request(compiled):
  job, _ = compiled
  request = kubeflow.vertex_schedule_request(_config(), job, "TZ=Europe/Paris 0 3 * * 1")
  assert request.parent == "projects/p/locations/us-central1"
  assert request.schedule.cron == "TZ=Europe/Paris 0 3 * * 1"
  assert request.schedule.max_concurrent_run_count == 1
  assert request.schedule.create_pipeline_job_request.pipeline_job.display_name == "bonsai-digits"


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
  assert not any(word in out.lower() for word in ("private_key", "token", "secret"))
