"""PruneTrainer's settings: every parameter's name, type, default and rules (no TensorFlow here).

`PruneTrainerSettings` is the one definition: the ComponentSpec's PARAMETERS, the
component's defaults, the executor and the pipeline's `pruning:` section all use it.
`SearchConfig` and `CollaborativeConfig` are its search and collaborative parts as the
pure modules take them.
"""
import dataclasses
import re
from typing import List, Optional, Tuple

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common.settings import setting

SCHEDULES = ("polynomial", "constant")
# How the overall sparsity is shared among layers: "" is uniform for a fixed target and
# global_magnitude in the search (as before "sensitivity" existed).
UNIFORM, GLOBAL_MAGNITUDE, SENSITIVITY = "uniform", "global_magnitude", "sensitivity"
ALLOCATIONS = ("", UNIFORM, GLOBAL_MAGNITUDE, SENSITIVITY)
POLICIES = ("", "xnnpack")
# The fine-tune's learning rate: constant, or cosine decay over its steps to COSINE_FLOOR x.
CONSTANT, COSINE = "constant", "cosine"
LEARNING_RATE_SCHEDULES = (CONSTANT, COSINE)
COSINE_FLOOR = 0.05
# Softening of the teacher's and student's outputs in the distillation loss (Hinton et al.).
DISTILLATION_TEMPERATURE = 2.0
DISTRIBUTIONS = ("", "mirrored")  # "": one device; "mirrored": tf.distribute.MirroredStrategy
MAX_CLUSTERS = 256  # an 8-bit weight cannot hold more distinct values
DEFAULT_SEARCH_LEVELS = (0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.997, 0.998)
# The search's per-layer cap: the global level's threshold may take a big layer this far.
DEFAULT_MAX_LAYER_SPARSITY = 0.999


class PruningError(settings_lib.SettingsError):
  """A pruning configuration or model that cannot work, naming the field or layer."""


def _regexes(patterns) -> Optional[str]:
  for pattern in patterns:
    try:
      re.compile(pattern)
    except re.error as e:
      return f"'{pattern}' is not a valid regular expression ({e})"
  return None


def _levels(levels) -> Optional[str]:
  if any(not 0.0 < s < 1.0 for s in levels) or list(levels) != sorted(set(levels)):
    return f"must be increasing values in (0, 1), got {list(levels)}"
  return None


def _clusters(value) -> Optional[str]:
  if value == 0 or 2 <= value <= MAX_CLUSTERS:
    return None
  return f"must be 0 (off) or in [2, {MAX_CLUSTERS}], got {value}"


@dataclasses.dataclass(frozen=True)
class PruneTrainerSettings(settings_lib.Settings):
  """How to prune. Defaults follow the seed (50% -> 90%, 4 epochs) but reach the target.

  `search_levels` non-empty turns on the sparsity search; `clusters` or `qat_epochs`
  non-zero the collaborative optimisation after pruning (see README for every field).
  """
  label_key: str = setting("label", config=settings_lib.NOT_IN_CONFIG)
  train_split: str = setting("train", check=settings_lib.non_empty("train"),
                             config=settings_lib.NOT_IN_CONFIG)
  eval_split: str = setting("eval", check=settings_lib.non_empty("eval"),
                            config=settings_lib.NOT_IN_CONFIG)
  target_sparsity: float = setting(0.9, check=settings_lib.fraction(high_open=True))
  initial_sparsity: float = 0.5
  schedule: str = setting("polynomial", check=settings_lib.one_of(SCHEDULES))
  epochs: int = setting(4, check=settings_lib.at_least(1))
  begin_step: int = setting(0, check=settings_lib.at_least(0))
  end_step: int = 0           # 0: the last pruning event of the fine-tune (target reached)
  frequency: int = setting(0, check=lambda v: None if v >= 0 else  # 0: chosen to reach the target
                           f"must be >= 1, or 0 to choose it, got {v}")
  batch_size: int = setting(32, check=settings_lib.at_least(1))
  learning_rate: float = setting(1e-3, check=settings_lib.greater_than(0))
  learning_rate_schedule: str = setting(CONSTANT, check=settings_lib.one_of(LEARNING_RATE_SCHEDULES))
  # Fraction of the fine-tune's steps by which pruning reaches its target (the mask is fixed
  # for the rest); 1: the last step.
  pruning_end: float = setting(1.0, check=settings_lib.fraction(low_open=True))
  # Weight of the distance to the dense model (the teacher) in the fine-tune's loss; 0: off.
  distillation: float = setting(0.0, check=settings_lib.fraction())
  # Train batches over which BatchNorm statistics are re-estimated after pruning; 0: off.
  batchnorm_batches: int = setting(32, check=settings_lib.at_least(0, " (0: off)"))
  # Classifier heads: refuse to publish a model whose selection accuracy is confidently more
  # than search_max_accuracy_drop below the dense model's (the paired 95% interval).
  refuse_over_budget: bool = True
  # regexes on layer names; empty: every prunable layer
  include_layers: List[str] = setting(default_factory=list, check=_regexes, runtime=False)
  exclude_layers: List[str] = setting(default_factory=list, check=_regexes, runtime=False)
  sparsity_m_by_n: str = setting("", check=settings_lib.m_by_n)   # "" or "M:N", e.g. "2:4"
  pruning_policy: str = setting("", check=settings_lib.one_of(POLICIES))  # "xnnpack"
  # The fine-tune's tf.distribute strategy: "mirrored" = every local GPU, else every CPU device.
  distribution: str = setting("", check=settings_lib.one_of(DISTRIBUTIONS))
  module_file: str = setting("", config=settings_lib.NOT_IN_CONFIG)  # with input_fn / model_fn
  # The Trainer module's model-building function ('module.function', or a name in module_file):
  # rebuilds a tf.saved_model.save export as a Keras model.
  model_fn: str = setting("", config=settings_lib.NOT_IN_CONFIG)
  # What the output means (settings_lib.HEADS; "auto" reads the model) and how it is scored:
  # "" (accuracy; MAE for regression), "accuracy", "mae" or "rmse".
  head: str = setting("auto", check=settings_lib.one_of(settings_lib.HEADS))
  metric: str = setting("", check=settings_lib.metric_name)
  # "": uniform for a fixed target, global_magnitude in the search.
  allocation: str = setting("", check=settings_lib.one_of(ALLOCATIONS))
  # The search: empty levels turn it off.
  search_levels: List[float] = setting(default_factory=list, check=_levels,
                                       config="search.levels", runtime=False)
  # The gate's default budget (a hand-wired search cannot see the gate: pass the gate's
  # max_accuracy_drop here when it is not the default; the YAML pipeline does).
  search_max_accuracy_drop: float = setting(settings_lib.DEFAULT_MAX_ACCURACY_DROP,
                                            check=settings_lib.fraction(),
                                            config="search.max_accuracy_drop")
  search_max_trials: int = setting(8, check=settings_lib.at_least(1), config="search.max_trials")
  search_time_budget_s: float = setting(0.0, check=settings_lib.at_least(0, " (0: no limit)"),
                                        config="search.time_budget_s")
  search_epochs_per_trial: int = setting(2, check=settings_lib.at_least(1),
                                         config="search.epochs_per_trial")
  # How trials are accepted, as the gate's accuracy_decision (settings_lib.ACCURACY_DECISIONS).
  search_accuracy_decision: str = setting(
      settings_lib.CONFIDENT, check=settings_lib.one_of(settings_lib.ACCURACY_DECISIONS),
      config="search.accuracy_decision")
  # Per-layer cap of the search's per-layer allocation: below 1 (TFMOT's bound).
  search_max_layer_sparsity: float = setting(
      DEFAULT_MAX_LAYER_SPARSITY,
      check=settings_lib.fraction(low_open=True, high_open=True,
                                  note=" (TFMOT cannot prune a layer to 1.0)"),
      config="search.max_layer_sparsity")
  # Collaborative optimisation: zeros turn a step off.
  clusters: int = setting(0, check=_clusters, config="collaborative.clusters")
  cluster_epochs: int = setting(1, config="collaborative.cluster_epochs")
  qat_epochs: int = setting(0, check=settings_lib.at_least(0, " (0: off)"),
                            config="collaborative.qat_epochs")
  collaborative_learning_rate: float = setting(1e-4, check=settings_lib.greater_than(0),
                                               config="collaborative.learning_rate")

  @classmethod
  def error(cls, key: str, message: str) -> PruningError:
    return PruningError(key, message)

  def check_together(self, known) -> None:
    if (known("schedule", "initial_sparsity", "target_sparsity") and self.schedule == "polynomial"
        and not 0.0 <= self.initial_sparsity <= self.target_sparsity):
      raise self.error("initial_sparsity", f"must be in [0, target_sparsity={self.target_sparsity}], "
                       f"got {self.initial_sparsity}")
    if known("end_step", "begin_step") and (
        self.end_step < 0 or (self.end_step and self.end_step <= self.begin_step)):
      raise self.error("end_step", f"must be > begin_step={self.begin_step}, or 0 to choose it, "
                       f"got {self.end_step}")
    if (known("allocation", "sparsity_m_by_n", "pruning_policy")
        and self.allocation in (GLOBAL_MAGNITUDE, SENSITIVITY)
        and (self.sparsity_m_by_n or self.pruning_policy)):
      raise self.error("allocation", f"'{self.allocation}' sets a sparsity per layer; it cannot "
                       "be combined with sparsity_m_by_n or pruning_policy")
    if (known("pruning_policy", "sparsity_m_by_n") and self.pruning_policy == "xnnpack"
        and (self.sparsity_m_by_n or self.include_layers or self.exclude_layers)):
      raise self.error("pruning_policy", "'xnnpack' prunes the whole model with XNNPack's structure; "
                       "it cannot be combined with sparsity_m_by_n, include_layers or exclude_layers")
    if known("clusters", "cluster_epochs") and self.clusters and self.cluster_epochs < 1:
      raise self.error("cluster_epochs", f"must be >= 1, got {self.cluster_epochs}")
    problem = known("head", "metric") and settings_lib.head_problem(self.head, self.metric)
    if problem:
      raise self.error(*problem)
    if known("label_key") and not self.label_key and not self.module_file:
      raise self.error("label_key", "must name the label feature (e.g. 'label'), got ''")

  def resolved_allocation(self, searching: bool) -> str:
    """The allocation in effect: `allocation`, or for "" uniform (fixed target) or
    global_magnitude (the search)."""
    return self.allocation or (GLOBAL_MAGNITUDE if searching else UNIFORM)

  @property
  def m_by_n(self) -> Optional[Tuple[int, int]]:
    """(M, N) of `sparsity_m_by_n`, or None."""
    return settings_lib.parse_m_by_n(self.sparsity_m_by_n) if self.sparsity_m_by_n else None

  def search_config(self) -> Optional["SearchConfig"]:
    """The search's part, or None when `search_levels` is empty (plain pruning)."""
    if not self.search_levels:
      return None
    return SearchConfig(levels=tuple(self.search_levels),
                        max_accuracy_drop=self.search_max_accuracy_drop,
                        max_trials=self.search_max_trials, time_budget_s=self.search_time_budget_s,
                        epochs_per_trial=self.search_epochs_per_trial,
                        accuracy_decision=self.search_accuracy_decision,
                        max_layer_sparsity=self.search_max_layer_sparsity)

  def collaborative_config(self) -> "CollaborativeConfig":
    return CollaborativeConfig(clusters=self.clusters, cluster_epochs=self.cluster_epochs,
                               qat_epochs=self.qat_epochs,
                               learning_rate=self.collaborative_learning_rate)


_DEFAULTS = PruneTrainerSettings


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """How to search. `max_accuracy_drop` is absolute, against the dense model on the same
  examples of the selection split (PruneTrainer's eval_split), decided as `accuracy_decision`."""
  levels: Tuple[float, ...] = DEFAULT_SEARCH_LEVELS
  max_accuracy_drop: float = _DEFAULTS.search_max_accuracy_drop
  max_trials: int = _DEFAULTS.search_max_trials
  time_budget_s: float = _DEFAULTS.search_time_budget_s   # 0: no limit
  epochs_per_trial: int = _DEFAULTS.search_epochs_per_trial
  bisect: bool = True
  accuracy_decision: str = _DEFAULTS.search_accuracy_decision
  max_layer_sparsity: float = _DEFAULTS.search_max_layer_sparsity   # per-layer cap, < 1

  def validate(self) -> "SearchConfig":
    """Returns self; raises PruningError naming the PruneTrainer parameter (search_...)."""
    if not self.levels:
      raise PruningError("search_levels", "must list at least one sparsity level")
    PruneTrainerSettings(
        search_levels=list(self.levels), search_max_accuracy_drop=self.max_accuracy_drop,
        search_max_trials=self.max_trials, search_time_budget_s=self.time_budget_s,
        search_epochs_per_trial=self.epochs_per_trial,
        search_accuracy_decision=self.accuracy_decision,
        search_max_layer_sparsity=self.max_layer_sparsity).validate()
    return self


@dataclasses.dataclass(frozen=True)
class CollaborativeConfig:
  """Which collaborative steps run after pruning; zeros turn a step off."""
  clusters: int = _DEFAULTS.clusters           # 0: no clustering; else shared values per layer
  cluster_epochs: int = _DEFAULTS.cluster_epochs
  qat_epochs: int = _DEFAULTS.qat_epochs       # 0: no quantization-aware training
  learning_rate: float = _DEFAULTS.collaborative_learning_rate

  @property
  def enabled(self) -> bool:
    return bool(self.clusters or self.qat_epochs)

  def validate(self) -> "CollaborativeConfig":
    """Returns self; raises PruningError naming the PruneTrainer parameter."""
    PruneTrainerSettings(clusters=self.clusters, cluster_epochs=self.cluster_epochs,
                         qat_epochs=self.qat_epochs,
                         collaborative_learning_rate=self.learning_rate).validate()
    return self
