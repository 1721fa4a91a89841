"""CompressionEvaluator's keys and ComponentSpec: the one place its names are defined
(TFX's standard_component_specs names where they mean the same thing)."""
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from tfx_bonsai.components.common import blessing
from tfx_bonsai.components.common import params
from tfx_bonsai.components.compression_evaluator import settings

# Inputs
MODEL_KEY = standard_component_specs.MODEL_KEY
DENSE_MODEL_KEY = "dense_model"
BASELINE_MODEL_KEY = standard_component_specs.BASELINE_MODEL_KEY
SPARSITY_BLESSING_KEY = "sparsity_blessing"
DENSE_BLESSING_KEY = "dense_blessing"
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
TRANSFORM_GRAPH_KEY = standard_component_specs.TRANSFORM_GRAPH_KEY
# Outputs
EVALUATION_KEY = standard_component_specs.EVALUATION_KEY
BLESSING_KEY = standard_component_specs.BLESSING_KEY
# Parameters (their types, defaults and rules: settings.CompressionEvaluatorSettings)
LABEL_KEY = "label_key"
EVAL_SPLIT_KEY = "eval_split"
MAX_ACCURACY_DROP_KEY = "max_accuracy_drop"
MAX_RELATIVE_ACCURACY_DROP_KEY = "max_relative_accuracy_drop"
MIN_COMPRESSION_RATIO_KEY = "min_compression_ratio"
MAX_LATENCY_RATIO_KEY = "max_latency_ratio"
HEAD_KEY = "head"
METRIC_KEY = "metric"
MAX_METRIC_INCREASE_KEY = "max_metric_increase"
MODEL_FN_KEY = "model_fn"
MODULE_FILE_KEY = standard_component_specs.MODULE_FILE_KEY
ACCURACY_DECISION_KEY = "accuracy_decision"
MIN_ACCURACY_KEY = "min_accuracy"
# Blessing custom properties (floats)
CANDIDATE_ACCURACY_PROPERTY = "candidate_accuracy"
DENSE_ACCURACY_PROPERTY = "dense_accuracy"
PRODUCTION_ACCURACY_PROPERTY = "production_accuracy"
COMPRESSION_RATIO_PROPERTY = "compression_ratio"
LATENCY_RATIO_PROPERTY = "latency_ratio"
# Regression heads: the error metric (MAE or RMSE) of each model
CANDIDATE_ERROR_PROPERTY = "candidate_error"
DENSE_ERROR_PROPERTY = "dense_error"
PRODUCTION_ERROR_PROPERTY = "production_error"
# Model names inside the TFMA evaluation (tfma.load_eval_result(uri, model_name=...))
CANDIDATE_MODEL_NAME = "candidate"
DENSE_MODEL_NAME = "dense"
PRODUCTION_MODEL_NAME = "production"


class CompressionEvaluatorSpec(component_spec.ComponentSpec):
  """Inputs, outputs and parameters of CompressionEvaluator."""
  PARAMETERS = params.execution_parameters(settings.CompressionEvaluatorSettings)
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
      TRANSFORM_GRAPH_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.TransformGraph, optional=True),
  }
  OUTPUTS = {
      EVALUATION_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation),
      # Its own type, so the dense (Evaluator) and deployable lineages never meet in a resolver.
      BLESSING_KEY: component_spec.ChannelParameter(type=blessing.CompressionBlessing),
  }
