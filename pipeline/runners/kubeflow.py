"""Kubeflow Pipelines v2 and Vertex AI: compile the pipeline, submit it, schedule it.

`compile_pipeline` is TFX's KubeflowV2DagRunner over the same `create_pipeline`. Submitting
and scheduling build their requests first (tested here, without a cloud), then make one
thin client call.
"""
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence

from tfx import v1 as tfx

from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.config import BonsaiConfig
from tfx_bonsai.pipeline.config import ConfigError
from tfx_bonsai.pipeline.pipeline import create_pipeline

# Fields of a 5-field cron line (Vertex AI / unix): name, low, high.
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
                ("day of week", 0, 7))


class SubmitError(RuntimeError):
  """A submission that could not be made, with the reason (never a credential)."""


def check_remote(config: BonsaiConfig) -> None:
  """Raises ConfigError naming what a Kubeflow / Vertex run is missing."""
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
  for key, value in (("pipeline_root", config.pipeline_root),
                     ("push.destination", config.push.destination),
                     ("data.path", config.data.path)):
    if "://" not in value:
      raise ConfigError(f"{key}: must be a remote URI (gs://...) for runner.type '{kind}': "
                        f"the pipeline runs in containers that cannot see '{value}'")
  if config.data.embedded:
    raise ConfigError("data.embedded: must be '' for remote runs; export the data to data.path "
                      "first (e.g. with a local `bonsai run` pointed at it)")


def compile_pipeline(config: BonsaiConfig, output_path: str,
                     runtime_parameters: Sequence[str] = ()) -> Dict[str, Any]:
  """Writes the KFP v2 pipeline job JSON to `output_path` and returns it as a dict.

  `runtime_parameters`: YAML keys (config.runtime_parameter_keys()) that become pipeline
  parameters, named by config.runtime_parameter_name and defaulting to the config's value.
  """
  check_remote(config)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
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


def vertex_pipeline_job(config: BonsaiConfig, job: Dict[str, Any],
                        enable_caching: Optional[bool] = None):
  """The Vertex AI `PipelineJob` proto for a compiled pipeline job dict."""
  from google.cloud import aiplatform_v1  # pylint: disable=g-import-not-at-top
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  body = dict(job)
  if enable_caching is not None:
    _set_caching(body["pipelineSpec"], enable_caching)
  pipeline_job = aiplatform_v1.PipelineJob()
  json_format.ParseDict(body, aiplatform_v1.PipelineJob.pb(pipeline_job), ignore_unknown_fields=True)
  if config.runner.service_account:
    pipeline_job.service_account = config.runner.service_account
  return pipeline_job


def _set_caching(spec: Dict[str, Any], enable: bool) -> None:
  for task in spec["root"]["dag"]["tasks"].values():
    task.setdefault("cachingOptions", {})["enableCache"] = enable


def vertex_submit_request(config: BonsaiConfig, job: Dict[str, Any], job_id: str = ""):
  from google.cloud import aiplatform_v1  # pylint: disable=g-import-not-at-top
  return aiplatform_v1.CreatePipelineJobRequest(
      parent=_parent(config), pipeline_job=vertex_pipeline_job(config, job),
      pipeline_job_id=job_id)


def vertex_schedule_request(config: BonsaiConfig, job: Dict[str, Any], cron: str,
                            display_name: str = ""):
  from google.cloud import aiplatform_v1  # pylint: disable=g-import-not-at-top
  schedule = aiplatform_v1.Schedule(
      display_name=display_name or f"{config.pipeline_name}-schedule",
      cron=validate_cron(cron), max_concurrent_run_count=1,
      create_pipeline_job_request=aiplatform_v1.CreatePipelineJobRequest(
          parent=_parent(config), pipeline_job=vertex_pipeline_job(config, job)))
  return aiplatform_v1.CreateScheduleRequest(parent=_parent(config), schedule=schedule)


def kfp_submit_arguments(config: BonsaiConfig, spec_path: str) -> Dict[str, Any]:
  """Keyword arguments of kfp.Client.create_run_from_pipeline_package."""
  return {"pipeline_file": spec_path, "arguments": {}, "run_name": config.pipeline_name,
          "experiment_name": config.pipeline_name, "pipeline_root": config.pipeline_root,
          "enable_caching": config.runner.enable_cache,
          "service_account": config.runner.service_account or None}


def kfp_schedule_arguments(config: BonsaiConfig, spec_path: str, cron: str,
                           experiment_id: str) -> Dict[str, Any]:
  """Keyword arguments of kfp.Client.create_recurring_run (KFP cron has a seconds field)."""
  line = validate_cron(cron)
  if line.startswith(("TZ=", "CRON_TZ=")):
    raise ConfigError("--cron: KFP recurring runs do not take a TZ= prefix; the cluster's time zone applies")
  return {"experiment_id": experiment_id, "job_name": f"{config.pipeline_name}-schedule",
          "cron_expression": "0 " + line, "max_concurrency": 1, "no_catchup": True,
          "pipeline_package_path": spec_path, "pipeline_root": config.pipeline_root,
          "enable_caching": config.runner.enable_cache}


def kfp_pipeline_spec_file(job: Dict[str, Any], job_path: str) -> str:
  """KFP's client takes the bare PipelineSpec: writes it beside the job JSON; returns its path."""
  path = os.path.splitext(job_path)[0] + ".pipeline_spec.json"
  with open(path, "w") as f:
    json.dump(job["pipelineSpec"], f, indent=2, sort_keys=True)
  return path


def describe(request) -> Dict[str, Any]:
  """A request as a dict for printing, each (large) pipeline spec replaced by its task names."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  data = json_format.MessageToDict(type(request).pb(request))

  def shrink(node):
    if isinstance(node, dict):
      return {k: ({"tasks": sorted(v.get("root", {}).get("dag", {}).get("tasks", {}))}
                  if k == "pipelineSpec" else shrink(v)) for k, v in node.items()}
    return [shrink(v) for v in node] if isinstance(node, list) else node

  return shrink(data)


def _credentials_error(e: Exception) -> SubmitError:
  return SubmitError("no Google Cloud credentials found: run `gcloud auth application-default "
                     "login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file "
                     f"({type(e).__name__})")


def _vertex_client(config: BonsaiConfig, service: str):
  """A Vertex AI client of `aiplatform_v1.<service>` for the region; SubmitError without credentials."""
  import google.auth.exceptions  # pylint: disable=g-import-not-at-top
  from google.cloud import aiplatform_v1  # pylint: disable=g-import-not-at-top
  try:
    return getattr(aiplatform_v1, service)(
        client_options={"api_endpoint": f"{config.runner.region}-aiplatform.googleapis.com"})
  except google.auth.exceptions.DefaultCredentialsError as e:
    raise _credentials_error(e) from e


def _kfp_client(config: BonsaiConfig):
  if not config.runner.kfp_host:
    raise ConfigError("runner.kfp_host: must be set for runner.type 'kubeflow' (the KFP API endpoint)")
  import kfp  # pylint: disable=g-import-not-at-top
  return kfp.Client(host=config.runner.kfp_host)


def submit(config: BonsaiConfig, job: Dict[str, Any], job_path: str) -> str:
  """Starts one run; returns the run's name (Vertex) or id (KFP)."""
  if config.runner.type == "vertex":
    request = vertex_submit_request(config, job)
    return _vertex_client(config, "PipelineServiceClient").create_pipeline_job(request=request).name
  client = _kfp_client(config)
  arguments = kfp_submit_arguments(config, kfp_pipeline_spec_file(job, job_path))
  return client.create_run_from_pipeline_package(**arguments).run_id


def schedule(config: BonsaiConfig, job: Dict[str, Any], job_path: str, cron: str) -> str:
  """Creates the recurring run; returns its name (Vertex) or id (KFP)."""
  if config.runner.type == "vertex":
    request = vertex_schedule_request(config, job, cron)
    return _vertex_client(config, "ScheduleServiceClient").create_schedule(request=request).name
  validate_cron(cron)
  client = _kfp_client(config)
  experiment = client.create_experiment(config.pipeline_name)
  arguments = kfp_schedule_arguments(config, kfp_pipeline_spec_file(job, job_path), cron,
                                     experiment.experiment_id)
  return client.create_recurring_run(**arguments).recurring_run_id
