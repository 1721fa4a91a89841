"""Keras to TFLite: convert with a quantization mode, then prove the result agrees with Keras.

`convert_with_fallback` climbs the settings' ladder (int8, mixed, dynamic, float16;
`settings.MODES`) and keeps the first mode whose file agrees. Nothing here knows about TFX.
Inputs are dicts of numpy arrays keyed by the Keras model's input names, which are also the
names TFMA's `tf_lite` model type feeds.
"""
import csv
import dataclasses
import io
import math
from typing import Callable, Dict, List, Mapping, Optional, Tuple
import warnings

from absl import logging
import numpy as np
import tensorflow as tf
# The converter's own sparse-encoding step (TFLiteConverter applies it after quantizing).
from tensorflow.lite.python import convert as tflite_convert

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.tflite_converter import settings
from tfx_bonsai.components.tflite_converter.settings import QUANTIZATIONS  # noqa: F401
from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.common.tflite import builtin_compatible  # noqa: F401
from tfx_bonsai.components.common.tflite import gzip_size  # noqa: F401  (shared with the gate)
# The conversion's part of the settings (the pure code takes the whole settings object).
from tfx_bonsai.components.tflite_converter.settings import TFLiteConverterSettings as ConversionConfig

AGREEMENT_KINDS = ("top1", "max_abs_error")
BATCH_SIZE = 256
# TFLite names a signature input `serving_default_<name>:<n>`; TFMA strips both parts.
_SIGNATURE_PREFIX = "serving_default_"
_OpResolverType = tf.lite.experimental.OpResolverType
_DEPRECATED_INTERPRETER = tflite.DEPRECATED_INTERPRETER_WARNING  # README: why not LiteRT yet
_PRESERVE_TENSORS_WARNING = r".*experimental_preserve_all_tensors"
_NOISE_TO_SIGNAL = "noise_to_signal"
# `mixed` keeps at most this share of the quantized layers float; beyond it dynamic is smaller.
MAX_FLOAT_SHARE = 0.5


class ConversionError(ValueError):
  """A model that cannot be converted, or whose TFLite version cannot be trusted."""


@dataclasses.dataclass(frozen=True)
class Agreement:
  """How the TFLite model's predictions compare with the Keras model's on `examples` inputs.

  `kind` is "top1" (fraction of equal arg-max classes, for classifiers) or
  "max_abs_error" (largest absolute difference of any output, for other models).
  `value` is the share of equal classes plus the near-ties allowed (`ties`, at most
  `max_tie_share` of the examples); `raw` the share of equal classes alone; `step` the output
  tensor's int8 scale (None for a float output: no near-ties).
  """
  kind: str
  value: float
  examples: int
  passed: bool
  ties: int = 0
  raw: Optional[float] = None
  step: Optional[float] = None

  def describe(self) -> str:
    if self.kind != "top1":
      return f"{self.kind} {self.value:.4f} on {self.examples} examples"
    return (f"top1 {self.value:.4f} on {self.examples} examples ({self.raw:.4f} equal, "
            f"{self.ties} near-ties)")


@dataclasses.dataclass(frozen=True)
class Attempt:
  """One step of the ladder: the mode tried and its agreement, or why it could not be checked."""
  mode: str
  agreement: Optional[Agreement] = None
  error: str = ""
  tflite_bytes: int = 0
  tflite_gzip_bytes: int = 0
  float_layers: Tuple[str, ...] = ()

  def to_dict(self) -> Dict[str, object]:
    data = {"mode": self.mode, "tflite_bytes": self.tflite_bytes,
            "tflite_gzip_bytes": self.tflite_gzip_bytes, "float_layers": list(self.float_layers)}
    if self.agreement is not None:
      data["agreement"] = dataclasses.asdict(self.agreement)
    if self.error:
      data["error"] = self.error
    return data


@dataclasses.dataclass(frozen=True)
class Conversion:
  """The ladder's outcome: the first agreeing file, or (`failure` set) the closest one (None
  `agreement`: no file ran, this one converted but the interpreter refused it)."""
  mode: str
  model_bytes: bytes
  agreement: Optional[Agreement]
  attempts: Tuple[Attempt, ...]
  float_layers: Tuple[str, ...] = ()
  failure: str = ""

  @property
  def agreed(self) -> bool:
    return not self.failure


def model_inputs(keras_model, features: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """The model's inputs picked out of `features` by Keras input name, cast to the input dtypes."""
  names = list(keras_model.input_names)
  missing = [n for n in names if n not in features]
  if missing:
    raise ConversionError(f"model input(s) {missing} are not in the features "
                          f"{sorted(features)}; name the Keras Inputs after the features")
  inputs = {}
  for name, tensor in zip(names, keras_model.inputs):
    value = np.asarray(features[name]).astype(tf.as_dtype(tensor.dtype).as_numpy_dtype)
    shape = list(tensor.shape)[1:]
    if (value.ndim != len(shape) + 1 and None not in shape
        and value.size == len(value) * int(np.prod(shape))):
      value = value.reshape([len(value)] + shape)  # tf.Transform's scalars (N,) into Input((1,))
    inputs[name] = value
  rows = {name: len(value) for name, value in inputs.items()}
  if len(set(rows.values())) != 1:
    raise ConversionError(f"inputs have different numbers of rows: {rows}")
  return inputs


def synthetic_inputs(keras_model, count: int, seed: int = 0) -> Dict[str, np.ndarray]:
  """`count` rows per model input: uniform [0, 1) for floats, zeros otherwise.

  For checking models converted without examples. Raises ConversionError naming an
  input whose shape is not fixed.
  """
  rng = np.random.default_rng(seed)
  inputs = {}
  for name, tensor in zip(keras_model.input_names, keras_model.inputs):
    shape = list(tensor.shape)[1:]
    if any(d is None for d in shape):
      raise ConversionError(f"model input {name!r} has shape {tensor.shape}: without "
                            "examples only fixed-shape inputs can be checked; pass examples")
    dtype = tf.as_dtype(tensor.dtype)
    if dtype.is_floating:
      inputs[name] = rng.random([count] + shape).astype(dtype.as_numpy_dtype)
    else:
      inputs[name] = np.zeros([count] + shape, dtype.as_numpy_dtype)
  return inputs


def _converter(keras_model, config: ConversionConfig, mode: str,
               representative_inputs: Optional[Mapping[str, np.ndarray]]):
  """A TFLiteConverter set up for `mode` (a step of settings.LADDER)."""
  converter = tf.lite.TFLiteConverter.from_keras_model(builtin_compatible(keras_model))
  optimizations = [] if mode == settings.NONE else [tf.lite.Optimize.DEFAULT]
  if config.sparse_weights:
    optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
  converter.optimizations = optimizations
  if mode == settings.FLOAT16:
    converter.target_spec.supported_types = [tf.float16]
  if settings.MODES[mode].representative_data:
    if not representative_inputs:
      raise ValueError(f"quantization={mode!r} needs representative_inputs (a few hundred "
                       "real examples) to calibrate activation ranges")
    inputs = model_inputs(keras_model, representative_inputs)
    count = len(next(iter(inputs.values())))

    def representative_dataset():
      for i in range(count):
        yield {name: value[i:i + 1] for name, value in inputs.items()}

    converter.representative_dataset = representative_dataset
    if config.int8_io and mode == settings.INT8:
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
      converter.inference_input_type = tf.int8
      converter.inference_output_type = tf.int8
  return converter


def convert(keras_model, config: ConversionConfig,
            representative_inputs: Optional[Mapping[str, np.ndarray]] = None,
            mode: Optional[str] = None) -> bytes:
  """Converts `keras_model` to a TFLite flatbuffer in `mode` (default `config.quantization`).

  int8 calibrates on `representative_inputs`, fed one example at a time ("mixed" needs an
  agreement check: `convert_mixed`). Raises ValueError when int8 has no representative
  inputs, ConversionError when the converter fails.
  """
  config.validate()
  mode = mode or config.quantization
  if mode == settings.MIXED:
    raise ValueError("quantization 'mixed' is chosen by its agreement: use convert_mixed")
  converter = _converter(keras_model, config, mode, representative_inputs)
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
      return converter.convert()
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(f"TFLite conversion failed with {config.mode_label(mode)}: "
                          f"{type(e).__name__}: {e}") from e


def _noise_to_signal(float_values, quantized, scale, zero_point) -> float:
  """A layer's quantization noise over its float output's variance (1/SQNR)."""
  error = (quantized.astype(np.float32) - zero_point) * scale - float_values
  return float(np.mean(np.square(error)) / max(float(np.var(float_values)), 1e-12))


def layer_errors(debug_model: bytes,
                 inputs: Mapping[str, np.ndarray]) -> List[Tuple[str, str, float]]:
  """[(layer output tensor, its op, noise-to-signal ratio)] of a debug-mode int8 model,
  largest ratio first.

  The quantization debugger's per-layer statistics, with the ratio of the quantization noise
  to the float tensor's variance as its metric: an error small against the layer's step can
  still swamp the differences a decision rests on (a softmax over near-ties).
  """
  order = [input_name(d) for d in _interpreter(debug_model, False).get_input_details()]
  count = len(inputs[order[0]])

  def dataset():
    for i in range(count):
      yield [np.asarray(inputs[name][i:i + 1]) for name in order]

  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
    warnings.filterwarnings("ignore", message=_PRESERVE_TENSORS_WARNING)
    probe = tf.lite.experimental.QuantizationDebugger(
        quant_debug_model_content=debug_model, debug_dataset=dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={_NOISE_TO_SIGNAL: _noise_to_signal}))
    probe.run()
  dump = io.StringIO()
  probe.layer_statistics_dump(dump)
  dump.seek(0)
  rows = [(row["tensor_name"], row["op_name"], float(row[_NOISE_TO_SIGNAL]))
          for row in csv.DictReader(dump)]
  return sorted((r for r in rows if math.isfinite(r[2])), key=lambda r: -r[2])


def convert_mixed(keras_model, config: ConversionConfig,
                  representative_inputs: Mapping[str, np.ndarray],
                  check: Callable[[bytes], Agreement]) -> Tuple[bytes, Agreement, Tuple[str, ...]]:
  """int8 with the layers of largest quantization error kept float, until `check` passes.

  The quantization debugger ranks the layers (`layer_errors`); 1, 2, 4, ... of them, up to
  MAX_FLOAT_SHARE, go on its deny-list. Returns (model, agreement, float layers) of the first
  that agrees, else of the last tried; a float layer is named by its op and output tensor
  (e.g. "SOFTMAX StatefulPartitionedCall:0"). Raises ConversionError when the debugger fails.
  """
  inputs = model_inputs(keras_model, representative_inputs)
  converter = _converter(keras_model, config, settings.MIXED, inputs)
  # The debugger cannot instrument a sparsified model: sparse encoding comes last, as the
  # converter's own post-processing applies it.
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  options = tf.lite.experimental.QuantizationDebugOptions
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
      debugger = tf.lite.experimental.QuantizationDebugger(
          converter=converter, debug_options=options(fully_quantize=bool(config.int8_io)))
      ranked = layer_errors(debugger.get_debug_quantized_model(), inputs)
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(f"the quantization debugger failed on "
                          f"{config.mode_label(settings.MIXED)}: {type(e).__name__}: {e}") from e
  # The debugger needs one quantized layer left to instrument.
  limit = min(max(1, int(len(ranked) * MAX_FLOAT_SHARE)), len(ranked) - 1)
  if limit < 1:
    raise ConversionError(f"{config.mode_label(settings.MIXED)}: the int8 model has "
                          f"{len(ranked)} quantized layer(s), none to keep float beside int8")
  counts = sorted({min(2 ** i, limit) for i in range(limit.bit_length() + 1)})
  result = None
  for count in counts:
    nodes = [tensor for tensor, _, _ in ranked[:count]]
    layers = tuple(f"{op} {tensor}" for tensor, op, _ in ranked[:count])
    try:
      with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
        debugger.options = options(fully_quantize=bool(config.int8_io), denylisted_nodes=nodes)
        model_bytes = debugger.get_nondebug_quantized_model()
        if config.sparse_weights:
          model_bytes = tflite_convert.mlir_sparsify(model_bytes)
    except Exception as e:  # pylint: disable=broad-except
      raise ConversionError(f"selective quantization keeping {list(layers)} float failed: "
                            f"{type(e).__name__}: {e}") from e
    result = (model_bytes, check(model_bytes), layers)
    if result[1].passed:
      break
  return result


def input_name(detail: Mapping[str, object]) -> str:
  """The feature TFMA's tf_lite model type feeds to an interpreter input (its name, unprefixed)."""
  name = str(detail["name"])
  if name.startswith(_SIGNATURE_PREFIX):
    name = name[len(_SIGNATURE_PREFIX):]
  return name.split(":")[0]


def _interpreter(model_bytes: bytes, default_delegates: bool) -> tf.lite.Interpreter:
  resolver = _OpResolverType.AUTO if default_delegates else (
      _OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
    return tf.lite.Interpreter(model_content=model_bytes,
                               experimental_op_resolver_type=resolver)


def quantize(value: np.ndarray, detail) -> np.ndarray:
  """`value` as the tensor of `detail` takes it: quantized for integer tensors."""
  dtype = np.dtype(detail["dtype"])
  params = detail["quantization_parameters"]
  if np.issubdtype(dtype, np.integer) and params["scales"].size:
    info = np.iinfo(dtype)
    scaled = np.round(value / params["scales"] + params["zero_points"])
    return np.clip(scaled, info.min, info.max).astype(dtype)
  return value.astype(dtype)


def _dequantize(value: np.ndarray, detail) -> np.ndarray:
  params = detail["quantization_parameters"]
  if np.issubdtype(value.dtype, np.integer) and params["scales"].size:
    return ((value.astype(np.float32) - params["zero_points"]) * params["scales"]).astype(
        np.float32)
  return value.astype(np.float32)


def run_tflite(model_bytes: bytes, inputs: Mapping[str, np.ndarray],
               batch_size: int = BATCH_SIZE, default_delegates: bool = True) -> np.ndarray:
  """The TFLite model's (float) output for `inputs`, batch by batch.

  Inputs are matched by name as TFMA matches them; int8 inputs are quantized and
  int8 outputs dequantized with the tensors' quantization parameters.
  `default_delegates=False` runs without XNNPack, as TFMA's extractor does.
  """
  interpreter = _interpreter(model_bytes, default_delegates)
  input_details = interpreter.get_input_details()
  output_details = interpreter.get_output_details()
  if len(output_details) != 1:
    raise ConversionError(f"the TFLite model has {len(output_details)} outputs; "
                          "only single-output models are supported")
  names = [input_name(d) for d in input_details]
  missing = [n for n in names if n not in inputs]
  if missing:
    raise ConversionError(f"TFLite input(s) {missing} (tensors "
                          f"{[d['name'] for d in input_details]}) match no feature of "
                          f"{sorted(inputs)}; TFMA's tf_lite model type feeds inputs by name")
  count = len(inputs[names[0]])
  outputs = []
  shapes = None
  for start in range(0, count, batch_size):
    batch = {n: np.asarray(inputs[n][start:start + batch_size]) for n in names}
    wanted = [[len(batch[n])] + list(d["shape"][1:]) for n, d in zip(names, input_details)]
    if wanted != shapes:
      for detail, shape in zip(input_details, wanted):
        interpreter.resize_tensor_input(detail["index"], shape)
      interpreter.allocate_tensors()
      shapes = wanted
    for name, detail in zip(names, input_details):
      interpreter.set_tensor(detail["index"], quantize(batch[name], detail))
    interpreter.invoke()
    output = output_details[0]
    outputs.append(_dequantize(interpreter.get_tensor(output["index"]), output))
  return np.concatenate(outputs)


def _unrunnable(model_bytes: bytes, inputs, config: ConversionConfig, mode: str,
                error: Exception) -> ConversionError:
  """A ConversionError saying precisely what failed, and what to try instead."""
  probe = {n: v[:1] for n, v in inputs.items()}
  try:
    run_tflite(model_bytes, probe, default_delegates=False)
    where = ("It runs only without the XNNPack delegate that TFLite applies by default on "
             "CPU (TFMA's evaluation disables it; devices do not), so it is rejected")
  except (RuntimeError, ValueError) as plain:
    where = f"It also fails without the default delegates: {type(plain).__name__}: {plain}"
  others = [q for q in settings.QUANTIZATIONS if q != mode]
  if config.sparse_weights:
    advice = (f"Use sparse_weights=False with quantization={mode!r}, or "
              f"sparse_weights with another quantization (one of {others})")
  else:
    advice = f"Use another quantization (one of {others})"
  message = " ".join(str(error).split()).rstrip(".")
  return ConversionError(
      f"the TFLite interpreter cannot run the model converted with {config.mode_label(mode)}: "
      f"{type(error).__name__}: {message}. {where}. {advice}.")


def keras_outputs(keras_model, features: Mapping[str, np.ndarray]) -> np.ndarray:
  """The Keras model's (single) output for `features` (model_inputs' result)."""
  feed = features[keras_model.input_names[0]] if len(features) == 1 else features
  expected = keras_model.predict(feed, batch_size=BATCH_SIZE, verbose=0)
  if isinstance(expected, (list, tuple, dict)):
    raise ConversionError(f"the Keras model has {len(expected)} outputs; "
                          "only single-output models are supported")
  return np.asarray(expected, np.float32)


def output_step(model_bytes: bytes) -> Optional[float]:
  """The int8 scale of the TFLite model's output: the output tensor's own, or that of the int8
  tensor its final DEQUANTIZE reads (float I/O); None for an output computed in float."""
  interpreter = _interpreter(model_bytes, default_delegates=False)
  detail = interpreter.get_output_details()[0]
  tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
  # The op graph is read as TF's own QuantizationDebugger reads it (no public API yet).
  producers = {out: op for op in interpreter._get_ops_details()  # pylint: disable=protected-access
               for out in op["outputs"]}
  op = producers.get(detail["index"])
  if op is not None and op["op_name"] == "DEQUANTIZE":
    detail = tensors[op["inputs"][0]]
  scales = detail["quantization_parameters"]["scales"]
  if np.issubdtype(np.dtype(detail["dtype"]), np.integer) and scales.size:
    return float(scales[0])
  return None


def agreement(keras_model, model_bytes: bytes, inputs: Mapping[str, np.ndarray],
              config: ConversionConfig = ConversionConfig(),
              head: str = heads.AUTO, mode: Optional[str] = None,
              expected: Optional[np.ndarray] = None) -> Agreement:
  """Compares the Keras model's predictions (or `expected`) with the TFLite interpreter's.

  Classifiers are compared by their predicted class (top-1 of several units; the 0/1
  decision of one sigmoid unit or logit: `head`, see heads.resolve) against
  `config.min_agreement`; regression and other models by max absolute error against
  `config.max_abs_error`. With head "auto", a model whose head cannot be told is compared
  by max absolute error. For a `mode` whose output may be int8 (settings.MODES), a differing
  class counts as agreeing when both models score the two classes within one step of the
  output tensor's scale, on at most `config.max_tie_share` of the examples. Raises
  ConversionError, naming the conversion mode, when the interpreter cannot run the model.
  """
  mode = mode or config.quantization
  features = model_inputs(keras_model, inputs)
  count = len(next(iter(features.values())))
  if expected is None:
    expected = keras_outputs(keras_model, features)
  try:
    actual = run_tflite(model_bytes, features)
  except ConversionError:
    raise
  except (RuntimeError, ValueError) as e:
    raise _unrunnable(model_bytes, features, config, mode, e) from e
  if actual.shape != expected.shape:
    raise ConversionError(f"the TFLite model's output shape {actual.shape} differs from "
                          f"the Keras model's {expected.shape}")
  if head == heads.AUTO:
    try:
      head = heads.resolve(head, keras_model)
    except heads.HeadError:
      head = heads.REGRESSION
  if head == heads.REGRESSION:
    value = float(np.max(np.abs(actual - expected)))
    return Agreement("max_abs_error", value, count, value <= config.max_abs_error, raw=value)
  keras_class, tflite_class = heads.decisions(head, expected), heads.decisions(head, actual)
  agree = keras_class == tflite_class
  step = output_step(model_bytes) if settings.MODES[mode].near_ties else None
  ties = 0
  if step is not None:
    near = (~agree & _near_tie(head, expected, keras_class, tflite_class, step)
            & _near_tie(head, actual, keras_class, tflite_class, step))
    ties = min(int(near.sum()), int(config.max_tie_share * count))
  value = (int(agree.sum()) + ties) / count
  return Agreement("top1", value, count, value >= config.min_agreement, ties,
                   raw=float(np.mean(agree)), step=step)


def _near_tie(head: str, scores: np.ndarray, first: np.ndarray, second: np.ndarray,
              step: float) -> np.ndarray:
  """Rows where `scores` puts classes `first` and `second` (a binary score and its threshold)
  within one int8 `step`: a decision 256 output levels cannot resolve."""
  step *= 1.0 + 1e-6  # dequantized levels differ by the scale up to float rounding
  if head in (heads.BINARY, heads.BINARY_LOGITS):
    threshold = 0.0 if head == heads.BINARY_LOGITS else 0.5
    return np.abs(scores.reshape(len(scores)) - threshold) <= step
  flat = scores.reshape(len(scores), -1)
  rows = np.arange(len(flat))
  return np.abs(flat[rows, first] - flat[rows, second]) <= step


def _bound(result: Agreement, config: ConversionConfig) -> str:
  if result.kind == "top1":
    return f"below min_agreement={config.min_agreement}"
  return f"above max_abs_error={config.max_abs_error}"


def require_agreement(result: Agreement, config: ConversionConfig) -> Agreement:
  """Returns `result`; raises ConversionError when it is outside the configured bound."""
  if result.passed:
    return result
  raise ConversionError(
      f"the TFLite model ({config.mode}) disagrees with the Keras model: "
      f"{result.describe()} is {_bound(result, config)}")


def _closer(result: Agreement, best: Optional[Agreement]) -> bool:
  if best is None:
    return True
  return result.value > best.value if result.kind == "top1" else result.value < best.value


def convert_and_check(keras_model, config: ConversionConfig,
                      representative_inputs: Optional[Mapping[str, np.ndarray]],
                      agreement_inputs: Mapping[str, np.ndarray],
                      head: str = heads.AUTO) -> Tuple[bytes, Agreement]:
  """(model bytes, agreement) of the first mode of the ladder that agrees (see
  `convert_with_fallback`); raises ConversionError, saying what each mode gave, when none does."""
  outcome = convert_with_fallback(keras_model, config, representative_inputs, agreement_inputs,
                                  head)
  if not outcome.agreed:
    raise ConversionError(outcome.failure)
  return outcome.model_bytes, outcome.agreement


def convert_with_fallback(keras_model, config: ConversionConfig,
                          representative_inputs: Optional[Mapping[str, np.ndarray]],
                          agreement_inputs: Mapping[str, np.ndarray],
                          head: str = heads.AUTO) -> Conversion:
  """Climbs `config.modes` (quantization, then its fallbacks) and keeps the first file that agrees.

  A mode that fails to convert or run is recorded and skipped. When none agrees, the closest
  file is returned with `failure` saying why (the caller publishes it marked failed). Raises
  ConversionError only when no mode gave a file at all (e.g. an op TFLite cannot convert).
  """
  config.validate()
  features = model_inputs(keras_model, agreement_inputs)
  expected = keras_outputs(keras_model, features)

  def check(model_bytes: bytes, mode: str) -> Agreement:
    return agreement(keras_model, model_bytes, features, config, head, mode, expected)

  attempts: List[Attempt] = []
  best = unrunnable = None
  for mode in config.modes:
    model_bytes, layers = None, ()
    try:
      if mode == settings.MIXED:
        model_bytes, result, layers = convert_mixed(
            keras_model, config, representative_inputs,
            lambda b: check(b, settings.MIXED))  # pylint: disable=cell-var-from-loop
      else:
        model_bytes = convert(keras_model, config, representative_inputs, mode)
        result = check(model_bytes, mode)
    except ConversionError as e:
      sizes = (len(model_bytes), gzip_size(model_bytes)) if model_bytes else (0, 0)
      attempts.append(Attempt(mode, None, " ".join(str(e).split()), *sizes))
      logging.warning("TFLiteConverter: %s", attempts[-1].error)
      if model_bytes and unrunnable is None:
        unrunnable = Conversion(mode, model_bytes, None, ())
      continue
    attempts.append(Attempt(mode, result, "", len(model_bytes), gzip_size(model_bytes), layers))
    logging.info("TFLiteConverter: %s: %s%s, %s", config.mode_label(mode), result.describe(),
                 f" with {len(layers)} float layers" if layers else "",
                 "agrees" if result.passed else _bound(result, config))
    if result.passed:
      return Conversion(mode, model_bytes, result, tuple(attempts), layers)
    if _closer(result, best and best.agreement):
      best = Conversion(mode, model_bytes, result, (), layers)
  best = best or unrunnable
  tried = "; ".join(f"{a.mode}: " + (a.agreement.describe() if a.agreement else a.error)
                    for a in attempts)
  if best is None:
    raise ConversionError(f"no conversion mode gave a TFLite model: {tried}")
  bound = f" ({_bound(best.agreement, config)})" if best.agreement else ""
  milder = ("set int8_io=False to allow the float-I/O modes" if config.int8_io
            else "add milder modes to fallback")
  failure = (f"no conversion agrees with the Keras model{bound}; tried {tried}. The "
             f"closest ({best.mode}) is published marked failed. If the Keras model's own "
             f"margins collapsed (e.g. pruned too far), fix the model; else {milder}")
  return dataclasses.replace(best, attempts=tuple(attempts), failure=failure)
