"""Keras to TFLite: convert with a quantization mode, then prove the result agrees with Keras.

Nothing here knows about TFX. Inputs are dicts of numpy arrays keyed by the Keras
model's input names, which are also the names TFMA's `tf_lite` model type feeds.
"""
import dataclasses
from typing import Dict, Mapping, Optional, Tuple
import warnings

import numpy as np
import tensorflow as tf

from tfx_bonsai.components.common import heads
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


class ConversionError(ValueError):
  """A model that cannot be converted, or whose TFLite version cannot be trusted."""


@dataclasses.dataclass(frozen=True)
class Agreement:
  """How the TFLite model's predictions compare with the Keras model's on `examples` inputs.

  `kind` is "top1" (fraction of equal arg-max classes, for classifiers) or
  "max_abs_error" (largest absolute difference of any output, for other models).
  """
  kind: str
  value: float
  examples: int
  passed: bool
  ties: int = 0  # int8 "top1": differing classes the Keras model itself separates by < 1 step


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


def convert(keras_model, config: ConversionConfig,
            representative_inputs: Optional[Mapping[str, np.ndarray]] = None) -> bytes:
  """Converts `keras_model` to a TFLite flatbuffer as `config` says.

  int8 calibrates on `representative_inputs`, fed one example at a time.
  Raises ValueError when int8 has no representative inputs, ConversionError when
  the converter fails.
  """
  config.validate()
  converter = tf.lite.TFLiteConverter.from_keras_model(builtin_compatible(keras_model))
  optimizations = [] if config.quantization == "none" else [tf.lite.Optimize.DEFAULT]
  if config.sparse_weights:
    optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
  converter.optimizations = optimizations
  if config.quantization == "float16":
    converter.target_spec.supported_types = [tf.float16]
  if config.quantization == "int8":
    if not representative_inputs:
      raise ValueError("quantization='int8' needs representative_inputs (a few hundred "
                       "real examples) to calibrate activation ranges")
    inputs = model_inputs(keras_model, representative_inputs)
    count = len(next(iter(inputs.values())))

    def representative_dataset():
      for i in range(count):
        yield {name: value[i:i + 1] for name, value in inputs.items()}

    converter.representative_dataset = representative_dataset
    if config.int8_io:
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
      converter.inference_input_type = tf.int8
      converter.inference_output_type = tf.int8
  try:
    with warnings.catch_warnings():
      warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
      return converter.convert()
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(f"TFLite conversion failed with {config.mode}: "
                          f"{type(e).__name__}: {e}") from e


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


def _unrunnable(model_bytes: bytes, inputs, config: ConversionConfig,
                error: Exception) -> ConversionError:
  """A ConversionError saying precisely what failed, and what to try instead."""
  probe = {n: v[:1] for n, v in inputs.items()}
  try:
    run_tflite(model_bytes, probe, default_delegates=False)
    where = ("It runs only without the XNNPack delegate that TFLite applies by default on "
             "CPU (TFMA's evaluation disables it; devices do not), so it is rejected")
  except (RuntimeError, ValueError) as plain:
    where = f"It also fails without the default delegates: {type(plain).__name__}: {plain}"
  others = [q for q in QUANTIZATIONS if q != config.quantization]
  if config.sparse_weights:
    advice = (f"Use sparse_weights=False with quantization={config.quantization!r}, or "
              f"sparse_weights with another quantization (one of {others})")
  else:
    advice = f"Use another quantization (one of {others})"
  message = " ".join(str(error).split()).rstrip(".")
  return ConversionError(
      f"the TFLite interpreter cannot run the model converted with {config.mode}: "
      f"{type(error).__name__}: {message}. {where}. {advice}.")


def agreement(keras_model, model_bytes: bytes, inputs: Mapping[str, np.ndarray],
              config: ConversionConfig = ConversionConfig(),
              head: str = heads.AUTO) -> Agreement:
  """Compares the Keras model's predictions with the TFLite interpreter's on `inputs`.

  Classifiers are compared by their predicted class (top-1 of several units; the 0/1
  decision of one sigmoid unit or logit: `head`, see heads.resolve) against
  `config.min_agreement`; regression and other models by max absolute error against
  `config.max_abs_error`. With head "auto", a model whose head cannot be told is compared
  by max absolute error. Raises ConversionError, naming the conversion mode and an
  alternative, when the interpreter cannot allocate or run the model.
  """
  features = model_inputs(keras_model, inputs)
  count = len(next(iter(features.values())))
  feed = features[keras_model.input_names[0]] if len(features) == 1 else features
  expected = keras_model.predict(feed, batch_size=BATCH_SIZE, verbose=0)
  if isinstance(expected, (list, tuple, dict)):
    raise ConversionError(f"the Keras model has {len(expected)} outputs; "
                          "only single-output models are supported")
  expected = np.asarray(expected, np.float32)
  try:
    actual = run_tflite(model_bytes, features)
  except ConversionError:
    raise
  except (RuntimeError, ValueError) as e:
    raise _unrunnable(model_bytes, features, config, e) from e
  if actual.shape != expected.shape:
    raise ConversionError(f"the TFLite model's output shape {actual.shape} differs from "
                          f"the Keras model's {expected.shape}")
  if head == heads.AUTO:
    try:
      head = heads.resolve(head, keras_model)
    except heads.HeadError:
      head = heads.REGRESSION
  if head != heads.REGRESSION:
    keras_class, tflite_class = heads.decisions(head, expected), heads.decisions(head, actual)
    agree = keras_class == tflite_class
    ties = np.zeros_like(agree)
    if config.quantization == "int8":
      ties = ~agree & _within_one_step(head, expected, keras_class, tflite_class)
    value = float(np.mean(agree | ties))
    return Agreement("top1", value, count, value >= config.min_agreement, int(ties.sum()))
  value = float(np.max(np.abs(actual - expected)))
  return Agreement("max_abs_error", value, count, value <= config.max_abs_error)


def _within_one_step(head: str, expected: np.ndarray, keras_class: np.ndarray,
                     tflite_class: np.ndarray) -> np.ndarray:
  """Rows where the Keras model scores the TFLite model's class within one int8 step of its own.

  A full-integer model's output has 256 levels (probabilities: steps of 1/256), so it cannot
  reproduce a decision the Keras model takes by less than one step (range / 255): on such
  near-ties (e.g. a pruned model that collapsed to near-uniform probabilities) the top-1
  class is noise, and counting it as disagreement blames the conversion for the model.
  """
  if head in (heads.MULTICLASS, heads.BINARY):  # TFLite's int8 softmax/logistic: [0, 1] / 256
    step = 1.0 / 256
  else:  # logits: the range calibrated on examples like these
    step = (float(np.max(expected)) - float(np.min(expected))) / 255.0
  rows = np.arange(len(expected))
  if head in (heads.BINARY, heads.BINARY_LOGITS):
    threshold = 0.0 if head == heads.BINARY_LOGITS else 0.5
    return np.abs(expected.reshape(len(expected)) - threshold) <= step
  flat = expected.reshape(len(expected), -1)
  return flat[rows, keras_class] - flat[rows, tflite_class] <= step


def require_agreement(result: Agreement, config: ConversionConfig) -> Agreement:
  """Returns `result`; raises ConversionError when it is outside the configured bound."""
  if result.passed:
    return result
  if result.kind == "top1":
    bound = f"below min_agreement={config.min_agreement}"
  else:
    bound = f"above max_abs_error={config.max_abs_error}"
  raise ConversionError(
      f"the TFLite model ({config.mode}) disagrees with the Keras model: {result.kind} "
      f"{result.value:.4f} on {result.examples} examples is {bound}; try a milder "
      "quantization (float16 or dynamic) or more representative_examples")


def convert_and_check(keras_model, config: ConversionConfig,
                      representative_inputs: Optional[Mapping[str, np.ndarray]],
                      agreement_inputs: Mapping[str, np.ndarray],
                      head: str = heads.AUTO) -> Tuple[bytes, Agreement]:
  """Converts, then checks agreement; returns (model bytes, agreement) or raises ConversionError."""
  model_bytes = convert(keras_model, config, representative_inputs)
  result = agreement(keras_model, model_bytes, agreement_inputs, config, head)
  return model_bytes, require_agreement(result, config)


