"""SparsityValidator's keys, artifact layout and ComponentSpec: the one place its names are defined
(TFX's standard_component_specs names where they mean the same thing)."""
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from tfx_bonsai.components.common import blessing
from tfx_bonsai.components.common import params
from tfx_bonsai.components.sparsity_validator import settings

# Inputs
MODEL_KEY = standard_component_specs.MODEL_KEY
TFLITE_MODEL_KEY = "tflite_model"   # optional: TFLiteConverter's conversion of `model`
# Outputs
REPORT_KEY = "report"
BLESSING_KEY = standard_component_specs.BLESSING_KEY
# Parameters (their types, defaults and rules: settings.SparsityValidatorSettings)
MIN_SPARSITY_KEY = "min_sparsity"
PER_LAYER_MIN_SPARSITY_KEY = "per_layer_min_sparsity"
TOLERANCE_KEY = "tolerance"
INCLUDE_ALL_TENSORS_KEY = "include_all_tensors"
SPARSITY_M_BY_N_KEY = "sparsity_m_by_n"
FOLLOW_PRUNING_KEY = "follow_pruning"
# Blessing custom property
GLOBAL_SPARSITY_PROPERTY = "global_sparsity"
DEPLOYED_SPARSITY_PROPERTY = "deployed_sparsity"
# Files in the report artifact
REPORT_JSON_FILE = "sparsity.json"
REPORT_HTML_FILE = "index.html"


class SparsityValidatorSpec(component_spec.ComponentSpec):
  """Inputs, outputs and parameters of SparsityValidator."""
  PARAMETERS = params.execution_parameters(settings.SparsityValidatorSettings)
  INPUTS = {
      MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      TFLITE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model,
                                                        optional=True),
  }
  OUTPUTS = {
      REPORT_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation),
      BLESSING_KEY: component_spec.ChannelParameter(type=blessing.SparsityBlessing),
  }
