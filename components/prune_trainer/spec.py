"""PruneTrainer's keys and ComponentSpec: the one place its names are defined
(TFX's standard_component_specs names where they mean the same thing)."""
from tfx.types import component_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import params
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.prune_trainer import settings

# Inputs
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
MODEL_KEY = standard_component_specs.MODEL_KEY
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY
TRANSFORM_GRAPH_KEY = standard_component_specs.TRANSFORM_GRAPH_KEY
# Outputs
PRUNED_MODEL_KEY = "pruned_model"
MODEL_RUN_KEY = standard_component_specs.MODEL_RUN_KEY
# Parameters (their types, defaults and rules: settings.PruneTrainerSettings)
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
LEARNING_RATE_SCHEDULE_KEY = "learning_rate_schedule"
PRUNING_END_KEY = "pruning_end"
DISTILLATION_KEY = "distillation"
BATCHNORM_BATCHES_KEY = "batchnorm_batches"
REFUSE_OVER_BUDGET_KEY = "refuse_over_budget"
INCLUDE_LAYERS_KEY = "include_layers"
EXCLUDE_LAYERS_KEY = "exclude_layers"
SPARSITY_M_BY_N_KEY = "sparsity_m_by_n"
PRUNING_POLICY_KEY = "pruning_policy"
MODULE_FILE_KEY = standard_component_specs.MODULE_FILE_KEY
ALLOCATION_KEY = "allocation"
SEARCH_LEVELS_KEY = "search_levels"
SEARCH_MAX_ACCURACY_DROP_KEY = "search_max_accuracy_drop"
SEARCH_MAX_TRIALS_KEY = "search_max_trials"
SEARCH_TIME_BUDGET_KEY = "search_time_budget_s"
SEARCH_EPOCHS_KEY = "search_epochs_per_trial"
SEARCH_ACCURACY_DECISION_KEY = "search_accuracy_decision"
SEARCH_MAX_LAYER_SPARSITY_KEY = "search_max_layer_sparsity"
CLUSTERS_KEY = "clusters"
CLUSTER_EPOCHS_KEY = "cluster_epochs"
QAT_EPOCHS_KEY = "qat_epochs"
COLLABORATIVE_LEARNING_RATE_KEY = "collaborative_learning_rate"
MODEL_FN_KEY = "model_fn"
HEAD_KEY = "head"
METRIC_KEY = "metric"
# Output artifact properties
SPARSITY_PROPERTY = "sparsity"
TARGET_SPARSITY_PROPERTY = model_io.TARGET_SPARSITY_PROPERTY
SEARCHED_PROPERTY = model_io.SEARCHED_PROPERTY
PRUNED_SPARSITY_PROPERTY = model_io.PRUNED_SPARSITY_PROPERTY
ACCURACY_PROPERTY = "eval_accuracy"
QUANTIZATION_AWARE_PROPERTY = "quantization_aware"   # 1 when the model carries QAT wrappers
HEAD_PROPERTY = "head"                 # the resolved head (heads.HEADS)
METRIC_PROPERTY = "metric"             # accuracy, mae or rmse
EVAL_METRIC_PROPERTY = "eval_metric"   # that metric on the eval split
DATA_ROLES_PROPERTY = roles.DATA_ROLES_PROPERTY  # the splits it fitted and selected on (JSON)


class PruneTrainerSpec(component_spec.ComponentSpec):
  """Inputs, outputs and parameters of PruneTrainer."""
  PARAMETERS = params.execution_parameters(settings.PruneTrainerSettings)
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
