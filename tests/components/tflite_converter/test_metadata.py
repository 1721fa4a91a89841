"""LiteRT metadata, read back with readers this project did not write.

The model is parsed with the `tflite` package (a third-party parser of the TFLite schema),
the metadata flatbuffer with the FlatBuffers compiler's code for LiteRT's schema, and the
label file with `zipfile`, as LiteRT's metadata extractor finds it.
"""
import io
import zipfile

import flatbuffers
import numpy as np
import pytest
import tensorflow as tf
import tflite

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.tflite_converter import metadata
from tfx_bonsai.components.tflite_converter.litert_metadata import (
    metadata_schema_py_generated as metadata_fb)

DIGITS = [str(d) for d in range(10)]


def read_metadata(model_bytes: bytes) -> metadata_fb.ModelMetadata:
  """The ModelMetadata of the TFLITE_METADATA entry, found with the `tflite` package."""
  model = tflite.Model.GetRootAs(model_bytes, 0)
  entries = {model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
             for i in range(model.MetadataLength())}
  assert "TFLITE_METADATA" in entries, sorted(entries)
  data = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
  assert flatbuffers.util.BufferHasIdentifier(data, 0, b"M001")
  return metadata_fb.ModelMetadata.GetRootAs(data, 0)


def tiny_classifier(units: int = 10, activation: str = "softmax"):
  keras = model_io.keras()
  inputs = keras.Input((16,), name="image")
  outputs = keras.layers.Dense(units, activation=activation)(keras.layers.Dense(8)(inputs))
  return keras.Model(inputs, outputs, name="tiny")


def convert(model, int8: bool = False) -> bytes:
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  if int8:
    rng = np.random.default_rng(0)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.random((1, 16), dtype=np.float32)] for _ in range(20))
  return converter.convert()


def outputs(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
  interpreter = tf.lite.Interpreter(model_content=model_bytes)
  interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
  interpreter.invoke()
  return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def info(**overrides):
  values = dict(name="tiny", version="42", description="a tiny classifier",
                head=heads.MULTICLASS, mean=(0.0,), std=(16.0,), input_range=(0.0, 1.0),
                labels=tuple(DIGITS))
  values.update(overrides)
  return metadata.ModelInfo(**values)


@pytest.fixture(scope="module")
def float_bytes():
  return convert(tiny_classifier())


def test_metadata_reads_back_with_name_inputs_outputs_and_labels(float_bytes):
  shipped = metadata.populate(float_bytes, info())
  meta = read_metadata(shipped)
  assert (meta.Name(), meta.Version(), meta.Description()) == (
      b"tiny", b"42", b"a tiny classifier")
  assert meta.MinParserVersion() == b"1.0.0"
  graph = meta.SubgraphMetadata(0)
  (inp,), (out,) = ([graph.InputTensorMetadata(i) for i in range(graph.InputTensorMetadataLength())],
                    [graph.OutputTensorMetadata(i)
                     for i in range(graph.OutputTensorMetadataLength())])
  assert inp.Name() == b"serving_default_image:0"
  assert inp.Content().ContentPropertiesType() == metadata_fb.ContentProperties.FeatureProperties
  unit = inp.ProcessUnits(0)
  assert unit.OptionsType() == metadata_fb.ProcessUnitOptions.NormalizationOptions
  normalization = metadata_fb.NormalizationOptions()
  normalization.Init(unit.Options().Bytes, unit.Options().Pos)
  assert list(normalization.MeanAsNumpy()) == [0.0] and list(normalization.StdAsNumpy()) == [16.0]
  assert (list(inp.Stats().MinAsNumpy()), list(inp.Stats().MaxAsNumpy())) == ([0.0], [1.0])
  assert b"probability of each class" in out.Description()
  label_file = out.AssociatedFiles(0)
  assert label_file.Type() == metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
  archive = zipfile.ZipFile(io.BytesIO(shipped))
  assert archive.read(label_file.Name().decode()).decode().split() == DIGITS


@pytest.mark.parametrize("int8", [False, True])
def test_interpreter_gives_identical_outputs_with_metadata(int8):
  bare = convert(tiny_classifier(), int8=int8)
  shipped = metadata.populate(bare, info())
  assert len(shipped) > len(bare)
  x = np.random.default_rng(1).random((5, 16), dtype=np.float32)
  np.testing.assert_array_equal(outputs(shipped, x), outputs(bare, x))


def test_unstated_normalization_writes_no_normalization(float_bytes):
  meta = read_metadata(metadata.populate(float_bytes, info(mean=(), std=(), input_range=(),
                                                           labels=())))
  inp = meta.SubgraphMetadata(0).InputTensorMetadata(0)
  assert inp.ProcessUnitsLength() == 0 and inp.Stats() is None
  assert b"normalization not stated" in inp.Description()
  assert meta.SubgraphMetadata(0).OutputTensorMetadata(0).AssociatedFilesLength() == 0


def test_image_inputs_are_described_as_images():
  keras = model_io.keras()
  inputs = keras.Input((8, 8, 1), name="pixels")
  model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(
      keras.layers.Flatten()(inputs)))
  meta = read_metadata(metadata.populate(convert(model), info(labels=("a", "b", "c"))))
  content = meta.SubgraphMetadata(0).InputTensorMetadata(0).Content()
  assert content.ContentPropertiesType() == metadata_fb.ContentProperties.ImageProperties
  image = metadata_fb.ImageProperties()
  image.Init(content.ContentProperties().Bytes, content.ContentProperties().Pos)
  assert image.ColorSpace() == metadata_fb.ColorSpaceType.GRAYSCALE


@pytest.mark.parametrize("head, labels, message", [
    (heads.MULTICLASS, DIGITS[:7], r"labels has 7 entries but the 'multiclass' head has 10"),
    (heads.REGRESSION, DIGITS, r"head 'regression' is not a classifier"),
])
def test_labels_that_do_not_fit_are_refused(float_bytes, head, labels, message):
  with pytest.raises(metadata.MetadataError, match=message):
    metadata.populate(float_bytes, info(head=head, labels=tuple(labels)))


def test_labels_file_is_one_label_per_line(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_text("cat\ndog\n\n")
  assert metadata.read_labels(str(path)) == ["cat", "dog"]
  with pytest.raises(metadata.MetadataError, match="does not exist"):
    metadata.read_labels(str(tmp_path / "missing.txt"))
