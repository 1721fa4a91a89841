"""The compiled Vertex job, read the way Vertex and TFX's container entrypoint read it.

`make vertex-local` runs every task in the image with docker; these tests check, without
docker, what it relies on: every artifact type of the compiled spec resolves through TFX's own
entrypoint functions, the ExecutorInput the launcher builds parses back into the exec
properties the compiler wrote, and the resolver emulation finds the production model.
"""
import json
import os
import subprocess
import sys

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2 import compiler_utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entrypoint
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import import_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.compression_evaluator import executor as evaluator_executor
from tfx_bonsai.components.tflite_converter import settings as converter_settings
from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.runners import kubeflow
from tfx_bonsai.pipeline.runners import vertex_local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "vertex-local.yaml")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
  bucket = str(tmp_path_factory.mktemp("bucket"))
  config = config_lib.load(CONFIG, [f"pipeline_root={bucket}/pipeline", f"data.path={bucket}/data",
                                    f"push.destination={bucket}/serving"])
  path = os.path.join(bucket, "job.json")
  return kubeflow.compile_pipeline(config, path, allow_local=True)


def _artifact_types(job):
  for name, component in job["pipelineSpec"]["components"].items():
    for side in ("inputDefinitions", "outputDefinitions"):
      for key, definition in component.get(side, {}).get("artifacts", {}).items():
        yield f"{name}.{key}", definition["artifactType"]


def test_every_artifact_type_resolves_through_tfx_entrypoint(job):
  types = list(_artifact_types(job))
  titles = set()
  for where, artifact_type in types:
    schema = json_format.ParseDict(artifact_type, pipeline_spec_pb2.ArtifactTypeSchema())
    path = entrypoint._retrieve_class_path(schema)  # pylint: disable=protected-access
    cls = import_utils.import_class_by_path(path)  # ImportError: every Vertex run dies here
    title = vertex_local.schema_title(artifact_type)
    # The type round-trips: standard types by TFX's title map, custom ones by their name.
    assert title in (compiler_utils.get_artifact_title(cls), cls.TYPE_NAME), where
    titles.add(title)
  assert {"tfx_bonsai.SparsityBlessing", "tfx_bonsai.CompressionBlessing"} <= titles
  assert {"tfx.Model", "tfx.Examples"} <= titles


def test_a_type_name_that_is_not_importable_is_what_the_entrypoint_refuses():
  schema = pipeline_spec_pb2.ArtifactTypeSchema(instance_schema="title: bonsai.SparsityBlessing\n")
  with pytest.raises(ImportError):
    import_utils.import_class_by_path(entrypoint._retrieve_class_path(schema))  # pylint: disable=protected-access


def test_tasks_run_after_their_producers(job):
  order = vertex_local.topological_order(job)
  tasks = vertex_local.dag_tasks(job)
  assert set(order) == set(tasks)
  for name in order:
    for producer in vertex_local.upstream(tasks[name]):
      assert order.index(producer) < order.index(name), (producer, name)
  assert order.index("latest_blessed_model_resolver-model-resolver") < order.index(
      "CompressionEvaluator")


def test_a_cycle_is_refused():
  job = {"pipelineSpec": {"root": {"dag": {"tasks": {
      "a": {"dependentTasks": ["b"]}, "b": {"dependentTasks": ["a"]}}}}}}
  with pytest.raises(vertex_local.LaunchError, match="cycle"):
    vertex_local.topological_order(job)


def _invocation(job, name, tmp_path):
  spec = job["pipelineSpec"]
  task = vertex_local.dag_tasks(job)[name]
  component = spec["components"][task["componentRef"]["name"]]
  artifacts = {}
  for key, source in task.get("inputs", {}).get("artifacts", {}).items():
    producer = source["taskOutputArtifact"]
    producer_component = spec["components"][
        vertex_local.dag_tasks(job)[producer["producerTask"]]["componentRef"]["name"]]
    artifact_type = producer_component["outputDefinitions"]["artifacts"][
        producer["outputArtifactKey"]]["artifactType"]
    artifacts[key] = [{"name": vertex_local.ARTIFACT_PREFIX + key, "type": artifact_type,
                       "uri": str(tmp_path / key), "metadata": {"blessed": 1}}]
  parameters = vertex_local.task_parameters(task, component,
                                            vertex_local.pipeline_parameters(job, {}))
  return vertex_local.executor_input(component, artifacts, parameters, str(tmp_path / name))


@pytest.mark.parametrize("name", ["CompressionEvaluator", "PruneTrainer", "ImportExampleGen"])
def test_executor_input_parses_into_the_compiled_exec_properties(job, name, tmp_path):
  invocation = _invocation(job, name, tmp_path)
  executor_input = json_format.Parse(json.dumps(invocation), pipeline_spec_pb2.ExecutorInput())
  names = {}
  inputs = entrypoint.parse_raw_artifact_dict(executor_input.inputs.artifacts, names)
  outputs = entrypoint.parse_raw_artifact_dict(executor_input.outputs.artifacts, names)
  # What TFX 1.21's container entrypoint reads (it passes no inputs spec).
  properties = entrypoint.parse_execution_properties(
      executor_input.inputs.parameter_values, executor_input.inputs.parameters, None)
  task = vertex_local.dag_tasks(job)[name]
  compiled = task["inputs"]["parameters"]
  assert set(properties) == set(compiled)
  for key, value in compiled.items():
    assert properties[key] == vertex_local._constant(value["runtimeValue"]["constantValue"]), key  # pylint: disable=protected-access
  assert set(inputs) == set(task.get("inputs", {}).get("artifacts", {}))
  component = job["pipelineSpec"]["components"][task["componentRef"]["name"]]
  assert set(outputs) == set(component["outputDefinitions"]["artifacts"])
  for key, artifacts in outputs.items():
    assert artifacts[0].uri == str(tmp_path / name / key)
  if name == "CompressionEvaluator":
    assert isinstance(properties["max_accuracy_drop"], float)
    assert type(inputs["sparsity_blessing"][0]) is blessing_lib.SparsityBlessing  # pylint: disable=unidiomatic-typecheck


def test_param_values_are_typed_by_the_compiled_definition():
  job = {"pipelineSpec": {"root": {"inputDefinitions": {"parameters": {
      "gate_max_accuracy_drop": {"type": "DOUBLE"}, "pruning_epochs": {"type": "INT"}}}}},
         "runtimeConfig": {"parameters": {"gate_max_accuracy_drop": {"doubleValue": 0.01},
                                          "pruning_epochs": {"intValue": "4"}}}}
  assert vertex_local.pipeline_parameters(job, {}) == {"gate_max_accuracy_drop": 0.01,
                                                       "pruning_epochs": 4}
  assert vertex_local.pipeline_parameters(job, {"gate_max_accuracy_drop": "0.02",
                                                "pruning_epochs": "6"}) == {
      "gate_max_accuracy_drop": 0.02, "pruning_epochs": 6}
  with pytest.raises(vertex_local.LaunchError, match="is not a DOUBLE"):
    vertex_local.pipeline_parameters(job, {"gate_max_accuracy_drop": "lots"})


def test_pipeline_parameters_refuse_unknown_names(job):
  with pytest.raises(vertex_local.LaunchError, match="--param gate: not a parameter"):
    vertex_local.pipeline_parameters(job, {"gate": "1"})


def _record(store, title, name, metadata):
  store.add({"kind": "artifact", "name": name, "type": {"schemaTitle": title},
             "schema_title": title, "uri": "/b/" + name, "metadata": metadata, "task": "t",
             "run": "r"})


def test_resolvers_find_the_latest_blessed_model(job, tmp_path):
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  queries = {label: e["resolver"]["outputArtifactQueries"] for label, e in executors.items()
             if "resolver" in e}
  (blessing_query,) = [q["model_blessing"]["filter"] for q in queries.values() if "model_blessing" in q]
  (model_query,) = [q["model"]["filter"] for q in queries.values() if "model" in q]
  store = vertex_local.Store(str(tmp_path))
  assert vertex_local.query(store, blessing_query, {}) == []
  _record(store, "tfx.Model", "m1", {})
  _record(store, "tfx.Model", "m2", {})
  _record(store, "tfx_bonsai.CompressionBlessing", "b1", {"blessed": 1, "current_model_id": "m1"})
  _record(store, "tfx_bonsai.CompressionBlessing", "b2", {"blessed": 0, "current_model_id": "m2"})
  _record(store, "tfx_bonsai.SparsityBlessing", "s1", {"blessed": 1, "current_model_id": "m2"})
  _record(store, "tfx.Model", "dense", {})  # a TFX Evaluator's blessing of a Trainer model
  _record(store, "tfx.ModelBlessing", "e1", {"blessed": 1, "current_model_id": "dense"})
  (blessing,) = vertex_local.query(vertex_local.Store(str(tmp_path)), blessing_query, {})
  assert blessing["name"] == "b1"  # not the refused b2, the validator's or the Evaluator's
  (model,) = vertex_local.query(store, model_query, {"input": [blessing]})
  assert model["name"] == "m1"
  # TFX writes current_model_id as an integer MLMD id unless its entrypoint rewrites it into
  # the artifact's name: then the model query finds nothing.
  assert vertex_local.query(store, model_query, {"input": [dict(blessing, metadata={
      "blessed": 1, "current_model_id": 123})]}) == []


def test_the_gate_executor_gets_tfx_entrypoint_blessing_rewrite():
  # TFX's KFP v2 entrypoint rewrites current_model_id into the model's artifact name (which
  # LatestBlessedModelStrategy's compiled query matches) only for Evaluator executors.
  from tfx.components.evaluator import executor as tfx_evaluator  # pylint: disable=g-import-not-at-top
  assert issubclass(evaluator_executor.Executor, tfx_evaluator.Executor)


def test_launcher_runs_with_the_standard_library_only(tmp_path):
  # The launcher runs on the host beside docker, outside the project environment.
  code = ("import sys; sys.path.insert(0, sys.argv[1]); import vertex_local; "
          "mods = [m for m in sys.modules if m.split('.')[0] in ('tfx', 'tensorflow', 'tfx_bonsai')]; "
          "assert not mods, mods")
  run = subprocess.run([sys.executable, "-I", "-c", code,
                        os.path.dirname(vertex_local.__file__)],
                       capture_output=True, text=True, cwd=str(tmp_path), check=False)
  assert run.returncode == 0, run.stderr


def test_data_roles_reach_the_gate_through_vertex_and_it_refuses(job, tmp_path):
  # The converter's output as TFX's entrypoint reports it to Vertex (ExecutorOutput metadata),
  # handed to the gate's task as Vertex would: the gate reads the same roles and refuses.
  converted = standard_artifacts.Model()
  converted.uri = str(tmp_path / "tflite_model")
  converted.set_string_custom_property(roles.DATA_ROLES_PROPERTY, roles.encode(
      roles.converter_uses(converter_settings.TFLiteConverterSettings(agreement_split="eval"))))
  reported = json_format.MessageToDict(
      entrypoint.translate_executor_output({"tflite_model": [converted]}, {})["tflite_model"])
  invocation = _invocation(job, "CompressionEvaluator", tmp_path)
  invocation["inputs"]["artifacts"]["model"]["artifacts"][0]["metadata"] = (
      reported["artifacts"][0]["metadata"])
  executor_input = json_format.Parse(json.dumps(invocation), pipeline_spec_pb2.ExecutorInput())
  inputs = entrypoint.parse_raw_artifact_dict(executor_input.inputs.artifacts, {})
  properties = entrypoint.parse_execution_properties(
      executor_input.inputs.parameter_values, executor_input.inputs.parameters, None)
  assert inputs["model"][0].get_string_custom_property(roles.DATA_ROLES_PROPERTY) == (
      converted.get_string_custom_property(roles.DATA_ROLES_PROPERTY))
  examples = inputs["examples"][0]
  examples.split_names = artifact_utils.encode_split_names(["train", "selection", "eval"])
  with pytest.raises(roles.DataRoleError, match=r"^eval_split: the gate would judge on split "
                     r"'eval'.*TFLiteConverter passes or fails the conversion on it"):
    evaluator_executor.check_data_roles(evaluator_executor.config_from_properties(properties),
                                        examples, inputs["model"][0], inputs["dense_model"][0])
