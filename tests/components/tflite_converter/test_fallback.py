"""The quantization ladder (issue 21.3): int8 -> mixed -> dynamic -> float16, the first file
that agrees is kept; when none agrees the run ends NOT BLESSED at the gate, nothing pushed."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.compression_evaluator import executor as gate_executor
from tfx_bonsai.components.compression_evaluator import spec as gate_spec
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import executor
from tfx_bonsai.components.tflite_converter import settings
from tfx_bonsai.components.tflite_converter import spec

keras = model_io.keras()
TRAIN = 1437


@pytest.mark.parametrize("quantization, fallback, int8_io, expected", [
    ("int8", settings.DEFAULT_FALLBACK, False, ["int8", "mixed", "dynamic", "float16"]),
    ("int8", settings.DEFAULT_FALLBACK, True, ["int8", "mixed"]),
    ("int8", [], False, ["int8"]),
    ("dynamic", settings.DEFAULT_FALLBACK, False, ["dynamic", "float16"]),
    ("int8", ["float16", "dynamic"], False, ["int8", "dynamic", "float16"]),
    ("float16", ["none"], False, ["float16", "none"]),
])
def test_the_ladder_tries_milder_modes_in_order(quantization, fallback, int8_io, expected):
  assert settings.ladder(quantization, fallback, int8_io) == expected


@pytest.mark.parametrize("fallback, message", [
    (["int4"], r"fallback items must be among \['mixed', 'dynamic', 'float16', 'none'\], "
               r"got \['int4'\]"),
    (["int8"], r"fallback items must be among .*got \['int8'\]"),
    (["dynamic", "dynamic"], r"fallback lists a mode twice"),
    ("dynamic", r"fallback must be a list"),
])
def test_invalid_fallback_names_the_field(fallback, message):
  with pytest.raises(ValueError, match=message):
    settings.TFLiteConverterSettings(fallback=fallback).validate()


def collapsed_conv(images, labels):
  """A small conv model on digits whose softmax margins collapsed (median top-2 gap about one
  int8 step), as after too hard a pruning: still accurate, but int8 cannot tell its classes."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input((784,), name="image")
  x = keras.layers.Reshape((28, 28, 1))(inputs)
  x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
  x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
  x = keras.layers.Flatten()(x)
  head = keras.layers.Dense(10, activation="softmax")
  model = keras.Model(inputs, head(x))
  model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  model.fit(images, labels, epochs=3, batch_size=32, verbose=0)
  kernel, bias = head.get_weights()
  head.set_weights([kernel * 0.01, bias * 0.01])
  return model


@pytest.fixture(scope="module")
def collapsed(digits_arrays):
  images, labels = digits_arrays
  return collapsed_conv(images[:TRAIN], labels[:TRAIN])


@pytest.fixture(scope="module")
def ladder_outcome(collapsed, digits_arrays):
  images, _ = digits_arrays
  return conversion.convert_with_fallback(collapsed, conversion.ConversionConfig(),
                                      {"image": images[:200]}, {"image": images[TRAIN:]})


def test_collapsed_margins_fail_int8_and_a_milder_mode_agrees(collapsed, ladder_outcome,
                                                                digits_arrays):
  images, _ = digits_arrays
  held_out = {"image": images[TRAIN:]}
  first = ladder_outcome.attempts[0]
  assert first.mode == "int8" and not first.agreement.passed
  assert first.agreement.raw < 0.96
  assert ladder_outcome.agreed and ladder_outcome.mode != "int8"
  assert [a.mode for a in ladder_outcome.attempts] == (
      ["int8", "mixed", "dynamic", "float16"][:len(ladder_outcome.attempts)])
  # The kept file, run again on its own: its classes are the Keras model's.
  expected = np.argmax(collapsed.predict(held_out["image"], verbose=0), 1)
  actual = np.argmax(conversion.run_tflite(ladder_outcome.model_bytes, held_out), 1)
  assert np.mean(actual == expected) >= 0.98


def test_mixed_keeps_the_softmax_float_and_stays_int8_elsewhere(collapsed, ladder_outcome):
  assert ladder_outcome.mode == "mixed"
  assert any(layer.startswith("SOFTMAX") for layer in ladder_outcome.float_layers)
  interpreter = tf.lite.Interpreter(
      model_content=ladder_outcome.model_bytes,
      experimental_op_resolver_type=tf.lite.experimental.OpResolverType
      .BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  kernels = [d for d in interpreter.get_tensor_details() if len(d["shape"]) == 4]
  assert kernels and all(d["dtype"] == np.int8 for d in kernels if "Conv2D" in d["name"])
  assert len(ladder_outcome.model_bytes) < 0.5 * len(tflite.dense_float(collapsed))


def test_without_fallback_the_int8_file_is_returned_marked_failed(collapsed, digits_arrays):
  images, _ = digits_arrays
  outcome = conversion.convert_with_fallback(
      collapsed, conversion.ConversionConfig(fallback=[]), {"image": images[:200]},
      {"image": images[TRAIN:]})
  assert not outcome.agreed and outcome.mode == "int8"
  assert [a.mode for a in outcome.attempts] == ["int8"]
  assert "no conversion agrees" in outcome.failure and "below min_agreement=0.98" in outcome.failure


@pytest.fixture(scope="module")
def model_artifacts(tmp_path_factory, digits_arrays, digits_schema, collapsed):
  """The collapsed conv model and a small regression model, as Model artifacts."""
  images, _ = digits_arrays
  keras.utils.set_random_seed(1)
  inputs = keras.Input((784,), name="image")
  regression = keras.Model(inputs, keras.layers.Dense(1)(
      keras.layers.Dense(8, activation="relu")(inputs)))
  spec_ = examples_lib.feature_spec(examples_lib.load_schema(digits_schema))
  artifacts = {}
  for name, model in (("collapsed", collapsed), ("regression", regression)):
    artifact = standard_artifacts.Model()
    artifact.uri = str(tmp_path_factory.mktemp(name))
    artifact.id = len(artifacts) + 31
    model_io.save_keras_model(model, model_io.serving_dir(artifact.uri), spec_)
    artifacts[name] = artifact
  return artifacts


def run_converter(model, output_uri, examples, schema, **overrides):
  output = standard_artifacts.Model()
  output.uri = output_uri
  output.id = 41
  properties = {spec.REPRESENTATIVE_EXAMPLES_KEY: 200, spec.AGREEMENT_EXAMPLES_KEY: 360,
                spec.LABEL_KEY: "label", spec.MEASURE_LATENCY_KEY: 0, **overrides}
  executor.Executor().Do({spec.MODEL_KEY: [model], spec.EXAMPLES_KEY: [examples],
                          spec.SCHEMA_KEY: [schema]},
                         {spec.TFLITE_MODEL_KEY: [output]}, properties)
  with tf.io.gfile.GFile(os.path.join(output.uri, spec.REPORT_FILE)) as f:
    return output, json.load(f)


def test_executor_records_the_mode_chosen_and_the_float_layers(
    model_artifacts, digits_examples, digits_schema, tmp_path):
  output, report = run_converter(model_artifacts["collapsed"], str(tmp_path), digits_examples,
                                 digits_schema)
  assert output.get_int_custom_property(spec.AGREED_PROPERTY) == 1
  assert output.get_string_custom_property(spec.REQUESTED_QUANTIZATION_PROPERTY) == "int8"
  chosen = output.get_string_custom_property(spec.QUANTIZATION_PROPERTY)
  assert chosen == report[spec.QUANTIZATION_PROPERTY] == "mixed"
  layers = json.loads(output.get_string_custom_property(spec.FLOAT_LAYERS_PROPERTY))
  assert layers and layers == report[spec.FLOAT_LAYERS_PROPERTY]
  assert [step["mode"] for step in report["ladder"]] == ["int8", "mixed"]
  assert not report["ladder"][0]["agreement"]["passed"]
  assert not output.has_custom_property(spec.CONVERSION_FAILURE_PROPERTY)
  with tf.io.gfile.GFile(model_io.tflite_path(output.uri), "rb") as f:
    assert len(f.read()) == output.get_int_custom_property(spec.TFLITE_BYTES_PROPERTY)


def test_no_mode_agrees_ends_not_blessed_at_the_gate_and_nothing_is_pushed(
    model_artifacts, digits_examples, digits_schema, tmp_path):
  # No quantized file of a regression model is within 1e-7 of it: every mode disagrees. (The
  # agreement is checked on train: the gate refuses a candidate whose conversion chose on eval.)
  output, report = run_converter(model_artifacts["regression"], str(tmp_path / "tflite"),
                                 digits_examples, digits_schema,
                                 **{spec.HEAD_KEY: "regression", spec.MAX_ABS_ERROR_KEY: 1e-7,
                                    spec.AGREEMENT_SPLIT_KEY: "train"})
  assert output.get_int_custom_property(spec.AGREED_PROPERTY) == 0
  failure = output.get_string_custom_property(spec.CONVERSION_FAILURE_PROPERTY)
  assert "no conversion agrees" in failure and "above max_abs_error=1e-07" in failure
  assert [step["mode"] for step in report["ladder"]] == ["int8", "mixed", "dynamic", "float16"]
  assert all(not step["agreement"]["passed"] for step in report["ladder"])

  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = str(tmp_path / "evaluation")
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  gate_executor.Executor().Do(
      {gate_spec.MODEL_KEY: [output], gate_spec.DENSE_MODEL_KEY: [model_artifacts["regression"]],
       gate_spec.EXAMPLES_KEY: [digits_examples]},
      {gate_spec.EVALUATION_KEY: [evaluation], gate_spec.BLESSING_KEY: [blessing]},
      {gate_spec.LABEL_KEY: "label", gate_spec.EVAL_SPLIT_KEY: "eval"})
  assert not blessing_lib.is_blessed(blessing)
  assert tf.io.gfile.exists(os.path.join(blessing.uri, blessing_lib.NOT_BLESSED_FILE))
  verdict = blessing_lib.read_verdict(blessing)
  assert verdict["reasons"] == [f"conversion failed: {failure}"]
  # Nothing evaluated: the evaluation holds only the verdict as TFMA's ValidationResult.
  assert tf.io.gfile.listdir(evaluation.uri) == ["validations"]
  validations = tfma.load_validation_result(evaluation.uri)
  assert not validations.validation_ok
  assert [f.message for f in validations.metric_validations_per_slice[0].failures] == [
      f"conversion failed: {failure}"]

  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed")
  destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
      base_directory=str(tmp_path / "serving")))
  pusher_executor.Executor().Do(
      {standard_component_specs.MODEL_KEY: [output],
       standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
      {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination),
       standard_component_specs.CUSTOM_CONFIG_KEY: "null"})
  assert pushed.get_int_custom_property("pushed") == 0
  assert not tf.io.gfile.exists(str(tmp_path / "serving"))


def test_the_pipeline_config_takes_the_ladder_and_names_a_bad_mode():
  from tfx_bonsai.pipeline import config as config_lib  # pylint: disable=g-import-not-at-top
  digits = os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs", "digits.yaml")
  default = config_lib.tflite_converter_settings(config_lib.load(digits))
  assert default.modes == ["int8", "mixed", "dynamic", "float16"]
  assert default.max_tie_share == 0.02
  off = config_lib.tflite_converter_settings(config_lib.load(digits, ["conversion.fallback=[]"]))
  assert off.modes == ["int8"]
  with pytest.raises(config_lib.ConfigError,
                     match=r"conversion.fallback: items must be among \['mixed', 'dynamic', "
                           r"'float16', 'none'\], got \['int4'\]"):
    config_lib.load(digits, ["conversion.fallback=[int4]"])
  # The cap on near-ties is itself capped: a file agreeing on half the examples never passes.
  with pytest.raises(config_lib.ConfigError,
                     match=r"conversion.max_tie_share: must be in \[0, 0.05\] \(a cap on "
                           r"near-ties\), got 0.5"):
    config_lib.load(digits, ["conversion.max_tie_share=0.5"])


def test_mixed_on_a_one_layer_model_is_recorded_as_not_applicable():
  keras.utils.set_random_seed(2)
  inputs = keras.Input((4,), name="x")
  model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
  data = {"x": np.random.default_rng(0).random((100, 4), np.float32)}
  config = conversion.ConversionConfig(head="regression", max_abs_error=1e-7,
                                       fallback=["mixed"])
  outcome = conversion.convert_with_fallback(model, config, data, data, head="regression")
  assert not outcome.agreed and outcome.mode == "int8"
  assert [a.mode for a in outcome.attempts] == ["int8", "mixed"]
  assert "1 quantized layer(s), none to keep float" in outcome.attempts[1].error


def test_a_hard_pruned_model_with_sparse_weights_falls_back_to_a_sparse_mixed_file(
    collapsed, digits_arrays):
  from tfx_bonsai.components.sparsity_validator import sparsity  # pylint: disable=g-import-not-at-top
  images, _ = digits_arrays
  pruned = keras.models.clone_model(collapsed)
  pruned.set_weights([np.where(np.abs(w) < np.quantile(np.abs(w), 0.9), 0, w) if w.ndim >= 2
                      else w for w in collapsed.get_weights()])
  outcome = conversion.convert_with_fallback(
      pruned, conversion.ConversionConfig(sparse_weights=True), {"image": images[:200]},
      {"image": images[TRAIN:]})
  assert not outcome.attempts[0].agreement.passed
  assert outcome.agreed and outcome.mode == "mixed"
  encodings = {row["encoding"] for row in sparsity.tflite_tensor_table(outcome.model_bytes)}
  assert "sparse" in encodings
