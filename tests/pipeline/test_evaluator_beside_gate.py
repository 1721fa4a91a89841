"""TFX's own Evaluator beside the gate, wired by hand as a template project would: two lineages,
each resolving its own production model, run twice locally and through the compiled Vertex
queries.

The Evaluator's baseline resolver is the penguin template's (no filters: any blessed Model).
Were the gate's blessing a plain ModelBlessing, the second run would hand the Evaluator the
gate-blessed TFLite model as its baseline and fail loading a SavedModel from it.
"""
import os

import pytest
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.orchestration import metadata
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from tfx_bonsai import CompressionEvaluator, PruneTrainer, TFLiteConverter
from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import roles
from tfx_bonsai.pipeline import pipeline as pipeline_lib
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.runners import kubeflow
from tfx_bonsai.pipeline.runners import vertex_local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(REPO, "configs", "digits.schema.pbtxt")
EVALUATOR_RESOLVER = "latest_blessed_model_resolver"   # the template's id
GATE_RESOLVER = "gate_production_resolver"
PIPELINE_NAME = "evaluator-beside-gate"


def _pipeline(root: str) -> tfx.dsl.Pipeline:
  namespace = {"tfx": tfx, "data_path": os.path.join(root, "data")}
  exec(roles.SELECTION_SPLIT_SNIPPET, namespace)  # pylint: disable=exec-used
  example_gen = tfx.components.ImportExampleGen(input_base=namespace["data_path"],
                                                output_config=namespace["output_config"])
  examples = example_gen.outputs["examples"]
  schema_gen = tfx.components.ImportSchemaGen(schema_file=SCHEMA)
  schema = schema_gen.outputs["schema"]
  trainer = tfx.components.Trainer(
      run_fn="tfx_bonsai.pipeline.models.digits_trainer.run_fn", examples=examples,
      schema=schema, train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=80),
      eval_args=tfx.proto.EvalArgs(splits=["selection"], num_steps=4),
      custom_config={"epochs": 2, "width": 0.25})
  # The penguin template's Evaluator and its baseline resolver, unchanged.
  evaluator_resolver = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id(EVALUATOR_RESOLVER)
  accuracy = tfma.MetricConfig(
      class_name="SparseCategoricalAccuracy", threshold=tfma.MetricThreshold(
          value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.3}),
          change_threshold=tfma.GenericChangeThreshold(
              direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -1e-10})))
  evaluator = tfx.components.Evaluator(
      examples=examples, model=trainer.outputs["model"],
      baseline_model=evaluator_resolver.outputs["model"],
      eval_config=tfma.EvalConfig(
          model_specs=[tfma.ModelSpec(label_key="label", signature_name="serving_default")],
          slicing_specs=[tfma.SlicingSpec()],
          metrics_specs=[tfma.MetricsSpec(metrics=[accuracy])]))
  prune = PruneTrainer(examples=examples, model=trainer.outputs["model"], schema=schema,
                       eval_split="selection", target_sparsity=0.5, epochs=1)
  converter = TFLiteConverter(model=prune.outputs["pruned_model"], examples=examples,
                              schema=schema, quantization="dynamic", agreement_split="selection",
                              agreement_examples=100, measure_latency=False)
  production = pipeline_lib.production_resolver(GATE_RESOLVER)
  gate = CompressionEvaluator(
      model=converter.outputs["tflite_model"], dense_model=trainer.outputs["model"],
      examples=examples, baseline_model=production.outputs["model"],
      dense_blessing=evaluator.outputs["blessing"], accuracy_decision="point",
      max_accuracy_drop=0.2, min_compression_ratio=1.5)
  pusher = tfx.components.Pusher(   # the stock Pusher, taking the gate's blessing
      model=converter.outputs["tflite_model"], model_blessing=gate.outputs["blessing"],
      push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
          base_directory=os.path.join(root, "serving"))))
  return tfx.dsl.Pipeline(
      pipeline_name=PIPELINE_NAME, pipeline_root=os.path.join(root, "pipeline"),
      components=[example_gen, schema_gen, trainer, evaluator_resolver, evaluator, prune,
                  converter, production, gate, pusher],
      enable_cache=True, beam_pipeline_args=["--direct_num_workers=1"],
      metadata_connection_config=_connection(root))


def _connection(root):
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(
      os.path.join(root, "metadata.sqlite"))


def _artifacts(root):
  """[(MLMD artifact, its TFX class)] of every artifact the runs recorded, oldest first."""
  with metadata.Metadata(_connection(root)) as m:
    types = {t.id: t for t in m.store.get_artifact_types()}
    found = sorted(m.store.get_artifacts(), key=lambda a: a.id)
    return [(a, artifact_utils.get_artifact_type_class(types[a.type_id])) for a in found]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("beside"))
  digits.export_tfrecord(os.path.join(root, "data"))
  tfx.orchestration.LocalDagRunner().run(_pipeline(root))
  tfx.orchestration.LocalDagRunner().run(_pipeline(root))   # the scheduled refresh
  return root


def test_second_local_run_gives_each_evaluator_its_own_production_model(root):
  blessings = {}
  for artifact, cls in _artifacts(root):
    if issubclass(cls, standard_artifacts.ModelBlessing):
      blessings.setdefault(cls, []).append(artifact)
  # Each blessing records the baseline it was judged against (`baseline_model`, as TFX's
  # Evaluator writes it; the run's input events hold one event per artifact, and the
  # baseline is the very model judged, since the upstream is cached).
  first, second = blessings[standard_artifacts.ModelBlessing]
  assert "baseline_model" not in first.custom_properties
  assert "/Trainer/model/" in second.custom_properties["baseline_model"].string_value
  assert (second.custom_properties["baseline_model_id"].int_value
          == first.custom_properties["current_model_id"].int_value)
  gate_first, gate_second = blessings[blessing_lib.CompressionBlessing]
  assert "/TFLiteConverter/tflite_model/" in gate_second.custom_properties[
      "baseline_model"].string_value
  assert (gate_second.custom_properties["baseline_model_id"].int_value
          == gate_first.custom_properties["current_model_id"].int_value)
  assert "production_accuracy" in gate_second.custom_properties
  assert "production_accuracy" not in gate_first.custom_properties
  # Both blessed in both runs; the stock Pusher pushed the gate's TFLite model each time.
  assert [b.custom_properties["blessed"].int_value
          for b in (first, second, gate_first, gate_second)] == [1, 1, 1, 1]
  pushed = os.listdir(os.path.join(root, "serving"))
  assert len(pushed) == 2 and all(
      os.path.exists(os.path.join(root, "serving", v, "tflite")) for v in pushed)


def _vertex_store(root, bucket):
  """The local runs' models and blessings recorded as Vertex records them: typed by the
  compiled schema title, named by resource name, current_model_id rewritten into the model's
  name (TFX's entrypoint does this for Evaluator executors, the gate's among them)."""
  store = vertex_local.Store(bucket)
  found = _artifacts(root)
  name = {a.id: f"{vertex_local.ARTIFACT_PREFIX}{a.id}" for a, _ in found}
  for artifact, cls in found:
    if not issubclass(cls, (standard_artifacts.Model, standard_artifacts.ModelBlessing)):
      continue
    title = kubeflow.schema_title(cls)
    data = {}
    if issubclass(cls, standard_artifacts.ModelBlessing):
      data = {"blessed": artifact.custom_properties["blessed"].int_value,
              "current_model_id": name[artifact.custom_properties["current_model_id"].int_value]}
    store.add({"kind": "artifact", "name": name[artifact.id], "type": {"schemaTitle": title},
               "schema_title": title, "uri": artifact.uri, "metadata": data, "task": "t",
               "run": "r"})
  return store


def _resolve(job, store, resolver_id):
  executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
  blessing_query = executors[f"{resolver_id}-model-blessing-resolver_executor"][
      "resolver"]["outputArtifactQueries"]["model_blessing"]["filter"]
  model_query = executors[f"{resolver_id}-model-resolver_executor"][
      "resolver"]["outputArtifactQueries"]["model"]["filter"]
  (blessing,) = vertex_local.query(store, blessing_query, {})
  (model,) = vertex_local.query(store, model_query, {"input": [blessing]})
  return blessing, model


def test_compiled_vertex_queries_give_each_evaluator_its_own_production_model(root, tmp_path):
  def compiled(runner_class):
    return runner_class(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image="img"),
        output_dir=str(tmp_path), output_filename="job.json").run(_pipeline(root),
                                                                  write_out=False)

  store = _vertex_store(root, str(tmp_path / "bucket"))
  job = compiled(kubeflow.KubeflowV2DagRunner)
  blessing, model = _resolve(job, store, EVALUATOR_RESOLVER)
  assert blessing["type"]["schemaTitle"] == "tfx.ModelBlessing"
  assert "/Trainer/model/" in model["uri"]
  blessing, model = _resolve(job, store, GATE_RESOLVER)
  assert blessing["type"]["schemaTitle"] == "tfx_bonsai.CompressionBlessing"
  assert "/TFLiteConverter/tflite_model/" in model["uri"]
  # TFX's own compiler asks both resolvers for tfx.ModelBlessing: the gate would get the dense
  # SavedModel as its production model. Our runner's typed queries are what separate them.
  stock = compiled(tfx.orchestration.experimental.KubeflowV2DagRunner)
  _, model = _resolve(stock, store, GATE_RESOLVER)
  assert "/Trainer/model/" in model["uri"]
