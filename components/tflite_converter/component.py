"""TFLiteConverter: converts a Keras model to a TFLite model that provably agrees with it."""
from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import params
from tfx_bonsai.components.tflite_converter import executor
from tfx_bonsai.components.tflite_converter import settings
from tfx_bonsai.components.tflite_converter import spec

_DEFAULTS = settings.TFLiteConverterSettings


class TFLiteConverter(base_component.BaseComponent):
  """Converts `model` (a Keras SavedModel) to TFLite and checks it against the Keras model.

  It tries `quantization`, then the milder modes of `fallback` (int8 -> mixed -> dynamic ->
  float16), and keeps the first that agrees with the Keras model. Outputs `tflite_model`: a
  Model whose `Format-Serving/tflite` is the converted model (where TFMA's `tf_lite` model type
  and the stock Pusher look), with properties `tflite_bytes`, `tflite_gzip_bytes`,
  `quantization` (the mode chosen), `requested_quantization`, `float_layers` (the layers
  "mixed" kept float, JSON), `sparse_weights`, `agreement`, `agreement_kind`,
  `agreement_examples` and `agreed`. When no mode agrees it outputs the closest file with
  `agreed` 0 and the reason in `conversion_failure`; CompressionEvaluator then writes
  NOT_BLESSED. It fails only when no mode gives a file the interpreter can run.

  With `measure_latency` (default on) it also times the model and the dense float
  TFLite of the same Keras model at batch 1 with XNNPack, on 1 thread and on all CPU
  threads: float properties `latency_ms_1t`, `latency_ms_nt`, `dense_latency_ms_1t`,
  `dense_latency_ms_nt` and `latency_ratio` (candidate / dense, 1 thread), also in
  `conversion.json`.

  The file carries LiteRT metadata (the Task Library, codegen and metadata extractors read
  it): name, version, `description`; per input its `normalization` (mean/std) and
  `input_range`; per output its meaning, with `labels` (or `labels_file`) as the label file
  of a classification head. `tflite_bytes` counts the file as shipped, metadata included;
  `metadata_bytes` is what the metadata adds.
  """
  SPEC_CLASS = spec.TFLiteConverterSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               model: types.BaseChannel,
               examples: Optional[types.BaseChannel] = None,
               schema: Optional[types.BaseChannel] = None,
               quantization: str = _DEFAULTS.quantization,
               sparse_weights: bool = _DEFAULTS.sparse_weights,
               int8_io: bool = _DEFAULTS.int8_io,
               representative_examples: int = _DEFAULTS.representative_examples,
               representative_split: str = _DEFAULTS.representative_split,
               agreement_examples: int = _DEFAULTS.agreement_examples,
               agreement_split: str = _DEFAULTS.agreement_split,
               fallback: Optional[List[str]] = None,
               min_agreement: float = _DEFAULTS.min_agreement,
               max_tie_share: float = _DEFAULTS.max_tie_share,
               max_abs_error: float = _DEFAULTS.max_abs_error,
               label_key: str = _DEFAULTS.label_key,
               measure_latency: bool = _DEFAULTS.measure_latency,
               head: str = _DEFAULTS.head,
               labels: Optional[List[str]] = None,
               labels_file: str = _DEFAULTS.labels_file,
               normalization: Optional[Dict[str, List[float]]] = None,
               input_range: Optional[List[float]] = None,
               description: str = _DEFAULTS.description):
    """Every parameter is a field of `settings.TFLiteConverterSettings` (types, defaults,
    rules); scalar ones may be `tfx.dsl.experimental.RuntimeParameter`s (booleans of ptype
    int), checked when the run starts."""
    if isinstance(normalization, dict):  # {mean: [0], ...} from YAML: the parameter is float
      normalization = {key: [float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                             for v in values] if isinstance(values, list) else values
                       for key, values in normalization.items()}
    chosen = params.component_settings(settings.TFLiteConverterSettings, locals())
    mode = settings.MODES.get(chosen.quantization) if isinstance(chosen.quantization, str) else None
    if mode is not None and mode.representative_data and examples is None:
      uncalibrated = [q for q in settings.QUANTIZATIONS
                      if not settings.MODES[q].representative_data]
      raise ValueError(
          f"quantization={chosen.quantization!r} needs examples: it calibrates on "
          f"representative_examples of their {representative_split!r} split; pass "
          f"examples=... or use one of {uncalibrated}")
    super().__init__(spec.TFLiteConverterSpec(
        model=model, examples=examples, schema=schema,
        tflite_model=types.Channel(type=standard_artifacts.Model),
        **chosen.to_exec_properties()))
