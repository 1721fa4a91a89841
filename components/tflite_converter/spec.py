"""TFLiteConverter's keys and ComponentSpec: the one place its names are defined
(TFX's standard_component_specs names where they mean the same thing)."""
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from tfx_bonsai.components.common import params
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.tflite_converter import settings

# Inputs
MODEL_KEY = standard_component_specs.MODEL_KEY
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY
# Outputs (TFX wants names unique across inputs and outputs, so not "model")
TFLITE_MODEL_KEY = "tflite_model"
# Parameters (their types, defaults and rules: settings.TFLiteConverterSettings)
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
FALLBACK_KEY = "fallback"
MAX_TIE_SHARE_KEY = "max_tie_share"
LABELS_KEY = "labels"
LABELS_FILE_KEY = "labels_file"
NORMALIZATION_KEY = "normalization"
INPUT_RANGE_KEY = "input_range"
DESCRIPTION_KEY = "description"
# Output artifact custom properties
TFLITE_BYTES_PROPERTY = tflite.TFLITE_BYTES_PROPERTY
TFLITE_GZIP_BYTES_PROPERTY = tflite.TFLITE_GZIP_BYTES_PROPERTY
METADATA_BYTES_PROPERTY = "metadata_bytes"  # what the LiteRT metadata adds to tflite_bytes
QUANTIZATION_PROPERTY = tflite.QUANTIZATION_PROPERTY
SPARSE_WEIGHTS_PROPERTY = tflite.SPARSE_WEIGHTS_PROPERTY
AGREEMENT_PROPERTY = tflite.AGREEMENT_PROPERTY
AGREEMENT_KIND_PROPERTY = tflite.AGREEMENT_KIND_PROPERTY
AGREEMENT_EXAMPLES_PROPERTY = "agreement_examples"
AGREED_PROPERTY = tflite.AGREED_PROPERTY                          # int 0/1
CONVERSION_FAILURE_PROPERTY = tflite.CONVERSION_FAILURE_PROPERTY  # why no mode agreed
REQUESTED_QUANTIZATION_PROPERTY = "requested_quantization"  # `quantization` is the mode chosen
FLOAT_LAYERS_PROPERTY = "float_layers"   # JSON list: the layers "mixed" kept float
# The splits it and the models upstream fitted and selected on (JSON; the gate refuses them)
DATA_ROLES_PROPERTY = roles.DATA_ROLES_PROPERTY
# Latency at batch 1, XNNPack on (floats, milliseconds; absent when not measured): the
# candidate and the dense float TFLite of the same Keras model, at 1 and at all CPU threads.
LATENCY_MS_1T_PROPERTY = "latency_ms_1t"
LATENCY_MS_NT_PROPERTY = "latency_ms_nt"
DENSE_LATENCY_MS_1T_PROPERTY = "dense_latency_ms_1t"
DENSE_LATENCY_MS_NT_PROPERTY = "dense_latency_ms_nt"
LATENCY_RATIO_PROPERTY = tflite.LATENCY_RATIO_PROPERTY  # candidate / dense, 1 thread (the gate reads it)
# The report written at the output artifact's root (Format-Serving holds only the model)
REPORT_FILE = "conversion.json"


class TFLiteConverterSpec(component_spec.ComponentSpec):
  """Inputs, outputs and parameters of TFLiteConverter."""
  PARAMETERS = params.execution_parameters(settings.TFLiteConverterSettings)
  INPUTS = {
      MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples,
                                                    optional=True),
      SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema, optional=True),
  }
  OUTPUTS = {
      TFLITE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
  }
