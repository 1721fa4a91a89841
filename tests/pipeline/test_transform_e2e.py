"""A tf.Transform pipeline end to end with TFX's own native-Keras taxi module (LocalDagRunner).

The Trainer module is the one shipped in the tfx wheel
(`tfx/examples/chicago_taxi_pipeline/taxi_utils_native_keras.py`): vocabularies, buckets
and z-scores in tf.Transform, a multi-input wide & deep Functional model with a binary
label (`tips_xf`), exported with `tf.saved_model.save(model, dir, signatures=...)`. The data
is the first rows of the taxi CSV shipped in the same wheel: nothing is downloaded.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.examples.chicago_taxi_pipeline import taxi_utils_native_keras
from tfx.orchestration import metadata

from tfx_bonsai import CompressionEvaluator, PruneTrainer, SparsityValidator, TFLiteConverter
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.pusher.executor import AtomicPushExecutor
from tfx_bonsai.components.tflite_converter import conversion

TAXI_MODULE = taxi_utils_native_keras.__file__.replace(".pyc", ".py")
TAXI_CSV = os.path.join(os.path.dirname(TAXI_MODULE), "data", "simple", "data.csv")
ROWS = 800
# The model-building function PruneTrainer and the gate rebuild the Trainer's model with:
# run_fn builds `_build_keras_model` with layer sizes max(2, int(100 * 0.7**i)), i < 4.
MODEL_FN_MODULE = f"""
import importlib.util
_spec = importlib.util.spec_from_file_location("taxi_module", {TAXI_MODULE!r})
taxi = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(taxi)

def build_keras_model():
  return taxi._build_keras_model(hidden_units=[100, 70, 48, 34])
"""


def _pipeline(root, data, model_fn_module):
  example_gen = tfx.components.CsvExampleGen(input_base=data)
  statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
  schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"])
  transform = tfx.components.Transform(examples=example_gen.outputs["examples"],
                                       schema=schema.outputs["schema"], module_file=TAXI_MODULE)
  trainer = tfx.components.Trainer(
      module_file=TAXI_MODULE, examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"], schema=schema.outputs["schema"],
      train_args=tfx.proto.TrainArgs(num_steps=30), eval_args=tfx.proto.EvalArgs(num_steps=5))
  prune = PruneTrainer(
      examples=transform.outputs["transformed_examples"], model=trainer.outputs["model"],
      transform_graph=transform.outputs["transform_graph"], label_key="tips_xf",
      model_fn="build_keras_model", module_file=model_fn_module,
      target_sparsity=0.8, initial_sparsity=0.3, epochs=2, batch_size=40)
  tflite = TFLiteConverter(
      model=prune.outputs["pruned_model"], examples=transform.outputs["transformed_examples"],
      schema=transform.outputs["post_transform_schema"], label_key="tips_xf",
      quantization="int8", representative_examples=100, measure_latency=False)
  sparsity = SparsityValidator(model=prune.outputs["pruned_model"], min_sparsity=0.75)
  gate = CompressionEvaluator(
      model=tflite.outputs["tflite_model"], dense_model=trainer.outputs["model"],
      examples=example_gen.outputs["examples"],
      transform_graph=transform.outputs["transform_graph"],
      sparsity_blessing=sparsity.outputs["blessing"], label_key="tips_xf",
      model_fn="build_keras_model", module_file=model_fn_module,
      max_accuracy_drop=0.05, min_compression_ratio=2)
  pusher = tfx.components.Pusher(
      model=tflite.outputs["tflite_model"], model_blessing=gate.outputs["blessing"],
      push_destination=tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
          base_directory=os.path.join(root, "serving"))),
      custom_executor_spec=executor_spec.ExecutorClassSpec(AtomicPushExecutor))
  return tfx.dsl.Pipeline(
      pipeline_name="taxi_transform", pipeline_root=os.path.join(root, "pipeline"),
      components=[example_gen, statistics, schema, transform, trainer, prune, tflite, sparsity,
                  gate, pusher],
      metadata_connection_config=metadata.sqlite_metadata_connection_config(
          os.path.join(root, "metadata.sqlite")),
      beam_pipeline_args=["--direct_num_workers=1"])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("taxi"))
  data = os.path.join(root, "data")
  os.makedirs(data)
  with open(TAXI_CSV) as source, open(os.path.join(data, "data.csv"), "w") as target:
    target.writelines(line for _, line in zip(range(ROWS + 1), source))
  module = os.path.join(root, "taxi_model_fn.py")
  with open(module, "w") as f:
    f.write(MODEL_FN_MODULE)
  tfx.orchestration.LocalDagRunner().run(_pipeline(root, data, module))
  return root


def _artifact_dirs(root, component, output):
  base = os.path.join(root, "pipeline", component, output)
  return [os.path.join(base, d) for d in sorted(os.listdir(base), key=int)]


def test_transform_pipeline_is_blessed_and_pushed(run):
  blessing_dir = _artifact_dirs(run, "CompressionEvaluator", "blessing")[-1]
  with open(os.path.join(blessing_dir, "verdict.json")) as f:
    verdict = json.load(f)
  with open(os.path.join(_artifact_dirs(run, "PruneTrainer", "pruned_model")[-1],
                         "pruning.json")) as f:
    pruning = json.load(f)
  measured = verdict["measured"]
  print(f"taxi: head {pruning['head']}, sparsity {pruning['sparsity']:.3f}, dense accuracy "
        f"{measured['dense_accuracy']:.4f}, candidate {measured['candidate_accuracy']:.4f}, "
        f"ratio {measured['dense_tflite_bytes'] / measured['candidate_gzip_bytes']:.1f}; "
        f"{verdict['summary']}")
  assert pruning["head"] == "binary" and pruning["sparsity"] >= 0.75
  assert verdict["blessed"], verdict["summary"]
  serving = os.path.join(run, "serving")
  versions = [d for d in os.listdir(serving) if not d.startswith(".")]
  assert len(versions) == 1
  # The pushed model loads and runs on the transformed features the Transform graph makes.
  with open(os.path.join(serving, versions[0], "tflite"), "rb") as f:
    model_bytes = f.read()
  transformed = _artifact_dirs(run, "Transform", "transformed_examples")[-1]
  records = tf.io.gfile.glob(os.path.join(transformed, "Split-eval", "*"))
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  graph = tft.TFTransformOutput(_artifact_dirs(run, "Transform", "transform_graph")[-1])
  spec = graph.transformed_feature_spec()
  parsed = tf.io.parse_example(
      next(iter(tf.data.TFRecordDataset(records, compression_type="GZIP").batch(200))), spec)
  features = {k: v.numpy() for k, v in parsed.items() if k != "tips_xf"}
  pruned_keras = model_io.load_keras_model(_artifact_dirs(run, "PruneTrainer", "pruned_model")[-1])
  outputs = conversion.run_tflite(model_bytes, conversion.model_inputs(pruned_keras, features))
  accuracy = np.mean((outputs.reshape(-1) > 0.5) == parsed["tips_xf"].numpy())
  assert accuracy > 0.6


def test_gate_scored_every_raw_eval_example(run):
  raw_eval = _artifact_dirs(run, "CsvExampleGen", "examples")[-1]
  count = sum(1 for _ in tf.data.TFRecordDataset(
      tf.io.gfile.glob(os.path.join(raw_eval, "Split-eval", "*")), compression_type="GZIP"))
  evaluation = _artifact_dirs(run, "CompressionEvaluator", "evaluation")[-1]
  for name in ("candidate", "dense"):
    result = tfma.load_eval_result(evaluation, model_name=name)
    overall = dict(result.slicing_metrics)[()][""][""]
    assert overall["example_count"]["doubleValue"] == count
    assert 0.5 < overall["binary_accuracy"]["doubleValue"] <= 1.0


def test_pruned_model_keeps_the_raw_example_serving_contract(run):
  pruned = _artifact_dirs(run, "PruneTrainer", "pruned_model")[-1]
  loaded = tf.saved_model.load(model_io.serving_dir(pruned))
  assert set(loaded.signatures) == {"serving_default", "transform_features"}
  raw_eval = _artifact_dirs(run, "CsvExampleGen", "examples")[-1]
  serialized = next(iter(tf.data.TFRecordDataset(
      tf.io.gfile.glob(os.path.join(raw_eval, "Split-eval", "*")), compression_type="GZIP")
                         .batch(8)))
  outputs = loaded.signatures["serving_default"](examples=serialized)["outputs"].numpy()
  assert outputs.shape == (8, 1) and np.all((outputs >= 0) & (outputs <= 1))
