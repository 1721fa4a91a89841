"""TFLite helpers the converter and the gate share: the dense float yardstick, gzip size.

The gate measures a candidate against the dense float TFLite of the Trainer's model, the
converter times its candidate against the same; both count bytes the seed's way (gzip -9).
"""
import gzip
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
