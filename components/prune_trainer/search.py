"""Sparsity search within an accuracy budget: the highest sparsity whose accuracy drop holds.

Tries increasing global sparsity levels, each fine-tune continuing from the last accepted
model (so later trials only prune further), with per-layer targets from one global
magnitude ranking. After the first level over budget it bisects between the last accepted
level and that one while trials remain. Every trial is recorded.
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
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer.settings import SearchConfig  # noqa: F401


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


@dataclasses.dataclass
class SearchResult:
  model: Any                    # the stripped model of the best accepted trial (or the least sparse)
  result: pruning.PruneResult
  dense_accuracy: float
  trials: List[Trial]
  within_budget: bool
  max_accuracy_drop: float

  def report(self) -> Dict[str, Any]:
    return {"dense_accuracy": self.dense_accuracy, "within_budget": self.within_budget,
            "max_accuracy_drop": self.max_accuracy_drop,
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

  For a regression head the trials' `accuracy` is the error metric (`metric`, MAE or RMSE)
  and `accuracy_drop` its increase over the dense model, against the same budget.
  """
  search_config.validate()
  config.validate()
  layers = [n for n in pruning.select_layers(model, config)
            if pruning.prunable_weights(pruning.find_layer(model, n))]
  loss = loss or getattr(model, "loss", None) or "sparse_categorical_crossentropy"
  dense_accuracy = accuracy(model, eval_ds, head, metric)
  worse = ((lambda value: value - dense_accuracy) if heads.lower_is_better(heads.metric_for(head, metric))
           else (lambda value: dense_accuracy - value))
  log.info("search: dense accuracy %.4f, budget %.4f, levels %s, at most %d trials",
           dense_accuracy, search_config.max_accuracy_drop, list(search_config.levels),
           search_config.max_trials)
  start = time.time()
  trial_config = dataclasses.replace(config, epochs=search_config.epochs_per_trial,
                                     allocation="uniform")
  trials: List[Trial] = []
  best: Optional[Tuple[pruning.PruneResult, Trial]] = None
  fallback: Optional[Tuple[pruning.PruneResult, Trial]] = None
  base = model
  pending = list(search_config.levels)

  def out_of_budget() -> bool:
    return (len(trials) >= search_config.max_trials or
            (search_config.time_budget_s and time.time() - start >= search_config.time_budget_s))

  trials_bar = progress.bar(search_config.max_trials, "search", "trial")
  while pending and not out_of_budget():
    level = pending.pop(0)
    began = time.time()
    current = {n: pruning.kernel_sparsity(base, [n]) for n in layers}
    finals = pruning.allocate(base, layers, level)
    targets = {n: (current[n], max(current[n], finals[n])) for n in layers}
    result = pruning.prune(_copy(base), train_ds, None, num_train_examples, trial_config,
                           loss=loss, metrics=metrics, log_dir=log_dir, layer_targets=targets,
                           strategy=strategy)
    acc = accuracy(result.model, eval_ds, head, metric)
    drop = worse(acc)
    accepted = drop <= search_config.max_accuracy_drop + 1e-9
    trial = Trial(level, result.sparsity, acc, drop, weights_gzip_bytes(result.model),
                  time.time() - began, accepted, result.layer_sparsity)
    trials.append(trial)
    trials_bar.set_postfix(level=level, drop=f"{drop:+.3f}", refresh=False)
    trials_bar.update(1)
    log.info("search trial %d: level %.4f -> sparsity %.4f, accuracy %.4f (drop %+.4f) %s",
             len(trials), level, result.sparsity, acc, drop, "accepted" if accepted else "over budget")
    if fallback is None or level < fallback[1].level:
      fallback = (result, trial)
    if accepted:
      best, base = (result, trial), result.model
      continue
    low = best[1].level if best else None
    pending = ([round((low + level) / 2, 6)]
               if search_config.bisect and low is not None and level - low > 0.0025 else [])
  trials_bar.close()
  chosen = best or fallback
  log.info("search: %s sparsity %.4f (accuracy %.4f, drop %+.4f) after %d trials in %.0fs",
           "chose" if best else "no level within budget; returning the least sparse,",
           chosen[1].sparsity, chosen[1].accuracy, chosen[1].accuracy_drop, len(trials),
           time.time() - start)
  return SearchResult(chosen[0].model, chosen[0], dense_accuracy, trials, best is not None,
                      search_config.max_accuracy_drop)
