"""TFLite helpers the converter and the gate share: the dense float yardstick, gzip size,
Keras layers rewritten to TFLite builtins.

The gate measures a candidate against the dense float TFLite of the Trainer's model, the
converter times its candidate against the same; both count bytes the seed's way (gzip -9).
"""
import gzip
from typing import Optional
import warnings

import tensorflow as tf

# TFLiteConverter's output properties the gate reads: candidate / dense float latency,
# batch 1, 1 thread; and what its report shows of the candidate.
LATENCY_RATIO_PROPERTY = "latency_ratio"
TFLITE_BYTES_PROPERTY = "tflite_bytes"
TFLITE_GZIP_BYTES_PROPERTY = "tflite_gzip_bytes"
QUANTIZATION_PROPERTY = "quantization"
SPARSE_WEIGHTS_PROPERTY = "sparse_weights"
AGREEMENT_PROPERTY = "agreement"
AGREEMENT_KIND_PROPERTY = "agreement_kind"
# 1 when the file agrees with the Keras model; 0 when no mode agreed: the converter then
# publishes the closest file with the reason, and the gate refuses it without evaluating.
AGREED_PROPERTY = "agreed"
CONVERSION_FAILURE_PROPERTY = "conversion_failure"
# We (and TFMA) run tf.lite.Interpreter, not LiteRT (README says why); its deprecation
# warning is noise.
DEPRECATED_INTERPRETER_WARNING = r"\s*Warning: tf.lite.Interpreter is deprecated"


def conversion_failure(model_artifact) -> Optional[str]:
  """Why TFLiteConverter marked `model_artifact` failed, or None (agreed, or not its output)."""
  if (model_artifact.has_custom_property(AGREED_PROPERTY)
      and not model_artifact.get_int_custom_property(AGREED_PROPERTY)):
    return (model_artifact.get_string_custom_property(CONVERSION_FAILURE_PROPERTY)
            or "the TFLite model does not agree with the Keras model")
  return None


def dense_float(keras_model) -> bytes:
  """The float32 TFLite flatbuffer of `keras_model`, without any optimisation."""
  converter = tf.lite.TFLiteConverter.from_keras_model(builtin_compatible(keras_model))
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=DEPRECATED_INTERPRETER_WARNING)
    return converter.convert()


def gzip_size(data: bytes) -> int:
  """Bytes of `data` gzipped at level 9: the seed's "zip the tflite file" size."""
  return len(gzip.compress(data, compresslevel=9, mtime=0))


def _one_hot_encoding_class():
  """A Keras layer computing CategoryEncoding's one_hot/multi_hot/count with TFLite builtins.

  Keras' CategoryEncoding uses tf.math.bincount (DenseBincount), which TFLite has no builtin
  for; ONE_HOT and REDUCE_MAX/SUM are. Values outside [0, num_tokens) give all zeros in both.
  """
  from tfx_bonsai.components.common import model_io  # pylint: disable=g-import-not-at-top
  keras = model_io.keras()

  class OneHotEncoding(keras.layers.Layer):
    def __init__(self, num_tokens, output_mode="multi_hot", **kwargs):
      super().__init__(**kwargs)
      self.num_tokens, self.output_mode = num_tokens, output_mode

    def call(self, inputs):  # pylint: disable=arguments-differ
      encoded = tf.one_hot(tf.cast(inputs, tf.int32), self.num_tokens, dtype=self.compute_dtype)
      if self.output_mode == "count":
        return tf.reduce_sum(encoded, axis=-2)
      return tf.reduce_max(encoded, axis=-2)

    def get_config(self):
      return {**super().get_config(), "num_tokens": self.num_tokens,
              "output_mode": self.output_mode}

  return OneHotEncoding


def _recurrent(layer) -> bool:
  """An RNN layer (LSTM, GRU, SimpleRNN, RNN) or a Bidirectional wrapper of one."""
  from tfx_bonsai.components.common import model_io  # pylint: disable=g-import-not-at-top
  layers = model_io.keras().layers
  return isinstance(layer, layers.RNN) or (isinstance(layer, layers.Bidirectional)
                                           and isinstance(layer.forward_layer, layers.RNN))


def _sequence_shape(layer) -> tuple:
  return tuple(layer.input_shape if isinstance(layer.input_shape, tuple)
               else layer.input_shape[0])


def conversion_problem(keras_model) -> str:
  """Why TFLite builtins cannot run `keras_model` even through `builtin_compatible`, naming
  the layer and the way out; "" when nothing is known to stop it."""
  from tfx_bonsai.components.common import model_io  # pylint: disable=g-import-not-at-top
  keras = model_io.keras()
  for layer in keras_model.layers:
    if isinstance(layer, keras.Model):
      problem = conversion_problem(layer)
      if problem:
        return problem
    elif _recurrent(layer) and len(_sequence_shape(layer)) >= 3 and (
        _sequence_shape(layer)[1] is None):
      return (f"layer '{layer.name}' ({type(layer).__name__}) reads sequences of variable "
              f"length (input shape {_sequence_shape(layer)}): TFLite builtins run a Keras "
              "RNN unrolled over a fixed length; give the model's Input a fixed sequence "
              "length (keras.Input((steps,)), padding shorter sequences)")
  return ""


def _unrolled_config(layer):
  """The config of `layer` (an RNN, or a Bidirectional of RNNs) with `unroll` on, or None
  when there is nothing to unroll or the sequence length is not fixed."""
  if not _recurrent(layer):
    return None
  shape = _sequence_shape(layer)
  if len(shape) < 3 or shape[1] is None:
    return None
  config = layer.get_config()
  if "unroll" in config:
    return None if config["unroll"] else {**config, "unroll": True}
  if "layer" in config:   # Bidirectional
    for key in ("layer", "backward_layer"):
      if key in config:
        config[key] = {**config[key], "config": {**config[key]["config"], "unroll": True}}
    return config
  return None


def builtin_compatible(keras_model):
  """`keras_model`, or a copy with its weights whose layers TFLite builtins can run: CategoryEncoding
  through ONE_HOT, and recurrent layers (LSTM, GRU, SimpleRNN, Bidirectional) unrolled.

  Only CategoryEncoding layers on rank-2 integer inputs (e.g. Input(shape=(1,))) without
  count weights are replaced. A rolled Keras RNN converts to a TensorList loop that TFLite
  cannot lower with a free batch size; unrolled over its fixed sequence length it is plain
  builtins. The agreement check still compares against `keras_model`.
  """
  if not getattr(keras_model, "_is_graph_network", False):
    return keras_model
  encoders = {l.name for l in keras_model.layers if type(l).__name__ == "CategoryEncoding"
              and not l.sparse and l.output_mode in ("one_hot", "multi_hot", "count")
              and len(l.input_shape) == 2}
  unrolled = {l.name: c for l in keras_model.layers
              if (c := _unrolled_config(l)) is not None}
  if not encoders and not unrolled:
    return keras_model
  from tfx_bonsai.components.common import model_io  # pylint: disable=g-import-not-at-top
  layer_class = _one_hot_encoding_class()

  def clone(layer):
    if layer.name in encoders:
      return layer_class(layer.num_tokens, layer.output_mode, name=layer.name)
    if layer.name in unrolled:
      return type(layer).from_config(unrolled[layer.name])
    return layer

  copy = model_io.keras().models.clone_model(keras_model, clone_function=clone)
  for name in unrolled:
    copy.get_layer(name).set_weights(keras_model.get_layer(name).get_weights())
  return copy
