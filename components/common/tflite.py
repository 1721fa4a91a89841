"""TFLite helpers the converter and the gate share: the dense float yardstick, gzip size.

The gate measures a candidate against the dense float TFLite of the Trainer's model, the
converter times its candidate against the same; both count bytes the seed's way (gzip -9).
"""
import gzip
import warnings

import tensorflow as tf

# TFLiteConverter's output property the gate reads: candidate / dense float latency,
# batch 1, 1 thread.
LATENCY_RATIO_PROPERTY = "latency_ratio"
# We (and TFMA) run tf.lite.Interpreter, not LiteRT (README says why); its deprecation
# warning is noise.
DEPRECATED_INTERPRETER_WARNING = r"\s*Warning: tf.lite.Interpreter is deprecated"


def dense_float(keras_model) -> bytes:
  """The float32 TFLite flatbuffer of `keras_model`, without any optimisation."""
  converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=DEPRECATED_INTERPRETER_WARNING)
    return converter.convert()


def gzip_size(data: bytes) -> int:
  """Bytes of `data` gzipped at level 9: the seed's "zip the tflite file" size."""
  return len(gzip.compress(data, compresslevel=9, mtime=0))
