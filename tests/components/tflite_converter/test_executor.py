"""TFLiteConverter's executor on real artifacts, and its component's construction checks."""
import io
import json
import os
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tfx import types
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.tflite_converter import component
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import executor
from tfx_bonsai.components.tflite_converter import spec
from tests.components.pusher import test_executor as pusher_test
from tests.components.tflite_converter import test_metadata

TRAIN = 1437


def properties(**overrides):
  values = {
      spec.QUANTIZATION_KEY: "int8",
      spec.SPARSE_WEIGHTS_KEY: 0,
      spec.INT8_IO_KEY: 0,
      spec.REPRESENTATIVE_EXAMPLES_KEY: 200,
      spec.REPRESENTATIVE_SPLIT_KEY: "train",
      spec.AGREEMENT_EXAMPLES_KEY: 360,
      spec.AGREEMENT_SPLIT_KEY: "train",
      spec.MIN_AGREEMENT_KEY: 0.98,
      spec.MAX_ABS_ERROR_KEY: 0.05,
      spec.LABEL_KEY: "label",
  }
  values.update(overrides)
  return values


def run(model, output_uri, examples=None, schema=None, **overrides):
  output = standard_artifacts.Model()
  output.uri = output_uri
  inputs = {spec.MODEL_KEY: [model]}
  if examples is not None:
    inputs[spec.EXAMPLES_KEY] = [examples]
  if schema is not None:
    inputs[spec.SCHEMA_KEY] = [schema]
  executor.Executor().Do(inputs, {spec.TFLITE_MODEL_KEY: [output]}, properties(**overrides))
  return output


DIGIT_LABELS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def int8_output(small_dense_model, digits_examples, digits_schema, tmp_path_factory):
  return run(small_dense_model, str(tmp_path_factory.mktemp("tflite")), digits_examples,
             digits_schema, labels=json.dumps(DIGIT_LABELS),
             normalization=json.dumps({"mean": [0.0], "std": [16.0]}),
             input_range=json.dumps([0.0, 1.0]))


def test_shipped_file_carries_the_metadata_and_counts_it(int8_output, small_dense_model):
  with tf.io.gfile.GFile(model_io.tflite_path(int8_output.uri), "rb") as f:
    shipped = f.read()
  meta = test_metadata.read_metadata(shipped)
  assert meta.Name() == b"seed_cnn"
  assert meta.Version().decode() == os.path.basename(small_dense_model.uri)
  out = meta.SubgraphMetadata(0).OutputTensorMetadata(0)
  archive = zipfile.ZipFile(io.BytesIO(shipped))
  assert archive.read(out.AssociatedFiles(0).Name().decode()).decode().split() == DIGIT_LABELS
  added = int8_output.get_int_custom_property(spec.METADATA_BYTES_PROPERTY)
  assert 0 < added < len(shipped) == int8_output.get_int_custom_property(
      spec.TFLITE_BYTES_PROPERTY)


def test_the_pusher_ships_the_file_with_its_metadata(int8_output, tmp_path):
  int8_output.id = 7
  blessing = pusher_test.make_blessing(str(tmp_path / "blessing"), True, int8_output)
  pushed = pusher_test.push(int8_output, blessing, str(tmp_path / "serving"),
                            str(tmp_path / "pushed"))
  destination = pushed.get_string_custom_property("pushed_destination")
  with open(os.path.join(destination, model_io.TFLITE_FILE_NAME), "rb") as f:
    shipped = f.read()
  with tf.io.gfile.GFile(model_io.tflite_path(int8_output.uri), "rb") as f:
    assert shipped == f.read()
  assert test_metadata.read_metadata(shipped).Name() == b"seed_cnn"


def test_labels_that_do_not_fit_fail_before_converting(small_dense_model, tmp_path):
  with pytest.raises(ValueError, match=r"labels has 3 entries but the 'multiclass' head has 10"):
    run(small_dense_model, str(tmp_path), quantization="float16",
        labels=json.dumps(["a", "b", "c"]))
  assert not tf.io.gfile.exists(model_io.tflite_path(str(tmp_path)))


def test_component_takes_labels_or_a_labels_file_not_both():
  with pytest.raises(ValueError, match="labels and labels_file are exclusive"):
    component.TFLiteConverter(model=channel(standard_artifacts.Model), quantization="float16",
                              labels=["a"], labels_file="vocab.txt")
  with pytest.raises(ValueError, match=r"normalization mean and std must be non-empty lists"):
    component.TFLiteConverter(model=channel(standard_artifacts.Model), quantization="float16",
                              normalization={"mean": [0.0, 1.0], "std": [1.0]})


def test_int8_model_is_written_where_tfma_looks(int8_output):
  path = model_io.tflite_path(int8_output.uri)
  assert path == os.path.join(int8_output.uri, "Format-Serving", "tflite")
  assert tf.io.gfile.listdir(os.path.dirname(path)) == ["tflite"]
  with tf.io.gfile.GFile(path, "rb") as f:
    model_bytes = f.read()
  interpreter = tf.lite.Interpreter(model_content=model_bytes)
  assert conversion.input_name(interpreter.get_input_details()[0]) == "image"
  assert len(model_bytes) == int8_output.get_int_custom_property(spec.TFLITE_BYTES_PROPERTY)


def test_int8_output_properties_and_report(int8_output):
  raw = int8_output.get_int_custom_property(spec.TFLITE_BYTES_PROPERTY)
  gzipped = int8_output.get_int_custom_property(spec.TFLITE_GZIP_BYTES_PROPERTY)
  assert 0 < gzipped < raw
  assert int8_output.get_string_custom_property(spec.QUANTIZATION_PROPERTY) == "int8"
  assert int8_output.get_int_custom_property(spec.SPARSE_WEIGHTS_PROPERTY) == 0
  assert int8_output.get_string_custom_property(spec.AGREEMENT_KIND_PROPERTY) == "top1"
  assert int8_output.get_float_custom_property(spec.AGREEMENT_PROPERTY) >= 0.98
  assert int8_output.get_int_custom_property(spec.AGREEMENT_EXAMPLES_PROPERTY) == 360
  uses = roles.decode(int8_output.get_string_custom_property(spec.DATA_ROLES_PROPERTY))
  assert [(u.split, u.role, u.parameter) for u in uses] == [
      ("train", roles.FIT, "representative_split"), ("train", roles.SELECTION, "agreement_split")]
  with tf.io.gfile.GFile(os.path.join(int8_output.uri, spec.REPORT_FILE)) as f:
    report = json.load(f)
  assert report[spec.TFLITE_GZIP_BYTES_PROPERTY] == gzipped
  assert report["agreement_inputs"] == "split 'train'"  # the default: never the gate's split


def test_the_models_data_roles_travel_on_with_the_converters_own(small_dense_model,
                                                                 digits_examples, tmp_path):
  pruned = standard_artifacts.Model()
  pruned.mlmd_artifact.CopyFrom(small_dense_model.mlmd_artifact)
  upstream = [roles.Use("train", roles.FIT, "PruneTrainer", "train_split", "fine-tunes on it")]
  pruned.set_string_custom_property(spec.DATA_ROLES_PROPERTY, roles.encode(upstream))
  output = run(pruned, str(tmp_path / "out"), digits_examples, quantization="dynamic",
               agreement_examples=50, measure_latency=0)
  uses = roles.decode(output.get_string_custom_property(spec.DATA_ROLES_PROPERTY))
  assert uses == upstream + [roles.Use("train", roles.SELECTION, "TFLiteConverter",
                                       "agreement_split", "passes or fails the conversion on it")]


def test_too_few_representative_examples_fail_before_converting(
    small_dense_model, digits_examples, tmp_path):
  with pytest.raises(examples_lib.DataError,
                     match=r"representative_examples=2000 but split 'train' .* only 1437"):
    run(small_dense_model, str(tmp_path), digits_examples,
        **{spec.REPRESENTATIVE_EXAMPLES_KEY: 2000})
  assert not tf.io.gfile.exists(model_io.serving_dir(str(tmp_path)))


def test_int8_without_examples_fails(small_dense_model, tmp_path):
  with pytest.raises(ValueError, match="quantization='int8' needs the examples input"):
    run(small_dense_model, str(tmp_path))


def test_float16_without_examples_is_checked_on_synthetic_inputs(small_dense_model, tmp_path):
  output = run(small_dense_model, str(tmp_path), **{spec.QUANTIZATION_KEY: "float16",
                                                    spec.AGREEMENT_EXAMPLES_KEY: 100})
  assert tf.io.gfile.exists(model_io.tflite_path(output.uri))
  assert output.get_int_custom_property(spec.AGREEMENT_EXAMPLES_PROPERTY) == 100
  assert output.get_float_custom_property(spec.AGREEMENT_PROPERTY) >= 0.98


def test_unrunnable_sparse_dynamic_model_is_not_output(
    small_dense_model, digits_arrays, digits_examples, digits_schema, tmp_path):
  images, labels = digits_arrays
  cnn = model_io.load_keras_model(small_dense_model.uri)
  schedule = tfmot.sparsity.keras.ConstantSparsity(0.9, begin_step=0, frequency=10)
  pruned = tfmot.sparsity.keras.prune_low_magnitude(cnn, pruning_schedule=schedule)
  pruned.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
  pruned.fit(images[:TRAIN], labels[:TRAIN], epochs=1, batch_size=32, verbose=0,
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / "pruned")
  model_io.save_keras_model(tfmot.sparsity.keras.strip_pruning(pruned),
                            model_io.serving_dir(model.uri))
  output_uri = str(tmp_path / "tflite")
  overrides = {spec.QUANTIZATION_KEY: "dynamic", spec.SPARSE_WEIGHTS_KEY: 1,
               spec.FALLBACK_KEY: []}
  # With the locked stack (TF 2.21) XNNPack refuses the sparse dynamic-range CONV_2D: without
  # a fallback no mode gives a file that runs, so the file is published marked failed, the
  # combination named (the gate refuses it; SparsityValidator still reads its weights).
  failed = run(model, output_uri, digits_examples, digits_schema, **overrides)
  assert failed.get_int_custom_property(spec.AGREED_PROPERTY) == 0
  assert not failed.has_custom_property(spec.AGREEMENT_PROPERTY)
  failure = failed.get_string_custom_property(spec.CONVERSION_FAILURE_PROPERTY)
  assert "cannot run the model converted with quantization='dynamic', sparse_weights=True" in (
      failure) and "XNNPack" in failure
  assert tf.io.gfile.exists(model_io.tflite_path(output_uri))
  # The default ladder records the refusal and outputs the sparse float16 file that agrees.
  output = run(model, output_uri, digits_examples, digits_schema,
               **{**overrides, spec.FALLBACK_KEY: ["mixed", "dynamic", "float16"],
                  spec.MEASURE_LATENCY_KEY: 0})
  assert output.get_string_custom_property(spec.QUANTIZATION_PROPERTY) == "float16"
  assert output.get_int_custom_property(spec.AGREED_PROPERTY) == 1
  with tf.io.gfile.GFile(os.path.join(output.uri, spec.REPORT_FILE)) as f:
    ladder = json.load(f)["ladder"]
  assert ladder[0]["mode"] == "dynamic" and "XNNPack" in ladder[0]["error"]


def channel(artifact_type):
  return types.Channel(type=artifact_type)


def test_component_declares_its_channels_and_parameters():
  converter = component.TFLiteConverter(
      model=channel(standard_artifacts.Model), examples=channel(standard_artifacts.Examples),
      quantization="dynamic", sparse_weights=True)
  assert converter.outputs[spec.TFLITE_MODEL_KEY].type is standard_artifacts.Model
  assert converter.exec_properties[spec.SPARSE_WEIGHTS_KEY] == 1
  assert converter.exec_properties[spec.QUANTIZATION_KEY] == "dynamic"
  assert np.isclose(converter.exec_properties[spec.MIN_AGREEMENT_KEY], 0.98)


def test_component_rejects_unknown_quantization():
  with pytest.raises(ValueError, match=r"quantization must be one of \['none', 'dynamic', "
                                       r"'float16', 'int8'\], got 'int4'"):
    component.TFLiteConverter(model=channel(standard_artifacts.Model),
                              examples=channel(standard_artifacts.Examples),
                              quantization="int4")


def test_component_rejects_int8_without_examples():
  with pytest.raises(ValueError, match=r"quantization='int8' needs examples"):
    component.TFLiteConverter(model=channel(standard_artifacts.Model))


@pytest.mark.parametrize("arguments, message", [
    ({"min_agreement": 0.0}, r"min_agreement must be in \(0, 1\]"),
    ({"representative_examples": 0}, r"representative_examples must be an integer >= 1"),
    ({"agreement_split": ""}, r"agreement_split must be a non-empty string"),
])
def test_component_checks_numbers_and_splits(arguments, message):
  with pytest.raises(ValueError, match=message):
    component.TFLiteConverter(model=channel(standard_artifacts.Model),
                              examples=channel(standard_artifacts.Examples), **arguments)


def test_agreement_sample_is_capped_at_the_split_size(small_dense_model, digits_examples,
                                                      digits_schema, tmp_path):
  output = run(small_dense_model, str(tmp_path), digits_examples, digits_schema,
               **{spec.QUANTIZATION_KEY: "dynamic", spec.AGREEMENT_EXAMPLES_KEY: 5000,
                  spec.AGREEMENT_SPLIT_KEY: "eval"})
  assert output.get_int_custom_property(spec.AGREEMENT_EXAMPLES_PROPERTY) == 360  # the eval split


LATENCY_PROPERTIES = (spec.LATENCY_MS_1T_PROPERTY, spec.LATENCY_MS_NT_PROPERTY,
                      spec.DENSE_LATENCY_MS_1T_PROPERTY, spec.DENSE_LATENCY_MS_NT_PROPERTY,
                      spec.LATENCY_RATIO_PROPERTY)


def test_latency_is_recorded_against_the_dense_float_model(int8_output):
  values = {key: int8_output.get_float_custom_property(key) for key in LATENCY_PROPERTIES}
  assert all(value > 0 for value in values.values()), values
  assert values[spec.LATENCY_RATIO_PROPERTY] == pytest.approx(
      values[spec.LATENCY_MS_1T_PROPERTY] / values[spec.DENSE_LATENCY_MS_1T_PROPERTY])
  with tf.io.gfile.GFile(os.path.join(int8_output.uri, spec.REPORT_FILE)) as f:
    report = json.load(f)
  assert {key: report[key] for key in LATENCY_PROPERTIES} == pytest.approx(values)
  assert report["latency"]["candidate_nt"]["threads"] == os.cpu_count()
  assert report["latency"]["dense_1t"]["runs"] > 0


def test_latency_can_be_switched_off(small_dense_model, tmp_path):
  output = run(small_dense_model, str(tmp_path), **{spec.QUANTIZATION_KEY: "dynamic",
                                                   spec.MEASURE_LATENCY_KEY: 0})
  assert not any(output.has_custom_property(key) for key in LATENCY_PROPERTIES)
  with tf.io.gfile.GFile(os.path.join(output.uri, spec.REPORT_FILE)) as f:
    assert "latency" not in json.load(f)


def test_component_passes_measure_latency():
  converter = component.TFLiteConverter(model=channel(standard_artifacts.Model),
                                        quantization="dynamic", measure_latency=False)
  assert converter.exec_properties[spec.MEASURE_LATENCY_KEY] == 0
  with pytest.raises(ValueError, match="measure_latency must be True or False"):
    component.TFLiteConverter(model=channel(standard_artifacts.Model), quantization="dynamic",
                              measure_latency="no")
