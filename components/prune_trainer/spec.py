"""PruneTrainer's keys and ComponentSpec: the one place its names are defined."""
from typing import List

from tfx.types import component_spec
from tfx.types import standard_artifacts

# Inputs
EXAMPLES_KEY = "examples"
MODEL_KEY = "model"
SCHEMA_KEY = "schema"
TRANSFORM_GRAPH_KEY = "transform_graph"
# Outputs
PRUNED_MODEL_KEY = "pruned_model"
MODEL_RUN_KEY = "model_run"
# Parameters
LABEL_KEY = "label_key"
TRAIN_SPLIT_KEY = "train_split"
EVAL_SPLIT_KEY = "eval_split"
TARGET_SPARSITY_KEY = "target_sparsity"
INITIAL_SPARSITY_KEY = "initial_sparsity"
SCHEDULE_KEY = "schedule"
EPOCHS_KEY = "epochs"
BEGIN_STEP_KEY = "begin_step"
END_STEP_KEY = "end_step"
FREQUENCY_KEY = "frequency"
BATCH_SIZE_KEY = "batch_size"
LEARNING_RATE_KEY = "learning_rate"
INCLUDE_LAYERS_KEY = "include_layers"
EXCLUDE_LAYERS_KEY = "exclude_layers"
SPARSITY_M_BY_N_KEY = "sparsity_m_by_n"
PRUNING_POLICY_KEY = "pruning_policy"
MODULE_FILE_KEY = "module_file"
ALLOCATION_KEY = "allocation"
SEARCH_LEVELS_KEY = "search_levels"
SEARCH_MAX_ACCURACY_DROP_KEY = "search_max_accuracy_drop"
SEARCH_MAX_TRIALS_KEY = "search_max_trials"
SEARCH_TIME_BUDGET_KEY = "search_time_budget_s"
SEARCH_EPOCHS_KEY = "search_epochs_per_trial"
CLUSTERS_KEY = "clusters"
CLUSTER_EPOCHS_KEY = "cluster_epochs"
QAT_EPOCHS_KEY = "qat_epochs"
COLLABORATIVE_LEARNING_RATE_KEY = "collaborative_learning_rate"
MODEL_FN_KEY = "model_fn"
HEAD_KEY = "head"
METRIC_KEY = "metric"
# Output artifact properties
SPARSITY_PROPERTY = "sparsity"
ACCURACY_PROPERTY = "eval_accuracy"
QUANTIZATION_AWARE_PROPERTY = "quantization_aware"   # 1 when the model carries QAT wrappers
HEAD_PROPERTY = "head"                 # the resolved head (heads.HEADS)
METRIC_PROPERTY = "metric"             # accuracy, mae or rmse
EVAL_METRIC_PROPERTY = "eval_metric"   # that metric on the eval split


class PruneTrainerSpec(component_spec.ComponentSpec):
  """Inputs, outputs and parameters of PruneTrainer."""
  PARAMETERS = {
      LABEL_KEY: component_spec.ExecutionParameter(type=str),
      TRAIN_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
      EVAL_SPLIT_KEY: component_spec.ExecutionParameter(type=str),
      TARGET_SPARSITY_KEY: component_spec.ExecutionParameter(type=float),
      INITIAL_SPARSITY_KEY: component_spec.ExecutionParameter(type=float),
      SCHEDULE_KEY: component_spec.ExecutionParameter(type=str),
      EPOCHS_KEY: component_spec.ExecutionParameter(type=int),
      BEGIN_STEP_KEY: component_spec.ExecutionParameter(type=int),
      END_STEP_KEY: component_spec.ExecutionParameter(type=int, optional=True),
      FREQUENCY_KEY: component_spec.ExecutionParameter(type=int),
      BATCH_SIZE_KEY: component_spec.ExecutionParameter(type=int),
      LEARNING_RATE_KEY: component_spec.ExecutionParameter(type=float),
      INCLUDE_LAYERS_KEY: component_spec.ExecutionParameter(type=List[str], optional=True),
      EXCLUDE_LAYERS_KEY: component_spec.ExecutionParameter(type=List[str], optional=True),
      SPARSITY_M_BY_N_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      PRUNING_POLICY_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      MODULE_FILE_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      ALLOCATION_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      SEARCH_LEVELS_KEY: component_spec.ExecutionParameter(type=List[float], optional=True),
      SEARCH_MAX_ACCURACY_DROP_KEY: component_spec.ExecutionParameter(type=float, optional=True),
      SEARCH_MAX_TRIALS_KEY: component_spec.ExecutionParameter(type=int, optional=True),
      SEARCH_TIME_BUDGET_KEY: component_spec.ExecutionParameter(type=float, optional=True),
      SEARCH_EPOCHS_KEY: component_spec.ExecutionParameter(type=int, optional=True),
      CLUSTERS_KEY: component_spec.ExecutionParameter(type=int, optional=True),
      CLUSTER_EPOCHS_KEY: component_spec.ExecutionParameter(type=int, optional=True),
      QAT_EPOCHS_KEY: component_spec.ExecutionParameter(type=int, optional=True),
      COLLABORATIVE_LEARNING_RATE_KEY: component_spec.ExecutionParameter(type=float,
                                                                         optional=True),
      MODEL_FN_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      HEAD_KEY: component_spec.ExecutionParameter(type=str, optional=True),
      METRIC_KEY: component_spec.ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {
      EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
      MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      SCHEMA_KEY: component_spec.ChannelParameter(type=standard_artifacts.Schema, optional=True),
      TRANSFORM_GRAPH_KEY: component_spec.ChannelParameter(
          type=standard_artifacts.TransformGraph, optional=True),
  }
  OUTPUTS = {
      PRUNED_MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
      MODEL_RUN_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelRun),
  }
