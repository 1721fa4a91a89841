"""Kubeflow Pipelines v2 and Vertex AI: compile the pipeline, submit it, schedule it.

`compile_pipeline` is TFX's KubeflowV2DagRunner, with typed resolver queries
(`KubeflowV2DagRunner` below), over the same `create_pipeline`. Submitting and scheduling build
their requests first (tested here, without a cloud), then make one thin client call.
"""
import contextlib
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

import yaml
from tfx import v1 as tfx
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution.strategies import latest_blessed_model_strategy
from tfx.dsl.io import fileio
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.types import standard_artifacts
from tfx.utils import deprecation_utils

from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.config import BonsaiConfig
from tfx_bonsai.pipeline.config import ConfigError
from tfx_bonsai.pipeline.pipeline import create_pipeline

# Fields of a 5-field cron line (Vertex AI / unix): name, low, high.
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))


class SubmitError(RuntimeError):
  """A submission that could not be made, with the reason (never a credential)."""


def check_remote(config: BonsaiConfig, allow_local: bool = False) -> None:
  """Raises ConfigError naming what a Kubeflow / Vertex run is missing.

  `allow_local` accepts local directories as locations, for launching the compiled job on this
  machine (`vertex_local`, which bind-mounts them into the containers at the same paths).
  """
  kind = config.runner.type
  if kind not in ("kubeflow", "vertex"):
    raise ConfigError(f"runner.type: must be 'kubeflow' or 'vertex' to compile, got '{kind}'")
  if not config.runner.image:
    raise ConfigError("runner.image: must be set to the pipeline image built from the Dockerfile "
                      "(e.g. us-docker.pkg.dev/PROJECT/REPO/tfx-bonsai:TAG)")
  if kind == "vertex":
    for key in ("project", "region"):
      if not getattr(config.runner, key):
        raise ConfigError(f"runner.{key}: must be set for runner.type 'vertex'")
  if allow_local:
    return
  for key, value in (("pipeline_root", config.pipeline_root),
                     ("push.destination", config.push.destination),
                     ("data.path", config.data.path)):
    if "://" not in value:
      raise ConfigError(f"{key}: must be a remote URI (gs://...) for runner.type '{kind}': "
                        f"the pipeline runs in containers that cannot see '{value}'")
  if config.data.embedded:
    raise ConfigError("data.embedded: must be '' for remote runs; export the data to data.path "
                      "first (e.g. with a local `bonsai run` pointed at it)")


class KubeflowV2DagRunner(tfx.orchestration.experimental.KubeflowV2DagRunner):
  """TFX's KubeflowV2DagRunner whose latest-blessed-model queries ask for their channels' types.

  TFX's compiler writes `schema_title="tfx.ModelBlessing"` and `"tfx.Model"` into every
  LatestBlessedModelStrategy resolver, whatever its channels' types (kubeflow/v2/step_builder.py):
  the gate's production resolver (a CompressionBlessing channel) would get TFX Evaluator's
  blessing and its dense SavedModel. This runner writes each channel's type into its query,
  so a resolver finds on Vertex what it finds locally. Use it in place of TFX's to compile a
  pipeline wired by hand with CompressionEvaluator.
  """

  def run(self, pipeline: tfx.dsl.Pipeline, parameter_values: Optional[Dict[str, Any]] = None,
          write_out: Optional[bool] = True) -> Dict[str, Any]:
    job = typed_resolver_queries(
        pipeline, super().run(pipeline, parameter_values, write_out=False))
    if write_out:
      path = os.path.join(self._output_dir, self._output_filename)
      fileio.makedirs(self._output_dir)
      with fileio.open(path, "w") as f:
        json.dump(job, f, sort_keys=True)
    return job


_LATEST_BLESSED = latest_blessed_model_strategy.LatestBlessedModelStrategy


def schema_title(artifact_type) -> str:
  """The schema title TFX's compiler gives an artifact type (`tfx.Model`, or a custom TYPE_NAME)."""
  return yaml.safe_load(compiler_utils.get_artifact_schema(artifact_type))["title"]


def typed_resolver_queries(pipeline: tfx.dsl.Pipeline, job: Dict[str, Any]) -> Dict[str, Any]:
  """The compiled `job` with each LatestBlessedModelStrategy resolver's two queries asking for
  its own channels' types (schema titles) instead of TFX's fixed ModelBlessing and Model."""
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  for node in pipeline.components:
    if not isinstance(node, resolver.Resolver) or deprecation_utils.get_first_nondeprecated_class(
        node.exec_properties[resolver.RESOLVER_STRATEGY_CLASS]) is not _LATEST_BLESSED:
      continue
    for key, channel in node.inputs.items():
      part = ("model-blessing-resolver"
              if issubclass(channel.type, standard_artifacts.ModelBlessing) else "model-resolver")
      queries = executors[f"{node.id}-{part}_executor"]["resolver"]["outputArtifactQueries"]
      queries[key]["filter"] = re.sub(r'schema_title="[^"]*"',
                                      f'schema_title="{schema_title(channel.type)}"',
                                      queries[key]["filter"])
  return job


def compile_pipeline(config: BonsaiConfig, output_path: str,
                     allow_local: bool = False,
                     runtime_parameters: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  """Writes the KFP v2 pipeline job JSON to `output_path` and returns it as a dict.

  `runtime_parameters`: YAML keys (config.runtime_parameter_keys()) that become pipeline
  parameters, named by config.runtime_parameter_name and defaulting to the config's value;
  default: the config's `runner.runtime_parameters`.
  """
  check_remote(config, allow_local)
  if runtime_parameters is None:
    runtime_parameters = config.runner.runtime_parameters
  runner = KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=config.runner.image),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  runner.run(create_pipeline(config, runtime_parameters=runtime_parameters), write_out=True,
             parameter_values=config_lib.runtime_parameter_defaults(config, list(runtime_parameters)))
  with open(output_path) as f:
    return json.load(f)


def validate_cron(cron: str) -> str:
  """The cron line if valid (5 fields, optional `TZ=Area/City ` prefix); else ConfigError."""
  line = cron.strip()
  tz = re.match(r"^(TZ|CRON_TZ)=([A-Za-z_]+(?:/[A-Za-z0-9_+\-]+)*)\s+", line)
  fields = (line[tz.end():] if tz else line).split()
  if len(fields) != 5:
    raise ConfigError(f"--cron: must have 5 fields (minute hour day-of-month month day-of-week), "
                      f"got {len(fields)} in '{cron}'")
  for text, (name, low, high) in zip(fields, _CRON_FIELDS):
    for part in text.split(","):
      match = re.fullmatch(r"(\*|\d+(?:-\d+)?)(?:/(\d+))?", part)
      if not match:
        raise ConfigError(f"--cron: {name} field '{text}' is not a number, range, list or step")
      numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
      if any(not low <= n <= high for n in numbers) or (len(numbers) == 2 and numbers[0] > numbers[1]):
        raise ConfigError(f"--cron: {name} field '{text}' must be within {low}-{high}")
      if match.group(2) is not None and int(match.group(2)) < 1:
        raise ConfigError(f"--cron: {name} step in '{text}' must be >= 1")
  return line


def _parent(config: BonsaiConfig) -> str:
  return f"projects/{config.runner.project}/locations/{config.runner.region}"


def runtime_parameters(job: Dict[str, Any]) -> Dict[str, str]:
  """The compiled job's runtime parameters: name -> KFP type (INT, DOUBLE, STRING)."""
  definitions = job["pipelineSpec"]["root"].get("inputDefinitions", {}).get("parameters", {})
  return {name: d.get("type") or d.get("parameterType", "STRING") for name, d in definitions.items()}


def parse_parameters(job: Dict[str, Any], assignments: List[str]) -> Dict[str, Any]:
  """`--param NAME=VALUE` values, typed by the job's runtime parameters; else ConfigError.

  NAME is the config key (`gate.max_accuracy_drop`) or the compiled name
  (`gate_max_accuracy_drop`).
  """
  kinds = runtime_parameters(job)
  values = {}
  for assignment in assignments:
    key, sep, text = assignment.partition("=")
    if not sep:
      raise ConfigError(f"--param {assignment}: expected NAME=VALUE")
    name = config_lib.runtime_parameter_name(key)
    if name not in kinds:
      allowed = ", ".join(sorted(kinds)) or "none: set runner.runtime_parameters"
      raise ConfigError(f"--param {key}: not a runtime parameter of this pipeline "
                        f"(allowed: {allowed})")
    kind = kinds[name]
    try:
      values[name] = (int(text) if kind in ("INT", "NUMBER_INTEGER") else
                      float(text) if kind in ("DOUBLE", "NUMBER_DOUBLE") else text)
    except ValueError:
      raise ConfigError(f"--param {key}: must be a number ({kind}), got '{text}'") from None
  return values


def vertex_pipeline_job(config: BonsaiConfig, job_path: str,
                        parameter_values: Optional[Dict[str, Any]] = None,
                        enable_caching: Optional[bool] = None, credentials=None):
  """The `google.cloud.aiplatform.PipelineJob` of a compiled job file (no call is made)."""
  from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  with _vertex_credentials():
    return aiplatform.PipelineJob(
        display_name=config.pipeline_name, template_path=job_path,
        pipeline_root=config.pipeline_root, parameter_values=parameter_values or None,
        enable_caching=enable_caching, labels=dict(config.runner.labels) or None,
        encryption_spec_key_name=config.runner.encryption_key or None,
        project=config.runner.project, location=config.runner.region, credentials=credentials)


@contextlib.contextmanager
def _vertex_credentials():
  """Turns google-auth's missing-credentials error into a SubmitError that says what to do."""
  import google.auth.exceptions  # pylint: disable=g-import-not-at-top
  try:
    yield
  except google.auth.exceptions.DefaultCredentialsError as e:
    raise _credentials_error(e) from e


def vertex_run_options(config: BonsaiConfig) -> Dict[str, Any]:
  """Keyword arguments of PipelineJob.submit / create_schedule beyond the job itself."""
  return {"service_account": config.runner.service_account or None,
          "network": config.runner.network or None}


def vertex_request(config: BonsaiConfig, pipeline_job, cron: str = "") -> Dict[str, Any]:
  """What submit (or schedule, with `cron`) sends to Vertex AI, as a dict."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  resource = pipeline_job._gca_resource  # pylint: disable=protected-access
  body = json_format.MessageToDict(type(resource).pb(resource))
  options = vertex_run_options(config)
  if options["service_account"]:
    body["serviceAccount"] = options["service_account"]
  if options["network"]:
    body["network"] = options["network"]
  if cron:
    return {"parent": _parent(config), "schedule": {
        "displayName": f"{config.pipeline_name}-schedule", "cron": validate_cron(cron),
        "maxConcurrentRunCount": 1,
        "createPipelineJobRequest": {"parent": _parent(config), "pipelineJob": body}}}
  request = {"parent": _parent(config), "pipelineJob": body}
  if config.runner.experiment:
    request["experiment"] = config.runner.experiment
  return request


def kfp_submit_arguments(config: BonsaiConfig, spec_path: str,
                         parameter_values: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """Keyword arguments of kfp.Client.create_run_from_pipeline_package."""
  return {"pipeline_file": spec_path, "arguments": dict(parameter_values or {}),
          "run_name": config.pipeline_name,
          "experiment_name": config.pipeline_name, "pipeline_root": config.pipeline_root,
          "enable_caching": config.runner.enable_cache,
          "service_account": config.runner.service_account or None}


def kfp_schedule_arguments(config: BonsaiConfig, spec_path: str, cron: str, experiment_id: str,
                           parameter_values: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
  """Keyword arguments of kfp.Client.create_recurring_run (KFP cron has a seconds field)."""
  line = validate_cron(cron)
  if line.startswith(("TZ=", "CRON_TZ=")):
    raise ConfigError("--cron: KFP recurring runs do not take a TZ= prefix; the cluster's time zone applies")
  return {"experiment_id": experiment_id, "job_name": f"{config.pipeline_name}-schedule",
          "cron_expression": "0 " + line, "max_concurrency": 1, "no_catchup": True,
          "pipeline_package_path": spec_path, "pipeline_root": config.pipeline_root,
          "enable_caching": config.runner.enable_cache, "params": dict(parameter_values or {})}


def kfp_pipeline_spec_file(job: Dict[str, Any], job_path: str) -> str:
  """KFP's client takes the bare PipelineSpec: writes it beside the job JSON; returns its path."""
  path = os.path.splitext(job_path)[0] + ".pipeline_spec.json"
  with open(path, "w") as f:
    json.dump(job["pipelineSpec"], f, indent=2, sort_keys=True)
  return path


def describe(request: Dict[str, Any]) -> Dict[str, Any]:
  """A request for printing, each (large) pipeline spec replaced by its task names."""
  def shrink(node):
    if isinstance(node, dict):
      return {k: ({"tasks": sorted(v.get("root", {}).get("dag", {}).get("tasks", {}))}
                  if k == "pipelineSpec" else shrink(v)) for k, v in node.items()}
    return [shrink(v) for v in node] if isinstance(node, list) else node

  return shrink(request)


def _credentials_error(e: Exception) -> SubmitError:
  return SubmitError("no Google Cloud credentials found: run `gcloud auth application-default "
                     "login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
                     f"({type(e).__name__})")


def _kfp_client(config: BonsaiConfig):
  if not config.runner.kfp_host:
    raise ConfigError("runner.kfp_host: must be set for runner.type 'kubeflow' (the KFP API endpoint)")
  import kfp  # pylint: disable=g-import-not-at-top
  return kfp.Client(host=config.runner.kfp_host)


def submit(config: BonsaiConfig, job: Dict[str, Any], job_path: str,
           parameter_values: Optional[Dict[str, Any]] = None) -> str:
  """Starts one run; returns the run's resource name (Vertex) or id (KFP)."""
  if config.runner.type == "vertex":
    pipeline_job = vertex_pipeline_job(config, job_path, parameter_values)
    with _vertex_credentials():
      pipeline_job.submit(experiment=config.runner.experiment or None,
                          **vertex_run_options(config))
    return pipeline_job.resource_name
  client = _kfp_client(config)
  arguments = kfp_submit_arguments(config, kfp_pipeline_spec_file(job, job_path),
                                   parameter_values)
  return client.create_run_from_pipeline_package(**arguments).run_id


def schedule(config: BonsaiConfig, job: Dict[str, Any], job_path: str, cron: str,
             parameter_values: Optional[Dict[str, Any]] = None) -> str:
  """Creates the recurring run; returns its resource name (Vertex) or id (KFP)."""
  validate_cron(cron)
  if config.runner.type == "vertex":
    pipeline_job = vertex_pipeline_job(config, job_path, parameter_values)
    with _vertex_credentials():
      created = pipeline_job.create_schedule(
          cron=cron, display_name=f"{config.pipeline_name}-schedule",
          max_concurrent_run_count=1, **vertex_run_options(config))
    return created.resource_name
  client = _kfp_client(config)
  experiment = client.create_experiment(config.pipeline_name)
  arguments = kfp_schedule_arguments(config, kfp_pipeline_spec_file(job, job_path), cron,
                                     experiment.experiment_id, parameter_values)
  return client.create_recurring_run(**arguments).recurring_run_id
