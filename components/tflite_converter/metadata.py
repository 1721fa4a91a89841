"""LiteRT metadata for a converted model: descriptions, normalization, value ranges and labels.

Written with LiteRT's public metadata schema (litert_metadata/metadata_schema.fbs) the way
LiteRT's MetadataPopulator does: the ModelMetadata flatbuffer in a model buffer named by a
`TFLITE_METADATA` entry, and the associated files (the label file) in a zip archive appended
to the flatbuffer. The Task Library, codegen and the metadata extractors read it from there.
"""
import dataclasses
import io
import zipfile
from typing import List, Optional, Sequence

import flatbuffers
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema_fb
from tensorflow.lite.tools import flatbuffer_utils

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.tflite_converter.litert_metadata import (
    metadata_schema_py_generated as metadata_fb)

METADATA_NAME = "TFLITE_METADATA"      # the model metadata entry LiteRT's readers look up
METADATA_FILE_IDENTIFIER = b"M001"     # metadata_schema.fbs's file_identifier
# The oldest metadata parser that reads every field written here (all in schema 1.0.0).
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
DIGIT_LABELS = tuple(str(d) for d in range(10))
_CLASSIFICATION = (heads.MULTICLASS, heads.MULTICLASS_LOGITS, heads.BINARY, heads.BINARY_LOGITS)


class MetadataError(ValueError):
  """Metadata settings that do not fit the model (e.g. 7 labels for 10 classes)."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """One input or output tensor as the interpreter sees it."""
  name: str
  shape: Sequence[int]
  dtype: str  # numpy name, e.g. "float32", "int8"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What the metadata says: the model, how its inputs are scaled, what its output means."""
  name: str
  version: str
  description: str
  head: str
  mean: Sequence[float] = ()           # (raw - mean) / std gives the model's input; () unstated
  std: Sequence[float] = ()
  input_range: Sequence[float] = ()    # [min, max] of the model's input, () unstated
  labels: Sequence[str] = ()           # one per class; () none


def read_labels(path: str) -> List[str]:
  """One label per non-empty line (a Transform vocabulary file works as it is)."""
  if not tf.io.gfile.exists(path):
    raise MetadataError(f"labels_file {path!r} does not exist")
  with tf.io.gfile.GFile(path, "r") as f:
    labels = [line.strip() for line in f.read().splitlines() if line.strip()]
  if not labels:
    raise MetadataError(f"labels_file {path!r} holds no labels (one per line expected)")
  return labels


def check_labels(head: str, classes: int, labels: Sequence[str]) -> None:
  """MetadataError unless `labels` fit the head: one per class (two for a one-unit binary head)."""
  if not labels:
    return
  if head not in _CLASSIFICATION:
    raise MetadataError(f"labels name classes; head {head!r} is not a classifier: leave labels "
                        f"and labels_file empty")
  expected = 2 if head in (heads.BINARY, heads.BINARY_LOGITS) else classes
  if len(labels) != expected:
    raise MetadataError(f"labels has {len(labels)} entries but the {head!r} head has {expected} "
                        f"classes: give one label per class, in class-index order")


def _stats(values: Sequence[float]) -> Optional[metadata_fb.StatsT]:
  if not values:
    return None
  stats = metadata_fb.StatsT()
  stats.min, stats.max = [float(values[0])], [float(values[1])]
  return stats


def _content(tensor: TensorInfo) -> metadata_fb.ContentT:
  """ImageProperties for a [1, H, W, 1|3] tensor, FeatureProperties for any other."""
  content = metadata_fb.ContentT()
  shape = list(tensor.shape)
  if len(shape) == 4 and shape[-1] in (1, 3):
    image = metadata_fb.ImagePropertiesT()
    image.colorSpace = (metadata_fb.ColorSpaceType.GRAYSCALE if shape[-1] == 1
                        else metadata_fb.ColorSpaceType.RGB)
    content.contentPropertiesType = metadata_fb.ContentProperties.ImageProperties
    content.contentProperties = image
  else:
    content.contentPropertiesType = metadata_fb.ContentProperties.FeatureProperties
    content.contentProperties = metadata_fb.FeaturePropertiesT()
  return content


def _input(tensor: TensorInfo, info: ModelInfo) -> metadata_fb.TensorMetadataT:
  meta = metadata_fb.TensorMetadataT()
  meta.name = tensor.name
  scaled = (f"(raw - {list(info.mean)}) / {list(info.std)}" if info.mean
            else "normalization not stated")
  meta.description = (f"{tensor.dtype} tensor of shape {list(tensor.shape)}; {scaled}"
                      + (f"; values in [{info.input_range[0]}, {info.input_range[1]}]"
                         if info.input_range else ""))
  meta.content = _content(tensor)
  if info.mean:  # int8 inputs too: quantized models keep the float model's (the schema)
    normalization = metadata_fb.NormalizationOptionsT()
    normalization.mean = [float(v) for v in info.mean]
    normalization.std = [float(v) for v in info.std]
    unit = metadata_fb.ProcessUnitT()
    unit.optionsType = metadata_fb.ProcessUnitOptions.NormalizationOptions
    unit.options = normalization
    meta.processUnits = [unit]
  meta.stats = _stats(info.input_range)
  return meta


_MEANINGS = {
    heads.MULTICLASS: "probability of each class (softmax)",
    heads.MULTICLASS_LOGITS: "logit of each class (the largest is the predicted class)",
    heads.BINARY: "probability of class 1 (sigmoid)",
    heads.BINARY_LOGITS: "logit of class 1 (class 1 when > 0)",
    heads.REGRESSION: "predicted value",
}


def _output(tensor: TensorInfo, info: ModelInfo) -> metadata_fb.TensorMetadataT:
  meta = metadata_fb.TensorMetadataT()
  meta.name = tensor.name
  meta.description = f"{_MEANINGS[info.head]}: {tensor.dtype} tensor of shape {list(tensor.shape)}"
  meta.content = metadata_fb.ContentT()
  meta.content.contentPropertiesType = metadata_fb.ContentProperties.FeatureProperties
  meta.content.contentProperties = metadata_fb.FeaturePropertiesT()
  if info.head in (heads.MULTICLASS, heads.BINARY):
    meta.stats = _stats((0.0, 1.0))
  if info.labels:
    labels = metadata_fb.AssociatedFileT()
    labels.name = LABELS_FILE
    labels.description = "The class names, one per line, in output-index order."
    # The labels name the output's last axis (one score per class; for a one-unit binary head
    # the file's two lines are the negative and the positive class). TENSOR_VALUE_LABELS
    # would say the output's values are class indices, which no head here outputs.
    labels.type = metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    meta.associatedFiles = [labels]
  return meta


def metadata_bytes(info: ModelInfo, inputs: Sequence[TensorInfo],
                   outputs: Sequence[TensorInfo]) -> bytes:
  """The ModelMetadata flatbuffer (file identifier M001) describing the model."""
  subgraph = metadata_fb.SubGraphMetadataT()
  subgraph.inputTensorMetadata = [_input(t, info) for t in inputs]
  subgraph.outputTensorMetadata = [_output(t, info) for t in outputs]
  model = metadata_fb.ModelMetadataT()
  model.name, model.version, model.description = info.name, info.version, info.description
  model.author = "tfx-bonsai TFLiteConverter"
  model.subgraphMetadata = [subgraph]
  model.minParserVersion = MIN_PARSER_VERSION
  builder = flatbuffers.Builder(1024)
  builder.Finish(model.Pack(builder), file_identifier=METADATA_FILE_IDENTIFIER)
  return bytes(builder.Output())


def tensors(model_bytes: bytes):
  """(inputs, outputs) of the model's first subgraph as TensorInfo, in the interpreter's order."""
  model = schema_fb.Model.GetRootAs(model_bytes, 0)
  graph = model.Subgraphs(0)
  names = {v: k.lower() for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}

  def info(index):
    tensor = graph.Tensors(index)
    return TensorInfo(tensor.Name().decode(), [int(d) for d in tensor.ShapeAsNumpy()],
                      names[tensor.Type()])
  return ([info(graph.Inputs(i)) for i in range(graph.InputsLength())],
          [info(graph.Outputs(i)) for i in range(graph.OutputsLength())])


def populate(model_bytes: bytes, info: ModelInfo) -> bytes:
  """`model_bytes` with `info` as its LiteRT metadata and the label file associated.

  Raises MetadataError when the labels do not fit the output.
  """
  inputs, outputs = tensors(model_bytes)
  classes = outputs[0].shape[-1] if outputs[0].shape else 1
  check_labels(info.head, classes, info.labels)
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
  buffer = schema_fb.BufferT()
  buffer.data = np.frombuffer(metadata_bytes(info, inputs, outputs), dtype=np.uint8)
  model.buffers.append(buffer)
  entry = schema_fb.MetadataT()
  entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
  model.metadata = [m for m in (model.metadata or [])
                    if (m.name.decode() if isinstance(m.name, bytes) else m.name) != METADATA_NAME]
  model.metadata.append(entry)
  shipped = io.BytesIO(flatbuffer_utils.convert_object_to_bytearray(model))
  if info.labels:
    with zipfile.ZipFile(shipped, "a") as archive:
      archive.writestr(LABELS_FILE, "\n".join(info.labels) + "\n")
  return shipped.getvalue()
