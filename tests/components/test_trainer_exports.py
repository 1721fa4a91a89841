"""Trainer modules that export with tf.saved_model.save, and binary / regression heads,
through PruneTrainer, TFLiteConverter and the gate's executors (real TFMA, real TFLite)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.compression_evaluator import executor as gate_executor
from tfx_bonsai.components.compression_evaluator import spec as gate_spec
from tfx_bonsai.components.prune_trainer import executor as prune_executor
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import spec as prune_spec
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import executor as converter_executor
from tfx_bonsai.components.tflite_converter import spec as converter_spec
from tests.conftest import write_examples_artifact

keras = model_io.keras()

# A Trainer module's model-building function, as a user's module file holds it.
MODULE = '''
import tf_keras as keras

def build_binary():
  inputs = keras.Input((784,), name="image")
  hidden = keras.layers.Dense(48, activation="relu")(inputs)
  out = keras.layers.Dense(1, activation="sigmoid")(hidden)
  model = keras.Model(inputs, keras.layers.Reshape((1,))(out))
  model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
  return model

def build_regression():
  inputs = keras.Input((784,), name="image")
  hidden = keras.layers.Dense(48, activation="relu")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
  model.compile(optimizer="adam", loss="mse")
  return model

def build_binary_logits():
  inputs = keras.Input((784,), name="image")
  hidden = keras.layers.Dense(48, activation="relu")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
  model.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
  return model

def build_wrong():
  inputs = keras.Input((784,), name="image")
  return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(7)(inputs)))
'''

PRUNE = {
    prune_spec.LABEL_KEY: "label", prune_spec.TRAIN_SPLIT_KEY: "train",
    prune_spec.EVAL_SPLIT_KEY: "eval", prune_spec.TARGET_SPARSITY_KEY: 0.8,
    prune_spec.INITIAL_SPARSITY_KEY: 0.3, prune_spec.SCHEDULE_KEY: "polynomial",
    prune_spec.EPOCHS_KEY: 2, prune_spec.BEGIN_STEP_KEY: 0, prune_spec.FREQUENCY_KEY: 0,
    prune_spec.BATCH_SIZE_KEY: 32, prune_spec.LEARNING_RATE_KEY: 1e-3,
}
CONVERT = {
    converter_spec.QUANTIZATION_KEY: "int8", converter_spec.SPARSE_WEIGHTS_KEY: 0,
    converter_spec.INT8_IO_KEY: 0, converter_spec.REPRESENTATIVE_EXAMPLES_KEY: 100,
    converter_spec.REPRESENTATIVE_SPLIT_KEY: "train", converter_spec.AGREEMENT_EXAMPLES_KEY: 360,
    converter_spec.AGREEMENT_SPLIT_KEY: "train", converter_spec.MIN_AGREEMENT_KEY: 0.97,
    converter_spec.MAX_ABS_ERROR_KEY: 0.6, converter_spec.LABEL_KEY: "label",
    converter_spec.MEASURE_LATENCY_KEY: 0,
}
GATE = {gate_spec.LABEL_KEY: "label", gate_spec.EVAL_SPLIT_KEY: "eval",
        gate_spec.MAX_ACCURACY_DROP_KEY: 0.03, gate_spec.MAX_RELATIVE_ACCURACY_DROP_KEY: 0.0,
        gate_spec.MIN_COMPRESSION_RATIO_KEY: 1.5}


@pytest.fixture(scope="module")
def module_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("module") / "trainer_module.py"
  path.write_text(MODULE)
  return str(path)


def _exported(uri, model, spec):
  """A Trainer output as TFX's taxi module writes it: tf.saved_model.save with signatures."""
  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def serve(serialized):
    return {"outputs": model(tf.io.parse_example(serialized, spec)["image"])}
  artifact = standard_artifacts.Model()
  artifact.uri = uri
  artifact.id = 7
  tf.saved_model.save(model, model_io.serving_dir(uri), signatures={"serving_default": serve})
  return artifact


def _trained(uri, build, images, targets, spec):
  keras.utils.set_random_seed(0)
  model = build()
  model.fit(images, targets, epochs=4, batch_size=32, verbose=0)
  return _exported(uri, model, spec)


def _prune(tmp_path, examples, model, **properties):
  pruned = standard_artifacts.Model()
  pruned.uri = str(tmp_path / "pruned")
  run = standard_artifacts.ModelRun()
  run.uri = str(tmp_path / "run")
  prune_executor.Executor().Do({prune_spec.EXAMPLES_KEY: [examples], prune_spec.MODEL_KEY: [model]},
                               {prune_spec.PRUNED_MODEL_KEY: [pruned],
                                prune_spec.MODEL_RUN_KEY: [run]}, {**PRUNE, **properties})
  return pruned


def _convert(tmp_path, examples, model, **properties):
  output = standard_artifacts.Model()
  output.uri = str(tmp_path / "tflite")
  converter_executor.Executor().Do(
      {converter_spec.MODEL_KEY: [model], converter_spec.EXAMPLES_KEY: [examples]},
      {converter_spec.TFLITE_MODEL_KEY: [output]}, {**CONVERT, **properties})
  return output


def _gate(tmp_path, candidate, dense, examples, **properties):
  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = str(tmp_path / "evaluation")
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  gate_executor.Executor().Do(
      {gate_spec.MODEL_KEY: [candidate], gate_spec.DENSE_MODEL_KEY: [dense],
       gate_spec.EXAMPLES_KEY: [examples]},
      {gate_spec.EVALUATION_KEY: [evaluation], gate_spec.BLESSING_KEY: [blessing]},
      {**GATE, **properties})
  with open(os.path.join(blessing.uri, "verdict.json")) as f:
    return blessing, json.load(f)


@pytest.fixture(scope="module")
def binary_examples(tmp_path_factory, digits_arrays):
  images, labels = digits_arrays
  return write_examples_artifact(str(tmp_path_factory.mktemp("binary")), images,
                                 (labels >= 5).astype(np.int64))


def test_saved_model_export_without_model_fn_is_one_clear_error(tmp_path, binary_examples,
                                                                 module_file, digits_arrays):
  images, labels = digits_arrays
  spec = {"image": tf.io.FixedLenFeature([784], tf.float32)}
  dense = _exported(str(tmp_path / "dense"),
                    model_io.import_model_fn("build_binary", module_file)(), spec)
  with pytest.raises(model_io.ModelError, match=r"exported with tf.saved_model.save .* Set "
                                                r"model_fn to the Trainer module's"):
    _prune(tmp_path, binary_examples, dense)
  with pytest.raises(model_io.ModelError, match=r"model_fn 'build_wrong' builds a model whose "
                                                r"variables do not match"):
    _prune(tmp_path, binary_examples, dense, model_fn="build_wrong", module_file=module_file)
  with pytest.raises(model_io.ModelError, match=r"model_fn 'no_such' cannot be found"):
    _prune(tmp_path, binary_examples, dense, model_fn="no_such", module_file=module_file)


def test_binary_sigmoid_saved_model_export_end_to_end(tmp_path, binary_examples, module_file,
                                                      digits_arrays):
  images, labels = digits_arrays
  spec = {"image": tf.io.FixedLenFeature([784], tf.float32)}
  build = model_io.import_model_fn("build_binary", module_file)
  dense = _trained(str(tmp_path / "dense"), build, images[:1437],
                   (labels[:1437] >= 5).astype(np.float32), spec)
  pruned = _prune(tmp_path, binary_examples, dense, model_fn="build_binary",
                  module_file=module_file)
  assert pruned.get_string_custom_property(prune_spec.HEAD_PROPERTY) == "binary"
  assert pruned.get_float_custom_property(prune_spec.SPARSITY_PROPERTY) >= 0.79
  assert pruned.get_float_custom_property(prune_spec.ACCURACY_PROPERTY) > 0.85
  # The dense model's own serving signature, now on the pruned weights.
  keras_model = model_io.load_keras_model(pruned.uri)
  assert pruning.kernel_sparsity(keras_model) >= 0.79
  serving = tf.saved_model.load(model_io.serving_dir(pruned.uri)).signatures["serving_default"]
  sample = examples_lib.read_sample(binary_examples, "eval", examples_lib.infer_schema(
      binary_examples, "eval"), "label", 16)
  serialized = [tf.train.Example(features=tf.train.Features(feature={
      "image": tf.train.Feature(float_list=tf.train.FloatList(value=row))})).SerializeToString()
                for row in sample["image"]]
  np.testing.assert_allclose(serving(tf.constant(serialized))["outputs"].numpy(),
                             keras_model(sample["image"]).numpy(), atol=1e-5)

  tflite = _convert(tmp_path, binary_examples, pruned)
  assert tflite.get_string_custom_property(converter_spec.AGREEMENT_KIND_PROPERTY) == "top1"
  assert tflite.get_float_custom_property(converter_spec.AGREEMENT_PROPERTY) >= 0.97

  blessing, verdict = _gate(tmp_path, tflite, dense, binary_examples, model_fn="build_binary",
                            module_file=module_file)
  dense_accuracy = blessing.get_float_custom_property(gate_spec.DENSE_ACCURACY_PROPERTY)
  candidate_accuracy = blessing.get_float_custom_property(gate_spec.CANDIDATE_ACCURACY_PROPERTY)
  print(f"binary: sparsity {pruned.get_float_custom_property(prune_spec.SPARSITY_PROPERTY):.3f}, "
        f"dense {dense_accuracy:.4f}, candidate {candidate_accuracy:.4f}, "
        f"ratio {blessing.get_float_custom_property(gate_spec.COMPRESSION_RATIO_PROPERTY):.1f}, "
        f"{verdict['summary']}")
  # The dense binary model measured by TFMA is as accurate as Keras says it is.
  assert dense_accuracy > 0.85 and candidate_accuracy > 0.85
  assert verdict["blessed"], verdict["summary"]


def test_regression_head_end_to_end(tmp_path, digits_examples, module_file, digits_arrays):
  images, labels = digits_arrays
  spec = {"image": tf.io.FixedLenFeature([784], tf.float32)}
  build = model_io.import_model_fn("build_regression", module_file)
  dense = _trained(str(tmp_path / "dense"), build, images[:1437],
                   labels[:1437].astype(np.float32), spec)
  pruned = _prune(tmp_path, digits_examples, dense, model_fn="build_regression",
                  module_file=module_file, head="regression", metric="mae")
  assert pruned.get_string_custom_property(prune_spec.METRIC_PROPERTY) == "mae"
  eval_mae = pruned.get_float_custom_property(prune_spec.EVAL_METRIC_PROPERTY)
  assert 0 < eval_mae < 2.0
  assert not pruned.has_custom_property(prune_spec.ACCURACY_PROPERTY)

  tflite = _convert(tmp_path, digits_examples, pruned, head="regression", quantization="dynamic")
  assert tflite.get_string_custom_property(
      converter_spec.AGREEMENT_KIND_PROPERTY) == "max_abs_error"

  blessing, verdict = _gate(tmp_path, tflite, dense, digits_examples, head="regression",
                            metric="mae", max_metric_increase=0.5, model_fn="build_regression",
                            module_file=module_file)
  candidate = blessing.get_float_custom_property(gate_spec.CANDIDATE_ERROR_PROPERTY)
  dense_error = blessing.get_float_custom_property(gate_spec.DENSE_ERROR_PROPERTY)
  print(f"regression: sparsity {pruned.get_float_custom_property(prune_spec.SPARSITY_PROPERTY):.3f}"
        f", dense MAE {dense_error:.4f}, candidate MAE {candidate:.4f}, {verdict['summary']}")
  assert 0 < dense_error < 2.0 and candidate == pytest.approx(eval_mae, abs=0.1)
  assert [c["name"] for c in verdict["checks"]][0] == "metric_increase"
  assert verdict["blessed"], verdict["summary"]


def test_binary_logits_head_in_the_gate(tmp_path, binary_examples, module_file, digits_arrays):
  images, labels = digits_arrays
  spec = {"image": tf.io.FixedLenFeature([784], tf.float32)}
  build = model_io.import_model_fn("build_binary_logits", module_file)
  dense = _trained(str(tmp_path / "dense"), build, images[:1437],
                   (labels[:1437] >= 5).astype(np.float32), spec)
  keras_model = model_io.load_trainer_model(dense.uri, "build_binary_logits", module_file)
  sample = examples_lib.read_sample(binary_examples, "eval", examples_lib.infer_schema(
      binary_examples, "eval"), "label", 400)
  logits = keras_model.predict(sample["image"], verbose=0)
  assert logits.min() < -1 and logits.max() > 1  # real logits, not probabilities
  expected = float(np.mean((logits.reshape(-1) > 0) == sample["label"].reshape(-1)))
  candidate = standard_artifacts.Model()
  candidate.uri = str(tmp_path / "candidate")
  tf.io.gfile.makedirs(model_io.serving_dir(candidate.uri))
  with tf.io.gfile.GFile(model_io.tflite_path(candidate.uri), "wb") as f:
    f.write(conversion.convert(keras_model, conversion.ConversionConfig(quantization="none")))
  blessing, verdict = _gate(tmp_path, candidate, dense, binary_examples, head="binary_logits",
                            model_fn="build_binary_logits", module_file=module_file,
                            min_compression_ratio=1.0001)
  # Thresholded at 0, not 0.5: TFMA's accuracy matches the logits' own decisions.
  for key in (gate_spec.DENSE_ACCURACY_PROPERTY, gate_spec.CANDIDATE_ACCURACY_PROPERTY):
    assert blessing.get_float_custom_property(key) == pytest.approx(expected, abs=1e-6)
  assert expected > 0.85, verdict["summary"]
