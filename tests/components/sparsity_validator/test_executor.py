"""SparsityValidator's executor on real SavedModels, and the component's parameter checks."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tfx import types
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.sparsity_validator import component
from tfx_bonsai.components.sparsity_validator import executor
from tfx_bonsai.components.sparsity_validator import spec

DEFAULTS = {spec.MIN_SPARSITY_KEY: 0.85, spec.TOLERANCE_KEY: 0.01,
            spec.INCLUDE_ALL_TENSORS_KEY: 0, spec.SPARSITY_M_BY_N_KEY: "",
            spec.PER_LAYER_MIN_SPARSITY_KEY: None}


def _run(model_artifact, tmp_path, tflite=None, **properties):
  report = standard_artifacts.ModelEvaluation()
  report.uri = str(tmp_path / "report")
  blessing = blessing_lib.SparsityBlessing()
  blessing.uri = str(tmp_path / "blessing")
  inputs = {spec.MODEL_KEY: [model_artifact]}
  if tflite is not None:
    inputs[spec.TFLITE_MODEL_KEY] = [tflite]
  executor.Executor().Do(inputs,
                         {spec.REPORT_KEY: [report], spec.BLESSING_KEY: [blessing]},
                         {**DEFAULTS, **properties})
  return report, blessing


@pytest.fixture(scope="module")
def pruned_model(tmp_path_factory):
  """Model artifact: a small MLP pruned to 90% (ConstantSparsity) by TFMOT, stripped."""
  keras = model_io.keras()
  model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(32, activation="relu", name="hidden"),
                            keras.layers.Dense(4, name="head")])
  pruned = tfmot.sparsity.keras.prune_low_magnitude(
      model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.9, begin_step=0,
                                                                     frequency=1))
  pruned.compile(optimizer="adam", loss="mse")
  rng = np.random.default_rng(0)
  pruned.fit(rng.normal(size=(64, 20)), rng.normal(size=(64, 4)), batch_size=16, epochs=1,
             verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  artifact = standard_artifacts.Model()
  artifact.uri = str(tmp_path_factory.mktemp("pruned_model"))
  artifact.id = 7
  model_io.save_keras_model(tfmot.sparsity.keras.strip_pruning(pruned),
                            model_io.serving_dir(artifact.uri))
  return artifact


def test_dense_model_is_not_blessed_with_a_reason(small_dense_model, tmp_path):
  small_dense_model.id = 3
  report, blessing = _run(small_dense_model, tmp_path)
  assert blessing.get_int_custom_property(blessing_lib.BLESSED_KEY) == 0
  assert os.path.exists(os.path.join(blessing.uri, blessing_lib.NOT_BLESSED_FILE))
  assert not blessing_lib.is_blessed(blessing)
  assert blessing.get_float_custom_property(spec.GLOBAL_SPARSITY_PROPERTY) < 0.1
  verdict = blessing_lib.read_verdict(blessing)
  assert verdict["passed"] is False
  assert verdict["reasons"][0].startswith("global kernel sparsity 0.0")
  assert verdict["reasons"][0].endswith("< target 0.850 - tolerance 0.010")
  assert blessing.get_int_custom_property(blessing_lib.CURRENT_MODEL_ID_KEY) == 3
  saved = json.loads(tf.io.gfile.GFile(os.path.join(report.uri, spec.REPORT_JSON_FILE)).read())
  assert {r["kind"] for r in saved["tensors"]} == {"kernel", "bias", "batchnorm"}


def test_pruned_model_is_blessed_with_report(pruned_model, tmp_path):
  report, blessing = _run(pruned_model, tmp_path, **{
      spec.PER_LAYER_MIN_SPARSITY_KEY: json.dumps({"hidden": 0.89})})
  assert blessing_lib.is_blessed(blessing)
  assert blessing.get_string_custom_property(blessing_lib.CURRENT_MODEL_KEY) == pruned_model.uri
  assert blessing.get_float_custom_property(spec.GLOBAL_SPARSITY_PROPERTY) == pytest.approx(
      0.9, abs=0.01)
  saved = json.loads(tf.io.gfile.GFile(os.path.join(report.uri, spec.REPORT_JSON_FILE)).read())
  rows = {r["name"]: r for r in saved["tensors"]}
  assert rows["hidden/kernel:0"]["total"] == 640
  assert rows["hidden/kernel:0"]["zeros"] == 576
  assert rows["hidden/bias:0"]["kind"] == "bias"
  assert saved["report"]["passed"] is True
  assert [c["name"] for c in saved["report"]["checks"]] == ["global_sparsity",
                                                            "layer_sparsity/hidden"]
  page = tf.io.gfile.GFile(os.path.join(report.uri, spec.REPORT_HTML_FILE)).read()
  assert '<img alt=\'kernel sparsity per layer\' src="data:image/png;base64,' in page
  assert "PASSED" in page


def test_failed_m_by_n_check_is_not_blessed(pruned_model, tmp_path):
  _, blessing = _run(pruned_model, tmp_path, **{spec.SPARSITY_M_BY_N_KEY: "3:4"})
  verdict = blessing_lib.read_verdict(blessing)
  assert not blessing_lib.is_blessed(blessing)
  assert any("breaks 3:4 structure" in r for r in verdict["reasons"])


def _tflite_artifact(keras_model, directory, quantization):
  from tfx_bonsai.components.tflite_converter import conversion  # pylint: disable=g-import-not-at-top
  artifact = standard_artifacts.Model()
  artifact.uri = str(directory)
  model_bytes = conversion.convert(keras_model, conversion.ConversionConfig(
      quantization=quantization, sparse_weights=quantization != "dynamic"))
  tf.io.gfile.makedirs(model_io.serving_dir(artifact.uri))
  with tf.io.gfile.GFile(model_io.tflite_path(artifact.uri), "wb") as f:
    f.write(model_bytes)
  return artifact


def test_deployed_tflite_sparsity_is_measured_and_required(pruned_model, tmp_path):
  keras_model = model_io.load_keras_model(pruned_model.uri, compile=False)
  tflite = _tflite_artifact(keras_model, tmp_path / "tflite", "float16")
  report, blessing = _run(pruned_model, tmp_path, tflite=tflite)
  assert blessing_lib.is_blessed(blessing)
  deployed = blessing.get_float_custom_property(spec.DEPLOYED_SPARSITY_PROPERTY)
  assert deployed == pytest.approx(0.9, abs=0.01)
  saved = json.loads(tf.io.gfile.GFile(os.path.join(report.uri, spec.REPORT_JSON_FILE)).read())
  shapes = sorted(r["shape"] for r in saved["tflite_tensors"])
  assert shapes == [[4, 32], [32, 20]]  # the two kernels, as TFLite stores them (out, in)
  assert {r["encoding"] for r in saved["tflite_tensors"]} == {"sparse"}
  assert "deployed_sparsity" in [c["name"] for c in saved["report"]["checks"]]
  assert "Deployed TFLite kernels" in tf.io.gfile.GFile(
      os.path.join(report.uri, spec.REPORT_HTML_FILE)).read()


def test_a_tflite_that_lost_the_zeros_is_not_blessed(pruned_model, small_dense_model, tmp_path):
  """The Keras model is sparse, but the TFLite given is a dense model's: the zeros are gone."""
  dense = model_io.load_keras_model(small_dense_model.uri, compile=False)
  tflite = _tflite_artifact(dense, tmp_path / "tflite", "dynamic")
  _, blessing = _run(pruned_model, tmp_path, tflite=tflite)
  assert not blessing_lib.is_blessed(blessing)
  reasons = blessing_lib.read_verdict(blessing)["reasons"]
  assert any(r.startswith("the converted TFLite's kernel sparsity 0.0") and "zeros were lost" in r
             for r in reasons), reasons


def test_missing_tflite_file_raises(pruned_model, tmp_path):
  empty = standard_artifacts.Model()
  empty.uri = str(tmp_path / "empty")
  with pytest.raises(model_io.ModelError, match="tflite_model: no TFLite model at"):
    _run(pruned_model, tmp_path, tflite=empty)


def test_unloadable_model_raises(tmp_path):
  empty = standard_artifacts.Model()
  empty.uri = str(tmp_path / "empty")
  empty.id = 1
  with pytest.raises(model_io.ModelError, match="no SavedModel at .*Format-Serving"):
    _run(empty, tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_sparsity": 1.5}, r"min_sparsity must be in \[0, 1\], got 1.5"),
    ({"tolerance": -0.5}, r"tolerance must be in \[0, 1\], got -0.5"),
    ({"per_layer_min_sparsity": {"dense": 2.0}},
     r"per_layer_min_sparsity entry 'dense' must be in \[0, 1\], got 2.0"),
    ({"include_all_tensors": "yes"}, r"include_all_tensors must be True or False"),
    ({"sparsity_m_by_n": "4:2"}, r"sparsity_m_by_n must be '' or 'M:N' with 0 < M < N"),
])
def test_component_rejects_bad_parameters(kwargs, message):
  with pytest.raises(ValueError, match=message):
    component.SparsityValidator(model=types.Channel(type=standard_artifacts.Model), **kwargs)


def test_component_declares_parameters_and_outputs():
  validator = component.SparsityValidator(
      model=types.Channel(type=standard_artifacts.Model), min_sparsity=0.8,
      per_layer_min_sparsity={"dense": 1}, include_all_tensors=True, sparsity_m_by_n="2:4")
  assert validator.exec_properties[spec.PER_LAYER_MIN_SPARSITY_KEY] == {"dense": 1.0}
  assert validator.exec_properties[spec.INCLUDE_ALL_TENSORS_KEY] == 1
  assert validator.outputs[spec.BLESSING_KEY].type is blessing_lib.SparsityBlessing
  assert validator.outputs[spec.REPORT_KEY].type is standard_artifacts.ModelEvaluation


def test_a_tflite_as_sparse_as_its_model_is_not_said_to_have_lost_zeros(pruned_model, tmp_path):
  """Keras and TFLite both at 0.9 against a 0.95 target: under target, but nothing was lost."""
  keras_model = model_io.load_keras_model(pruned_model.uri, compile=False)
  tflite = _tflite_artifact(keras_model, tmp_path / "tflite", "float16")
  _, blessing = _run(pruned_model, tmp_path, tflite=tflite, **{spec.MIN_SPARSITY_KEY: 0.95})
  assert not blessing_lib.is_blessed(blessing)
  reasons = blessing_lib.read_verdict(blessing)["reasons"]
  deployed = [r for r in reasons if r.startswith("the converted TFLite's kernel sparsity 0.9")]
  assert len(deployed) == 1, reasons
  assert "its zeros were kept" in deployed[0]
  assert not any("zeros were lost" in r for r in reasons), reasons


def _searched(artifact, level, searched=1):
  copy = standard_artifacts.Model()
  copy.uri, copy.id = artifact.uri, artifact.id
  copy.set_float_custom_property(model_io.TARGET_SPARSITY_PROPERTY, level)
  copy.set_int_custom_property(model_io.SEARCHED_PROPERTY, searched)
  return copy


@pytest.mark.parametrize("searched, follow, blessed", [
    (1, 1, True),     # the search chose 0.9: that is the target
    (1, 0, False),    # follow_pruning off: the fixed 0.95 stands
    (0, 1, False),    # a fixed target_sparsity: min_sparsity stands
])
def test_the_searched_level_replaces_a_higher_min_sparsity(pruned_model, tmp_path, searched,
                                                           follow, blessed):
  _, blessing = _run(_searched(pruned_model, 0.9, searched), tmp_path,
                     **{spec.MIN_SPARSITY_KEY: 0.95, spec.FOLLOW_PRUNING_KEY: follow})
  assert blessing_lib.is_blessed(blessing) == blessed
  assert blessing_lib.read_verdict(blessing)["targets"]["min_sparsity"] == (
      0.9 if blessed else 0.95)


def test_a_searched_level_above_min_sparsity_does_not_raise_the_bar(pruned_model, tmp_path):
  _, blessing = _run(_searched(pruned_model, 0.97), tmp_path)
  assert blessing_lib.is_blessed(blessing)
  assert blessing_lib.read_verdict(blessing)["targets"]["min_sparsity"] == 0.85
