"""CompressionEvaluator's keys and ComponentSpec: the one place its names are defined."""
from tfx.types import component_spec
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import blessing

# Inputs
MODEL_KEY = "model"
DENSE_MODEL_KEY = "dense_model"
BASELINE_MODEL_KEY = "baseline_model"
SPARSITY_BLESSING_KEY = "sparsity_blessing"
DENSE_BLESSING_KEY = "dense_blessing"
EXAMPLES_KEY = "examples"
# Outputs
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"
# Parameters
LABEL_KEY = "label_key"
EVAL_SPLIT_KEY = "eval_split"
MAX_ACCURACY_DROP_KEY = "max_accuracy_drop"
MAX_RELATIVE_ACCURACY_DROP_KEY = "max_relative_accuracy_drop"
MIN_COMPRESSION_RATIO_KEY = "min_compression_ratio"
MAX_LATENCY_RATIO_KEY = "max_latency_ratio"
ACCURACY_DECISION_KEY = "accuracy_decision"
MIN_ACCURACY_KEY = "min_accuracy"
# Blessing custom properties (floats)
CANDIDATE_ACCURACY_PROPERTY = "candidate_accuracy"
DENSE_ACCURACY_PROPERTY = "dense_accuracy"
PRODUCTION_ACCURACY_PROPERTY = "production_accuracy"
COMPRESSION_RATIO_PROPERTY = "compression_ratio"
LATENCY_RATIO_PROPERTY = "latency_ratio"
# Model names inside the TFMA evaluation (tfma.load_eval_result(uri, model_name=...))
CANDIDATE_MODEL_NAME = "candidate"
DENSE_MODEL_NAME = "dense"
PRODUCTION_MODEL_NAME = "production"


class CompressionEvaluatorSpec(component_spec.ComponentSpec):
  """Inputs, outputs and parameters of CompressionEvaluator."""
  PARAMETERS = {
      LABEL_KEY: component_spec.ExecutionParameter(type=str),
      EVAL_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
      MAX_ACCURACY_DROP_KEY: component_spec.ExecutionParameter(type=float),
      MAX_RELATIVE_ACCURACY_DROP_KEY: component_spec.ExecutionParameter(type=float),
      MIN_COMPRESSION_RATIO_KEY: component_spec.ExecutionParameter(type=float),
      MAX_LATENCY_RATIO_KEY: component_spec.ExecutionParameter(type=float, optional=True),
      ACCURACY_DECISION_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      MIN_ACCURACY_KEY: component_spec.ExecutionParameter(type=float, optional=True),
  }
  INPUTS = {
      MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      DENSE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      BASELINE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model,
                                                          optional=True),
      SPARSITY_BLESSING_KEY: component_spec.ChannelParameter(
          type=blessing.SparsityBlessing, optional=True),
      DENSE_BLESSING_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.ModelBlessing, optional=True),
      EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      EVALUATION_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation),
      BLESSING_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
  }
