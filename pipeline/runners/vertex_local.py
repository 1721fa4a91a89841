"""Launch a compiled Vertex AI / KFP v2 pipeline job here, the way Vertex launches it.

    python3 pipeline/runners/vertex_local.py launch --job JOB.json --bucket DIR [--param K=V]

Each container task of the job's DAG runs in topological order with `docker run` in the task's
image, with the `command` and `args` of its `deploymentSpec` executor and `{{$}}` replaced by
the `ExecutorInput` JSON Vertex would build: input artifacts (name, type, uri, metadata) from
the upstream tasks' outputs, parameter values, output artifact URIs and the executor output
file. The local "bucket" is bind-mounted at the same path, and the containers have no network.

What Vertex's control plane does around the containers is emulated from a small metadata
store in the bucket (`.vertex-local/metadata.jsonl`, one JSON record per artifact), kept
across launches:
- resolver tasks (TFX's LatestBlessedModelStrategy compiles into two): their
  `outputArtifactQueries` filters are evaluated against the recorded artifacts;
- caching: a task whose executor, inputs and parameters match an earlier successful execution
  is not run again, its outputs are reused (CACHED), as with Vertex's `enableCache`;
- a lifecycle `preCacheCheck` (ExampleGen's driver) runs before the cache lookup, and its
  output file feeds the cache key and the main container, as on Vertex.

This module uses only the standard library, so it runs on the host beside `docker`; the
compile step (`compile`) imports TFX and runs in the project environment.
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid

STORE_DIR = ".vertex-local"
STORE_FILE = "metadata.jsonl"
ARTIFACT_PREFIX = "projects/local/locations/local/metadataStores/default/artifacts/"
_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['([^']+)'\]\.metadata\['([^']+)'\]\}\}")


class LaunchError(RuntimeError):
  """A task that failed or a job that cannot be launched, with the reason."""


def say(message: str) -> None:
  print(f"[vertex-local] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# The job: tasks, their order and their parameters.

def dag_tasks(job: dict) -> dict:
  return job["pipelineSpec"]["root"]["dag"]["tasks"]


def upstream(task: dict) -> set:
  """Names of the tasks `task` depends on: explicit dependencies and artifact producers."""
  names = set(task.get("dependentTasks", []))
  for spec in task.get("inputs", {}).get("artifacts", {}).values():
    producer = spec.get("taskOutputArtifact", {}).get("producerTask")
    if producer:
      names.add(producer)
  return names


def topological_order(job: dict) -> list:
  """Task names so that every task comes after its producers (ties broken by name)."""
  tasks = dag_tasks(job)
  remaining = {name: upstream(task) for name, task in tasks.items()}
  for name, deps in remaining.items():
    unknown = deps - set(tasks)
    if unknown:
      raise LaunchError(f"task '{name}' depends on unknown task(s) {sorted(unknown)}")
  order = []
  while remaining:
    ready = sorted(name for name, deps in remaining.items() if not deps - set(order))
    if not ready:
      raise LaunchError(f"the DAG has a cycle among {sorted(remaining)}")
    order.append(ready[0])
    del remaining[ready[0]]
  return order


def _constant(value: dict):
  """A KFP constant (`{"stringValue": ...}` / `{"doubleValue": ...}` / ...) as a JSON value."""
  if not isinstance(value, dict):
    return value  # protobuf.Value JSON: already plain
  for key in ("stringValue", "doubleValue", "intValue", "boolValue", "numberValue"):
    if key in value:
      v = value[key]
      return int(v) if key == "intValue" else v
  if "structValue" in value or "listValue" in value:
    return value.get("structValue", value.get("listValue"))
  raise LaunchError(f"unsupported parameter value {value}")


def pipeline_parameters(job: dict, overrides: dict) -> dict:
  """The root's input parameters: defaults, then runtimeConfig, then --param overrides."""
  spec = job["pipelineSpec"]
  definitions = spec["root"].get("inputDefinitions", {}).get("parameters", {})
  values = {}
  for name, definition in definitions.items():
    if "defaultValue" in definition:
      values[name] = definition["defaultValue"]
  runtime = job.get("runtimeConfig", {})
  for name, value in runtime.get("parameterValues", {}).items():
    values[name] = value
  for name, value in runtime.get("parameters", {}).items():
    values[name] = _constant(value)
  for name, text in overrides.items():
    if name not in definitions:
      allowed = ", ".join(sorted(definitions)) or "none: the pipeline has no runtime parameters"
      raise LaunchError(f"--param {name}: not a parameter of this pipeline (allowed: {allowed})")
    definition = definitions[name]
    values[name] = _parse_value(text, definition.get("type") or definition.get("parameterType", ""))
  missing = sorted(set(definitions) - set(values))
  if missing:
    raise LaunchError(f"pipeline parameters without a value: {missing}; pass --param NAME=VALUE")
  return values


def _parse_value(text: str, kind: str):
  try:
    if kind in ("INT", "NUMBER_INTEGER"):
      return int(text)
    if kind in ("DOUBLE", "NUMBER_DOUBLE"):
      return float(text)
    if kind == "BOOLEAN":
      if text.lower() not in ("true", "false"):
        raise ValueError(text)
      return text.lower() == "true"
  except ValueError as e:
    raise LaunchError(f"--param value '{text}' is not a {kind}") from e
  return text


_TYPED = {"STRING": "stringValue", "DOUBLE": "doubleValue", "INT": "intValue",
          "NUMBER_DOUBLE": "doubleValue", "NUMBER_INTEGER": "intValue", "BOOLEAN": "boolValue"}


def task_parameters(task: dict, component: dict, root_values: dict) -> dict:
  """The task's parameters as typed KFP Values (`{"doubleValue": 0.01}`), as schema 2.0.0 has them."""
  definitions = component.get("inputDefinitions", {}).get("parameters", {})
  values = {}
  for name, spec in task.get("inputs", {}).get("parameters", {}).items():
    if "runtimeValue" in spec:
      constant = spec["runtimeValue"].get("constantValue", spec["runtimeValue"].get("constant"))
      values[name] = constant if isinstance(constant, dict) else {"stringValue": constant}
    elif "componentInputParameter" in spec:
      kind = definitions.get(name, {})
      kind = kind.get("type") or kind.get("parameterType") or "STRING"
      value = root_values[spec["componentInputParameter"]]
      values[name] = {_TYPED.get(kind, "stringValue"): value}
    else:
      raise LaunchError(f"parameter '{name}': unsupported source {sorted(spec)}")
  return values


# ---------------------------------------------------------------------------------------------
# The metadata store: artifacts and executions recorded by earlier tasks and launches.

class Store:
  """Append-only JSON-lines records in the bucket: artifacts and successful executions."""

  def __init__(self, bucket: str):
    self.path = os.path.join(bucket, STORE_DIR, STORE_FILE)
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    self.records = []
    if os.path.exists(self.path):
      with open(self.path) as f:
        self.records = [json.loads(line) for line in f if line.strip()]

  def add(self, record: dict) -> None:
    self.records.append(record)
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")

  def artifacts(self) -> list:
    return [r for r in self.records if r["kind"] == "artifact"]

  def cached(self, key: str):
    for record in reversed(self.records):
      if record["kind"] == "execution" and record["cache_key"] == key:
        return record
    return None


def schema_title(artifact_type: dict) -> str:
  if "schemaTitle" in artifact_type:
    return artifact_type["schemaTitle"]
  match = re.search(r"^title:\s*(\S+)", artifact_type.get("instanceSchema", ""), re.M)
  return match.group(1) if match else ""


def _metadata_value(metadata: dict, path: list):
  value = metadata
  for part in path:
    if not isinstance(value, dict) or part not in value:
      return None
    value = value[part]
  return value


def query(store: Store, filter_text: str, input_artifacts: dict) -> list:
  """The newest LIVE artifact matching a Vertex ML Metadata filter, as a one-element list.

  Supports the clauses TFX's resolvers compile to, joined by AND: `schema_title="T"`,
  `state=LIVE`, `metadata.KEY.number_value=N`, `metadata.KEY.string_value="S"`, `name="N"`;
  `{{$.inputs.artifacts['x'].metadata['k']}}` placeholders are filled from the task's inputs.
  """
  def fill(match):
    artifacts = input_artifacts.get(match.group(1), [])
    return str(artifacts[0]["metadata"].get(match.group(2), "")) if artifacts else ""
  text = _PLACEHOLDER.sub(fill, filter_text)
  checks = []
  for clause in text.split(" AND "):
    key, _, raw = clause.strip().partition("=")
    value = raw.strip().strip('"')
    if key == "schema_title":
      checks.append(lambda a, v=value: a["schema_title"] == v)
    elif key == "state":
      checks.append(lambda a, v=value: v == "LIVE")
    elif key == "name":
      checks.append(lambda a, v=value: a["name"] == v)
    elif key.startswith("metadata.") and key.endswith((".number_value", ".string_value")):
      path = key.split(".")[1:-1]
      if key.endswith(".number_value"):
        checks.append(lambda a, p=path, v=value: _metadata_value(a["metadata"], p) is not None
                      and float(_metadata_value(a["metadata"], p)) == float(v))
      else:
        checks.append(lambda a, p=path, v=value: _metadata_value(a["metadata"], p) == v)
    else:
      raise LaunchError(f"resolver filter clause '{clause}' is not supported by the emulation")
  matches = [a for a in store.artifacts() if all(check(a) for check in checks)]
  return [_as_runtime_artifact(matches[-1])] if matches else []


def _as_runtime_artifact(record: dict) -> dict:
  return {"name": record["name"], "type": record["type"], "uri": record["uri"],
          "metadata": record["metadata"]}


# ---------------------------------------------------------------------------------------------
# Launching.

def executor_input(component: dict, artifacts: dict, parameters: dict, task_dir: str) -> dict:
  """The ExecutorInput JSON for one task: inputs as given, fresh output artifacts under task_dir.

  Parameters go both as typed `parameters` (pipeline schema 2.0.0, which TFX's compiler writes
  and TFX's entrypoint reads) and as plain `parameterValues` (schema 2.1).
  """
  outputs = {}
  for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items():
    outputs[key] = {"artifacts": [{
        "name": ARTIFACT_PREFIX + uuid.uuid4().hex, "type": definition["artifactType"],
        "uri": os.path.join(task_dir, key), "metadata": {}}]}
  return {"inputs": {"artifacts": {k: {"artifacts": v} for k, v in artifacts.items()},
                     "parameters": parameters,
                     "parameterValues": {k: _constant(v) for k, v in parameters.items()}},
          "outputs": {"artifacts": outputs,
                      "outputFile": os.path.join(task_dir, "executor_output.json")}}


def substitute(arguments: list, invocation: dict) -> list:
  text = json.dumps(invocation, sort_keys=True)
  result = []
  for argument in arguments:
    if "{{$" in argument and argument != "{{$}}":
      raise LaunchError(f"unsupported placeholder in container argument '{argument}'")
    result.append(text if argument == "{{$}}" else argument)
  return result


def docker_command(image: str, command: list, bucket: str) -> list:
  user = [] if os.getuid() == 0 else ["--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp"]
  return ["docker", "run", "--rm", "--network", "none", "-v", f"{bucket}:{bucket}", *user,
          image, *command]


def run_container(image: str, command: list, bucket: str, log_path: str) -> float:
  start = time.time()
  with open(log_path, "ab") as log:
    log.write(("$ " + shlex.join(docker_command(image, command[:2] + ["..."], bucket)) + "\n")
              .encode())
    log.flush()
    code = subprocess.run(docker_command(image, command, bucket), stdout=log,
                          stderr=subprocess.STDOUT, check=False).returncode
  if code != 0:
    with open(log_path, "rb") as f:
      tail = f.read().decode(errors="replace").splitlines()[-25:]
    raise LaunchError("container exited %d; last lines of %s:\n  %s"
                      % (code, log_path, "\n  ".join(tail)))
  return time.time() - start


def _read_output_file(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def cache_key(executor: dict, artifacts: dict, parameters: dict) -> str:
  inputs = {k: [(a["name"], a["uri"]) for a in v] for k, v in artifacts.items()}
  text = json.dumps([executor, inputs, parameters], sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()


def launch(job: dict, bucket: str, overrides: dict = None, enable_cache: bool = True,
           image: str = "") -> dict:
  """Runs every task of `job`; returns {task: {"outputs": {key: [artifact]}, "state": ...}}."""
  spec = job["pipelineSpec"]
  root_values = pipeline_parameters(job, overrides or {})
  pipeline_root = job.get("runtimeConfig", {}).get("gcsOutputDirectory", "")
  if not pipeline_root.startswith(bucket):
    raise LaunchError(f"runtimeConfig.gcsOutputDirectory '{pipeline_root}' is not inside the "
                      f"bucket '{bucket}': compile with locations under the bucket")
  run_id = time.strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
  run_dir = os.path.join(pipeline_root, "local", run_id)
  os.makedirs(run_dir, exist_ok=True)
  store = Store(bucket)
  say(f"run {run_id}: {len(dag_tasks(job))} tasks, logs in {run_dir}")
  results = {}
  for name in topological_order(job):
    task = dag_tasks(job)[name]
    component = spec["components"][task["componentRef"]["name"]]
    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
    artifacts = {}
    for key, source in task.get("inputs", {}).get("artifacts", {}).items():
      producer = source["taskOutputArtifact"]
      artifacts[key] = results[producer["producerTask"]]["outputs"].get(
          producer["outputArtifactKey"], [])
    if "resolver" in executor:
      outputs = {key: query(store, q["filter"], artifacts)
                 for key, q in executor["resolver"]["outputArtifactQueries"].items()}
      found = ", ".join(f"{k}={v[0]['uri'] if v else 'none'}" for k, v in outputs.items())
      say(f"{name:<55} resolved {found}")
      results[name] = {"outputs": outputs, "state": "RESOLVED"}
      continue
    if "container" not in executor:
      raise LaunchError(f"task '{name}': executor kind {sorted(executor)} is not supported")
    container = dict(executor["container"])
    if image:
      container["image"] = image
    parameters = task_parameters(task, component, root_values)
    task_dir = os.path.join(run_dir, name)
    os.makedirs(task_dir, exist_ok=True)
    log_path = os.path.join(task_dir, "log.txt")
    invocation = executor_input(component, artifacts, parameters, task_dir)
    pre = container.get("lifecycle", {}).get("preCacheCheck")
    if pre:
      run_container(container["image"], pre["command"] + substitute(pre["args"], invocation),
                    bucket, log_path)
      # The driver writes span, version, fingerprint and the resolved input_config: they key
      # the cache, and the main container reads them from the same output file.
      driver = _read_output_file(invocation["outputs"]["outputFile"])
      parameters = dict(parameters, **driver.get("parameterValues", {}),
                        **driver.get("parameters", {}))
    key = cache_key(executor, artifacts, parameters)
    cached = store.cached(key) if enable_cache and task.get("cachingOptions", {}).get(
        "enableCache", False) else None
    if cached:
      results[name] = {"outputs": cached["outputs"], "state": "CACHED"}
      say(f"{name:<55} CACHED")
      continue
    seconds = run_container(container["image"], container["command"]
                            + substitute(container["args"], invocation), bucket, log_path)
    produced = _read_output_file(invocation["outputs"]["outputFile"]).get("artifacts", {})
    outputs = {}
    for key_, declared in invocation["outputs"]["artifacts"].items():
      written = produced.get(key_, {}).get("artifacts", [])
      records = []
      for i, artifact in enumerate(declared["artifacts"]):
        metadata = dict(written[i].get("metadata", {})) if i < len(written) else {}
        record = {"kind": "artifact", "name": artifact["name"], "type": artifact["type"],
                  "schema_title": schema_title(artifact["type"]), "uri": artifact["uri"],
                  "metadata": metadata, "task": name, "run": run_id}
        store.add(record)
        records.append(_as_runtime_artifact(record))
      outputs[key_] = records
    store.add({"kind": "execution", "task": name, "run": run_id, "cache_key": key,
               "outputs": outputs})
    results[name] = {"outputs": outputs, "state": "RAN", "seconds": seconds}
    say(f"{name:<55} ran in {seconds:4.0f} s")
  return results


def check_pushed(results: dict, image: str, bucket: str) -> str:
  """The pushed TFLite model's path, after loading and invoking it in the image; else ''."""
  pushed = [a for artifacts in results.get("Pusher", {}).get("outputs", {}).values()
            for a in artifacts if int(float(a["metadata"].get("pushed", 0))) == 1]
  if not pushed:
    return ""
  destination = pushed[0]["metadata"]["pushed_destination"]
  model = os.path.join(destination, "tflite") if os.path.isdir(destination) else destination
  script = ("import sys, numpy as np, tensorflow as tf\n"
            "i = tf.lite.Interpreter(model_path=sys.argv[1]); i.allocate_tensors()\n"
            "d = i.get_input_details()[0]\n"
            "i.set_tensor(d['index'], np.zeros(d['shape'], d['dtype'])); i.invoke()\n"
            "o = i.get_tensor(i.get_output_details()[0]['index'])\n"
            "print('loaded', sys.argv[1], 'input', d['shape'].tolist(), 'output', o.shape)\n")
  out = subprocess.run(docker_command(image, ["python", "-c", script, model], bucket),
                       capture_output=True, text=True, check=False)
  if out.returncode != 0:
    raise LaunchError(f"the pushed model {model} does not load in the interpreter:\n"
                      + out.stderr[-2000:])
  say(out.stdout.strip().splitlines()[-1])
  return model


def gate_production(results: dict) -> dict:
  """What the gate saw of the production model: the resolved baseline and its accuracy."""
  evaluator = results.get("CompressionEvaluator", {})
  blessing = evaluator.get("outputs", {}).get("blessing", [{}])
  metadata = blessing[0].get("metadata", {}) if blessing else {}
  baseline = [r for n, r in results.items() if n.endswith("-model-resolver")]
  uri = baseline[0]["outputs"]["model"][0]["uri"] if baseline and baseline[0]["outputs"].get(
      "model") else ""
  return {"baseline_uri": uri, "production_accuracy": metadata.get("production_accuracy"),
          "blessed": metadata.get("blessed"), "state": evaluator.get("state")}


# ---------------------------------------------------------------------------------------------
# The compile step (runs in the project environment: imports TFX).

def compile_local(config_path: str, sets: list, bucket: str, output: str) -> str:
  """Compiles the config for Vertex with every location under `bucket`; exports embedded data."""
  # pylint: disable=g-import-not-at-top
  from tfx_bonsai.pipeline import config as config_lib
  from tfx_bonsai.pipeline.runners import kubeflow
  from tfx_bonsai.pipeline.runners import local
  bucket = os.path.abspath(bucket)
  config = config_lib.load(config_path, list(sets) + [
      f"pipeline_root={bucket}/pipeline", f"data.path={bucket}/data",
      f"push.destination={bucket}/serving"])
  local.prepare_data(config)
  kubeflow.compile_pipeline(config, output, allow_local=True)
  return output


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="vertex_local", description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)
  c = sub.add_parser("compile", help="compile a config for Vertex with locations under --bucket")
  c.add_argument("--config", required=True)
  c.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE")
  c.add_argument("--bucket", required=True)
  c.add_argument("--output", required=True)
  l = sub.add_parser("launch", help="run a compiled job's tasks in their image, as Vertex does")
  l.add_argument("--job", required=True)
  l.add_argument("--bucket", required=True)
  l.add_argument("--image", default="", help="override every task's image")
  l.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
  l.add_argument("--no-cache", action="store_true")
  l.add_argument("--expect-production", action="store_true",
                 help="fail unless the gate found and used a production model")
  args = p.parse_args(argv)
  if args.command == "compile":
    print(compile_local(args.config, args.set, args.bucket, args.output))
    return 0
  bucket = os.path.abspath(args.bucket)
  with open(args.job) as f:
    job = json.load(f)
  overrides = dict(item.split("=", 1) for item in args.param if "=" in item)
  if len(overrides) != len(args.param):
    print("vertex_local: --param takes NAME=VALUE", file=sys.stderr)
    return 2
  start = time.time()
  try:
    results = launch(job, bucket, overrides, enable_cache=not args.no_cache, image=args.image)
    image = args.image or next(iter(job["pipelineSpec"]["deploymentSpec"]["executors"].values()))[
        "container"]["image"]
    production = gate_production(results)
    say("gate: blessed=%s, production model: %s%s" % (
        production["blessed"], production["baseline_uri"] or "none found",
        "" if production["production_accuracy"] is None
        else f" (accuracy {float(production['production_accuracy']):.4f})"))
    model = check_pushed(results, image, bucket)
  except LaunchError as e:
    print(f"vertex_local: {e}", file=sys.stderr)
    return 1
  say(f"finished in {time.time() - start:.0f} s")
  if args.expect_production and (not production["baseline_uri"]
                                 or production["production_accuracy"] is None):
    print("vertex_local: the gate did not use a production model, though an earlier launch "
          "pushed one", file=sys.stderr)
    return 1
  if not model:
    print("vertex_local: nothing was pushed (the gate did not bless the candidate)",
          file=sys.stderr)
    return 3
  print(f"pushed {model}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
