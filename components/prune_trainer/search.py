"""Sparsity search within an accuracy budget: the highest sparsity whose accuracy drop holds.

Tries increasing global sparsity levels, each fine-tune continuing from the last accepted
model (so later trials only prune further), with per-layer targets by the settings'
allocation (each layer capped at `max_layer_sparsity`): one global magnitude ranking (the
default), every layer at the level (`uniform`), or by each layer's sensitivity, measured
once per search on the selection data (`sensitivity`, sensitivity.py). A trial is accepted when
its drop against the dense model, on the same selection examples, holds: with
`accuracy_decision="confident"` the upper end of the paired 95% interval
(`components/common/stats.py`) must be within the budget, as the gate decides; with
`point` the point drop must. A regression head (issue 13's heads) is scored by its error
metric instead, and a trial's increase of it over the dense model is decided the same way,
on the paired per-example errors (a paired t interval, `stats.PairedErrors`). When
the first level is already over budget the search
brackets downwards (halving the level) until one holds; after the first level over budget
it bisects between the last accepted level and the first rejected one while trials remain.
Every trial is recorded.
"""
import dataclasses
import gzip
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import logging as log
import numpy as np
import tensorflow as tf

from tfx_bonsai.components.common import progress
from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common import stats
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import sensitivity as sensitivity_lib
from tfx_bonsai.components.prune_trainer import settings
from tfx_bonsai.components.prune_trainer.settings import SearchConfig  # noqa: F401

POINT, CONFIDENT = settings_lib.POINT, settings_lib.CONFIDENT   # as the gate's accuracy_decision
# Bracketing downwards stops below this level: nothing sparser than it held.
MIN_BRACKET_LEVEL = 0.05
# Bisection stops when the accepted and rejected levels are this close.
BISECT_RESOLUTION = 0.0025


@dataclasses.dataclass
class Trial:
  level: float
  sparsity: float
  accuracy: float
  accuracy_drop: float
  weights_gzip_bytes: int
  seconds: float
  accepted: bool
  layer_sparsity: Dict[str, float]
  # The paired comparison with the dense model on the selection examples.
  drop_ci_low: Optional[float] = None
  drop_ci_high: Optional[float] = None
  examples: int = 0


@dataclasses.dataclass
class SearchResult:
  model: Any                    # the stripped model of the best accepted trial (or the least sparse)
  result: pruning.PruneResult
  dense_accuracy: float
  trials: List[Trial]
  within_budget: bool
  max_accuracy_drop: float
  accuracy_decision: str = CONFIDENT
  stopped: str = ""             # why the search stopped
  dense_weights_gzip_bytes: int = 0
  allocation: str = ""
  sensitivity: Optional[sensitivity_lib.Sensitivity] = None   # allocation "sensitivity"

  def report(self) -> Dict[str, Any]:
    return {"dense_accuracy": self.dense_accuracy, "within_budget": self.within_budget,
            "allocation": self.allocation,
            "sensitivity": self.sensitivity.report() if self.sensitivity else None,
            "dense_weights_gzip_bytes": self.dense_weights_gzip_bytes,
            "max_accuracy_drop": self.max_accuracy_drop,
            "accuracy_decision": self.accuracy_decision, "stopped": self.stopped,
            "trials": [dataclasses.asdict(t) for t in self.trials]}


def accuracy(model, eval_ds: tf.data.Dataset, head: str = heads.MULTICLASS,
             metric: str = "") -> float:
  """The head's metric over a finite dataset of (inputs, labels): top-1 accuracy by default.

  Binary heads: accuracy of the 0/1 decision; regression: MAE or RMSE (`metric`).
  """
  outputs, labels = [], []
  for inputs, label in eval_ds:
    outputs.append(np.asarray(model(inputs, training=False)))
    labels.append(np.reshape(label.numpy(), len(outputs[-1])))
  if not labels:
    raise pruning.PruningError("the eval split is empty: the search needs examples to measure accuracy")
  return heads.score(head, metric, np.concatenate(outputs), np.concatenate(labels))
def residuals(model, eval_ds: tf.data.Dataset) -> np.ndarray:
  """Per example, in the dataset's order: label - prediction (a regression head's one unit)."""
  found = []
  for inputs, labels in eval_ds:
    outputs = np.asarray(model(inputs, training=False), np.float64).reshape(-1)
    found.append(np.reshape(labels.numpy(), outputs.shape) - outputs)
  if not found or not sum(len(r) for r in found):
    raise pruning.PruningError("the eval split is empty: the search needs examples to measure "
                               "its error")
  return np.concatenate(found)


def correct(model, eval_ds: tf.data.Dataset, head: str = heads.MULTICLASS) -> np.ndarray:
  """Per example, in the dataset's order: is the head's decision the label? (a finite dataset)

  The top-1 class; one unit: its side of 0.5 (binary) or of 0 (binary_logits). Classifier
  heads only: a regression head is scored by `accuracy` (its error metric).
  """
  if head == heads.REGRESSION:
    raise pruning.PruningError("a regression head has no right or wrong per example; it is "
                               "scored by its error metric")
  right = []
  for inputs, labels in eval_ds:
    predicted = heads.decisions(head, np.asarray(model(inputs, training=False)))
    right.append(predicted == np.reshape(labels.numpy(), predicted.shape))
  if not right or not sum(len(r) for r in right):
    raise pruning.PruningError("the eval split is empty: the search needs examples to measure accuracy")
  return np.concatenate(right)


def paired_counts(dense_correct: np.ndarray, candidate_correct: np.ndarray) -> stats.PairedCounts:
  if dense_correct.shape != candidate_correct.shape:
    raise pruning.PruningError(f"paired outcomes differ in length: {dense_correct.shape} vs "
                               f"{candidate_correct.shape} (the eval dataset must be finite and "
                               "deterministic)")
  return stats.PairedCounts.from_outcomes(dense_correct, candidate_correct)


def paired_errors(metric: str, dense_residuals: np.ndarray,
                  candidate_residuals: np.ndarray) -> stats.PairedErrors:
  if dense_residuals.shape != candidate_residuals.shape:
    raise pruning.PruningError(f"paired residuals differ in length: {dense_residuals.shape} vs "
                               f"{candidate_residuals.shape} (the eval dataset must be finite "
                               "and deterministic)")
  return stats.PairedErrors.from_residuals(metric, dense_residuals, candidate_residuals)


def next_levels(accepted_level: Optional[float], rejected_level: Optional[float],
                search_config: SearchConfig) -> List[float]:
  """The level to try once the given levels are exhausted or one was rejected.

  Between the highest accepted and the lowest rejected level: their midpoint (bisection),
  until they are BISECT_RESOLUTION apart. With nothing accepted yet: half the rejected level
  (bracketing downwards), down to MIN_BRACKET_LEVEL.
  """
  if rejected_level is None:
    return []
  if accepted_level is None:
    lower = round(rejected_level / 2, 6)
    return [lower] if lower >= MIN_BRACKET_LEVEL else []
  if search_config.bisect and rejected_level - accepted_level > BISECT_RESOLUTION:
    return [round((accepted_level + rejected_level) / 2, 6)]
  return []


def weights_gzip_bytes(model) -> int:
  """Size proxy for a trial: the model's weights (float32) after gzip."""
  raw = b"".join(np.asarray(w).astype(np.float32).tobytes() for w in model.get_weights())
  return len(gzip.compress(raw, compresslevel=6))


def _copy(model):
  clone = tf.keras.models.clone_model(model)
  clone.set_weights(model.get_weights())
  return clone


def search(model, train_ds: tf.data.Dataset, eval_ds: tf.data.Dataset, num_train_examples: int,
           config: pruning.PruningConfig, search_config: SearchConfig, loss: Any = None,
           log_dir: Optional[str] = None, head: str = heads.MULTICLASS, metric: str = "",
           metrics: Optional[Sequence[Any]] = None, strategy=None) -> SearchResult:
  """Runs the search; the best model is the highest accepted level (else the least sparse trial).

  Trials are accepted by the paired comparison with the dense model
  (`search_config.accuracy_decision`). For a regression head the trials' `accuracy` is the
  error metric (`metric`, MAE or RMSE) and `accuracy_drop` its increase over the dense
  model, against the same budget.
  """
  search_config.validate()
  config.validate()
  layers = [n for n in pruning.select_layers(model, config)
            if pruning.prunable_weights(pruning.find_layer(model, n))]
  loss = loss or getattr(model, "loss", None) or "sparse_categorical_crossentropy"
  # Paired per example (right/wrong, or the residual for regression), decided as
  # accuracy_decision on the interval of stats.compare.
  regression = head == heads.REGRESSION
  decision = search_config.accuracy_decision
  if regression:
    dense_outcomes = residuals(model, eval_ds)
    dense_accuracy = accuracy(model, eval_ds, head, metric)
    log.info("search: dense %s %.4f, budget %.4f (increase), levels %s, at most %d trials",
             heads.metric_for(head, metric), dense_accuracy, search_config.max_accuracy_drop,
             list(search_config.levels), search_config.max_trials)
  else:
    dense_outcomes = correct(model, eval_ds, head)
    dense_accuracy = float(np.mean(dense_outcomes))
    log.info("search: dense accuracy %.4f on %d examples, budget %.4f (%s), levels %s, at most "
             "%d trials", dense_accuracy, dense_outcomes.size, search_config.max_accuracy_drop,
             decision, list(search_config.levels), search_config.max_trials)
  start = time.time()
  allocation = config.resolved_allocation(searching=True)
  measured = None
  if allocation == settings.SENSITIVITY:   # once per search, on the dense model
    measured = pruning.measure_sensitivity(model, layers, eval_ds, loss, head, metric)
  trial_config = dataclasses.replace(config, epochs=search_config.epochs_per_trial,
                                     allocation=settings.UNIFORM)
  trials: List[Trial] = []
  best: Optional[Tuple[pruning.PruneResult, Trial]] = None
  fallback: Optional[Tuple[pruning.PruneResult, Trial]] = None
  base = model
  pending = list(search_config.levels)
  rejected: Optional[float] = None     # the lowest level over budget so far
  stopped = "every level tried"

  def out_of_budget() -> bool:
    return (len(trials) >= search_config.max_trials or
            (search_config.time_budget_s and time.time() - start >= search_config.time_budget_s))

  trials_bar = progress.bar(search_config.max_trials, "search", "trial")
  while pending:
    if out_of_budget():
      stopped = "max_trials or time budget reached"
      break
    level = pending.pop(0)
    began = time.time()
    current = {n: pruning.kernel_sparsity(base, [n]) for n in layers}
    finals = pruning.layer_sparsities(base, layers, level, allocation,
                                      search_config.max_layer_sparsity, measured)
    targets = {n: (current[n], max(current[n], finals[n])) for n in layers}
    result = pruning.prune(_copy(base), train_ds, None, num_train_examples, trial_config,
                           loss=loss, metrics=metrics, log_dir=log_dir, layer_targets=targets,
                           strategy=strategy, head=head, metric=metric, teacher=model)
    if regression:  # `accuracy` holds the error metric, `accuracy_drop` its increase
      paired = paired_errors(heads.metric_for(head, metric), dense_outcomes,
                             residuals(result.model, eval_ds))
      acc = paired.candidate_error
    else:
      paired = paired_counts(dense_outcomes, correct(result.model, eval_ds, head))
      acc = paired.candidate_accuracy
    comparison = stats.compare(paired, search_config.max_accuracy_drop)
    accepted, drop = comparison.passes(decision), comparison.drop
    trial = Trial(level, result.sparsity, acc, drop, weights_gzip_bytes(result.model),
                  time.time() - began, accepted, result.layer_sparsity,
                  comparison.low, comparison.high, comparison.counts.n)
    described = comparison.describe()
    trials.append(trial)
    trials_bar.set_postfix(level=level, drop=f"{drop:+.3f}", refresh=False)
    trials_bar.update(1)
    log.info("search trial %d: level %.4f -> sparsity %.4f, %s %.4f (%s) %s",
             len(trials), level, result.sparsity, heads.metric_for(head, metric), acc, described,
             "accepted" if accepted else "over budget")
    if fallback is None or level < fallback[1].level:
      fallback = (result, trial)
    if accepted:
      best, base = (result, trial), result.model
      if not pending:
        pending = next_levels(level, rejected, search_config)
      continue
    rejected = level if rejected is None else min(rejected, level)
    pending = next_levels(best[1].level if best else None, rejected, search_config)
    stopped = (f"budget: level {rejected:g} over it" if best or pending else
               f"budget: no level down to {MIN_BRACKET_LEVEL:g} within it")
  trials_bar.close()
  chosen = best or fallback
  log.info("search: %s sparsity %.4f (accuracy %.4f, drop %+.4f) after %d trials in %.0fs; "
           "stopped: %s", "chose" if best else "no level within budget; returning the least sparse,",
           chosen[1].sparsity, chosen[1].accuracy, chosen[1].accuracy_drop, len(trials),
           time.time() - start, stopped)
  return SearchResult(chosen[0].model, chosen[0], dense_accuracy, trials, best is not None,
                      search_config.max_accuracy_drop, decision, stopped,
                      weights_gzip_bytes(model), allocation, measured)
