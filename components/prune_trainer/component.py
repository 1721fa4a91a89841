"""PruneTrainer: fine-tunes the upstream Trainer's Keras model with magnitude pruning."""
from typing import List, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import params
from tfx_bonsai.components.prune_trainer import executor
from tfx_bonsai.components.prune_trainer import settings
from tfx_bonsai.components.prune_trainer import spec

_DEFAULTS = settings.PruneTrainerSettings


class PruneTrainer(base_component.BaseComponent):
  """Prunes `model` (a Trainer's Keras SavedModel) on `examples`; outputs the stripped model.

  Outputs `pruned_model` (SavedModel under Format-Serving, like Trainer's, with properties
  `sparsity`, `eval_accuracy` and `quantization_aware`) and `model_run` (TensorBoard logs
  with TFMOT's per-layer sparsity curves). After pruning, optional collaborative
  optimisation: sparsity-preserving clustering (`clusters`) and sparsity-preserving
  quantization-aware training (`qat_epochs`, for int8 conversion). See README for every
  parameter.
  """
  SPEC_CLASS = spec.PruneTrainerSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               examples: types.BaseChannel,
               model: types.BaseChannel,
               schema: Optional[types.BaseChannel] = None,
               transform_graph: Optional[types.BaseChannel] = None,
               label_key: str = _DEFAULTS.label_key,
               target_sparsity: float = _DEFAULTS.target_sparsity,
               initial_sparsity: float = _DEFAULTS.initial_sparsity,
               schedule: str = _DEFAULTS.schedule,
               epochs: int = _DEFAULTS.epochs,
               begin_step: int = _DEFAULTS.begin_step,
               end_step: int = _DEFAULTS.end_step,
               frequency: int = _DEFAULTS.frequency,
               batch_size: int = _DEFAULTS.batch_size,
               learning_rate: float = _DEFAULTS.learning_rate,
               learning_rate_schedule: str = _DEFAULTS.learning_rate_schedule,
               pruning_end: float = _DEFAULTS.pruning_end,
               distillation: float = _DEFAULTS.distillation,
               batchnorm_batches: int = _DEFAULTS.batchnorm_batches,
               refuse_over_budget: bool = _DEFAULTS.refuse_over_budget,
               include_layers: Optional[List[str]] = None,
               exclude_layers: Optional[List[str]] = None,
               sparsity_m_by_n: str = _DEFAULTS.sparsity_m_by_n,
               pruning_policy: str = _DEFAULTS.pruning_policy,
               distribution: str = _DEFAULTS.distribution,
               module_file: Optional[str] = None,
               allocation: str = _DEFAULTS.allocation,
               search_levels: Optional[List[float]] = None,
               search_max_accuracy_drop: float = _DEFAULTS.search_max_accuracy_drop,
               search_max_trials: int = _DEFAULTS.search_max_trials,
               search_time_budget_s: float = _DEFAULTS.search_time_budget_s,
               search_epochs_per_trial: int = _DEFAULTS.search_epochs_per_trial,
               search_accuracy_decision: str = _DEFAULTS.search_accuracy_decision,
               search_max_layer_sparsity: float = _DEFAULTS.search_max_layer_sparsity,
               clusters: int = _DEFAULTS.clusters,
               cluster_epochs: int = _DEFAULTS.cluster_epochs,
               qat_epochs: int = _DEFAULTS.qat_epochs,
               collaborative_learning_rate: float = _DEFAULTS.collaborative_learning_rate,
               model_fn: str = _DEFAULTS.model_fn,
               head: str = _DEFAULTS.head,
               metric: str = _DEFAULTS.metric,
               train_split: str = _DEFAULTS.train_split,
               eval_split: str = _DEFAULTS.eval_split):
    """Every parameter is a field of `settings.PruneTrainerSettings` (types, defaults, rules);
    scalar ones may be `tfx.dsl.experimental.RuntimeParameter`s, checked when the run starts."""
    chosen = params.component_settings(settings.PruneTrainerSettings, locals())
    super().__init__(spec.PruneTrainerSpec(
        examples=examples, model=model, schema=schema, transform_graph=transform_graph,
        pruned_model=types.Channel(type=standard_artifacts.Model),
        model_run=types.Channel(type=standard_artifacts.ModelRun),
        **chosen.to_exec_properties()))
