"""TFLiteConverter's keys and ComponentSpec: the one place its names are defined."""
from tfx.types import component_spec
from tfx.types import standard_artifacts

# Inputs
MODEL_KEY = "model"
EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
# Outputs (TFX wants names unique across inputs and outputs, so not "model")
TFLITE_MODEL_KEY = "tflite_model"
# Parameters
QUANTIZATION_KEY = "quantization"
SPARSE_WEIGHTS_KEY = "sparse_weights"
INT8_IO_KEY = "int8_io"
REPRESENTATIVE_EXAMPLES_KEY = "representative_examples"
REPRESENTATIVE_SPLIT_KEY = "representative_split"
AGREEMENT_EXAMPLES_KEY = "agreement_examples"
AGREEMENT_SPLIT_KEY = "agreement_split"
MIN_AGREEMENT_KEY = "min_agreement"
MAX_ABS_ERROR_KEY = "max_abs_error"
LABEL_KEY = "label_key"
MEASURE_LATENCY_KEY = "measure_latency"
HEAD_KEY = "head"
# Output artifact custom properties
TFLITE_BYTES_PROPERTY = "tflite_bytes"
TFLITE_GZIP_BYTES_PROPERTY = "tflite_gzip_bytes"
QUANTIZATION_PROPERTY = "quantization"
SPARSE_WEIGHTS_PROPERTY = "sparse_weights"
AGREEMENT_PROPERTY = "agreement"
AGREEMENT_KIND_PROPERTY = "agreement_kind"
AGREEMENT_EXAMPLES_PROPERTY = "agreement_examples"
# Latency at batch 1, XNNPack on (floats, milliseconds; absent when not measured): the
# candidate and the dense float TFLite of the same Keras model, at 1 and at all CPU threads.
LATENCY_MS_1T_PROPERTY = "latency_ms_1t"
LATENCY_MS_NT_PROPERTY = "latency_ms_nt"
DENSE_LATENCY_MS_1T_PROPERTY = "dense_latency_ms_1t"
DENSE_LATENCY_MS_NT_PROPERTY = "dense_latency_ms_nt"
LATENCY_RATIO_PROPERTY = "latency_ratio"  # candidate / dense, at 1 thread
# The report written at the output artifact's root (Format-Serving holds only the model)
REPORT_FILE = "conversion.json"


class TFLiteConverterSpec(component_spec.ComponentSpec):
  """Inputs, outputs and parameters of TFLiteConverter."""
  PARAMETERS = {
      QUANTIZATION_KEY: component_spec.ExecutionParameter(type=str),
      SPARSE_WEIGHTS_KEY: component_spec.ExecutionParameter(type=int),
      INT8_IO_KEY: component_spec.ExecutionParameter(type=int),
      REPRESENTATIVE_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int),
      REPRESENTATIVE_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
      AGREEMENT_EXAMPLES_KEY: component_spec.ExecutionParameter(type=int),
      AGREEMENT_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
      MIN_AGREEMENT_KEY: component_spec.ExecutionParameter(type=float),
      MAX_ABS_ERROR_KEY: component_spec.ExecutionParameter(type=float),
      LABEL_KEY: component_spec.ExecutionParameter(type=str),
      MEASURE_LATENCY_KEY: component_spec.ExecutionParameter(type=int, optional=True),
      HEAD_KEY: component_spec.ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples,
                                                    optional=True),
      SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema, optional=True),
  }
  OUTPUTS = {
      TFLITE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
  }
