"""TFLiteConverter: converts a Keras model to a TFLite model that provably agrees with it."""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import executor
from tfx_bonsai.components.tflite_converter import spec


class TFLiteConverter(base_component.BaseComponent):
  """Converts `model` (a Keras SavedModel) to TFLite and checks it against the Keras model.

  Outputs `tflite_model`: a Model whose `Format-Serving/tflite` is the converted model
  (where TFMA's `tf_lite` model type and the stock Pusher look), with properties
  `tflite_bytes`, `tflite_gzip_bytes`, `quantization`, `sparse_weights`, `agreement`,
  `agreement_kind` and `agreement_examples`. The component fails, and outputs nothing,
  when the interpreter cannot run the model or it disagrees beyond the bound.

  With `measure_latency` (default on) it also times the model and the dense float
  TFLite of the same Keras model at batch 1 with XNNPack, on 1 thread and on all CPU
  threads: float properties `latency_ms_1t`, `latency_ms_nt`, `dense_latency_ms_1t`,
  `dense_latency_ms_nt` and `latency_ratio` (candidate / dense, 1 thread), also in
  `conversion.json`.
  """
  SPEC_CLASS = spec.TFLiteConverterSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               model: types.BaseChannel,
               examples: Optional[types.BaseChannel] = None,
               schema: Optional[types.BaseChannel] = None,
               quantization: str = "int8",
               sparse_weights: bool = False,
               int8_io: bool = False,
               representative_examples: int = 200,
               representative_split: str = "train",
               agreement_examples: int = 360,
               agreement_split: str = "eval",
               min_agreement: float = 0.98,
               max_abs_error: float = 0.05,
               label_key: str = "label",
               measure_latency: bool = True,
               head: str = "auto"):
    heads.validate(head)
    if measure_latency not in (True, False):
      raise ValueError(f"measure_latency must be a bool (or 0/1), got {measure_latency!r}")
    conversion.ConversionConfig(
        quantization=quantization, sparse_weights=sparse_weights, int8_io=int8_io,
        representative_examples=representative_examples,
        agreement_examples=agreement_examples, min_agreement=min_agreement,
        max_abs_error=max_abs_error).validate()
    if quantization == "int8" and examples is None:
      raise ValueError(
          "quantization='int8' needs examples: it calibrates on representative_examples "
          f"of their {representative_split!r} split; pass examples=... or use one of "
          f"{[q for q in conversion.QUANTIZATIONS if q != 'int8']}")
    for name, value in (("representative_split", representative_split),
                        ("agreement_split", agreement_split)):
      if not value:
        raise ValueError(f"{name} must name a split of the examples (e.g. 'train'), got ''")
    super().__init__(spec.TFLiteConverterSpec(**{
        spec.MODEL_KEY: model,
        spec.EXAMPLES_KEY: examples,
        spec.SCHEMA_KEY: schema,
        spec.QUANTIZATION_KEY: quantization,
        spec.SPARSE_WEIGHTS_KEY: int(bool(sparse_weights)),
        spec.INT8_IO_KEY: int(bool(int8_io)),
        spec.REPRESENTATIVE_EXAMPLES_KEY: int(representative_examples),
        spec.REPRESENTATIVE_SPLIT_KEY: representative_split,
        spec.AGREEMENT_EXAMPLES_KEY: int(agreement_examples),
        spec.AGREEMENT_SPLIT_KEY: agreement_split,
        spec.MIN_AGREEMENT_KEY: float(min_agreement),
        spec.MAX_ABS_ERROR_KEY: float(max_abs_error),
        spec.LABEL_KEY: label_key,
        spec.MEASURE_LATENCY_KEY: int(measure_latency),
        spec.HEAD_KEY: head,
        spec.TFLITE_MODEL_KEY: types.Channel(type=standard_artifacts.Model),
    }))
