"""PruneTrainer: fine-tunes the upstream Trainer's Keras model with magnitude pruning."""
from typing import List, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.prune_trainer import collaborative
from tfx_bonsai.components.prune_trainer import executor
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search
from tfx_bonsai.components.prune_trainer import spec


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
               label_key: str = "label",
               target_sparsity: float = 0.9,
               initial_sparsity: float = 0.5,
               schedule: str = "polynomial",
               epochs: int = 4,
               begin_step: int = 0,
               end_step: int = 0,
               frequency: int = 0,
               batch_size: int = 32,
               learning_rate: float = 1e-3,
               include_layers: Optional[List[str]] = None,
               exclude_layers: Optional[List[str]] = None,
               sparsity_m_by_n: str = "",
               pruning_policy: str = "",
               module_file: Optional[str] = None,
               allocation: str = "uniform",
               search_levels: Optional[List[float]] = None,
               search_max_accuracy_drop: float = 0.01,
               search_max_trials: int = 8,
               search_time_budget_s: float = 0.0,
               search_epochs_per_trial: int = 2,
               clusters: int = 0,
               cluster_epochs: int = 1,
               qat_epochs: int = 0,
               collaborative_learning_rate: float = 1e-4,
               model_fn: str = "",
               head: str = "auto",
               metric: str = "",
               train_split: str = "train",
               eval_split: str = "eval"):
    pruning.PruningConfig(
        target_sparsity=target_sparsity, initial_sparsity=initial_sparsity, schedule=schedule,
        epochs=epochs, begin_step=begin_step, end_step=end_step, frequency=frequency, batch_size=batch_size,
        learning_rate=learning_rate, include_layers=tuple(include_layers or ()),
        exclude_layers=tuple(exclude_layers or ()), sparsity_m_by_n=sparsity_m_by_n,
        pruning_policy=pruning_policy, allocation=allocation).validate()
    if search_levels:
      search.SearchConfig(levels=tuple(search_levels), max_accuracy_drop=search_max_accuracy_drop,
                          max_trials=search_max_trials, time_budget_s=search_time_budget_s,
                          epochs_per_trial=search_epochs_per_trial).validate()
    collaborative.CollaborativeConfig(
        clusters=clusters, cluster_epochs=cluster_epochs, qat_epochs=qat_epochs,
        learning_rate=collaborative_learning_rate).validate()
    heads.validate(head, metric)
    if not label_key and not module_file:
      raise ValueError("label_key must name the label feature (e.g. 'label'), got ''")
    super().__init__(spec.PruneTrainerSpec(
        examples=examples, model=model, schema=schema, transform_graph=transform_graph,
        label_key=label_key, target_sparsity=float(target_sparsity),
        initial_sparsity=float(initial_sparsity), schedule=schedule, epochs=int(epochs),
        begin_step=int(begin_step), end_step=int(end_step), frequency=int(frequency), batch_size=int(batch_size),
        learning_rate=float(learning_rate), include_layers=list(include_layers or []),
        exclude_layers=list(exclude_layers or []), sparsity_m_by_n=sparsity_m_by_n,
        pruning_policy=pruning_policy, module_file=module_file, allocation=allocation,
        search_levels=[float(x) for x in search_levels or []],
        search_max_accuracy_drop=float(search_max_accuracy_drop),
        search_max_trials=int(search_max_trials),
        search_time_budget_s=float(search_time_budget_s),
        search_epochs_per_trial=int(search_epochs_per_trial), clusters=int(clusters),
        cluster_epochs=int(cluster_epochs), qat_epochs=int(qat_epochs),
        collaborative_learning_rate=float(collaborative_learning_rate), model_fn=model_fn,
        head=head, metric=metric, train_split=train_split,
        eval_split=eval_split,
        pruned_model=types.Channel(type=standard_artifacts.Model),
        model_run=types.Channel(type=standard_artifacts.ModelRun)))
