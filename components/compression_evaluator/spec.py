"""CompressionEvaluator's keys and ComponentSpec: the one place its names are defined."""
from tfx.types import component_spec
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import blessing

# Inputs
MODEL_KEY = "model"
DENSE_MODEL_KEY = "dense_model"
BASELINE_MODEL_KEY = "baseline_model"
SPARSITY_BLESSING_KEY = "sparsity_blessing"
EXAMPLES_KEY = "examples"
TRANSFORM_GRAPH_KEY = "transform_graph"
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
HEAD_KEY = "head"
METRIC_KEY = "metric"
MAX_METRIC_INCREASE_KEY = "max_metric_increase"
MODEL_FN_KEY = "model_fn"
MODULE_FILE_KEY = "module_file"
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
  PARAMETERS = {
      LABEL_KEY: component_spec.ExecutionParameter(type=str),
      EVAL_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
      MAX_ACCURACY_DROP_KEY: component_spec.ExecutionParameter(type=float),
      MAX_RELATIVE_ACCURACY_DROP_KEY: component_spec.ExecutionParameter(type=float),
      MIN_COMPRESSION_RATIO_KEY: component_spec.ExecutionParameter(type=float),
      MAX_LATENCY_RATIO_KEY: component_spec.ExecutionParameter(type=float, optional=True),
      HEAD_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      METRIC_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      MAX_METRIC_INCREASE_KEY: component_spec.ExecutionParameter(type=float, optional=True),
      MODEL_FN_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      MODULE_FILE_KEY: component_spec.ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      DENSE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      BASELINE_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model,
                                                          optional=True),
      SPARSITY_BLESSING_KEY: component_spec.ChannelParameter(
          type=blessing.SparsityBlessing, optional=True),
      EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
      TRANSFORM_GRAPH_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.TransformGraph, optional=True),
  }
  OUTPUTS = {
      EVALUATION_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation),
      BLESSING_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
  }
