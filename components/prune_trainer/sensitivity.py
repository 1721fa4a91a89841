"""Per-layer sparsity by measured sensitivity: prune each layer alone, then let the tolerant
layers take the sparsity.

Measurement: on the selection data (PruneTrainer's `eval_split`, never the gate's), each
prunable layer in turn has its smallest-magnitude weights zeroed at each of `SPARSITIES`
(one shot, no fine-tuning, every other layer dense; then restored), and the increase of
the mean fine-tuning loss over the dense model is recorded (beside the head's metric drop,
for the report). The loss, not the accuracy, ranks the layers: it moves before a single
decision flips, so a few hundred selection examples still tell layers apart.

Allocation for an overall level: one shared threshold `t` on that loss increase. Each
layer's measured curve (0 at 0 % and made non-decreasing) is read backwards: the layer
gets the highest sparsity whose interpolated increase stays <= t, capped at
`max_layer_sparsity`. `t` is bisected so that the weight-count-weighted mean of the layers'
sparsities equals the level. A tiny slope added to every curve breaks ties between layers
that measured no increase at all: they share the sparsity evenly, so the overall
sparsity is a continuous function of `t` and the level is met.
"""
import dataclasses
import time
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import tensorflow as tf

from tfx_bonsai.components.common import heads

# The sparsities each layer is measured at (1.0: the layer's prunable weights all zero).
SPARSITIES = (0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0)
# Added slope (loss per unit of sparsity) so that flat curves still order by sparsity.
_TIE_SLOPE = 1e-6
_BISECTIONS = 60


class SensitivityError(ValueError):
  """Sensitivity cannot be measured or allocated (no data, no layers)."""


@dataclasses.dataclass
class LayerSensitivity:
  """One layer pruned alone: the loss increase and metric drop at each sparsity."""
  weights: int                   # its prunable weights (the allocation's weighting)
  sparsities: List[float]
  loss_increase: List[float]     # mean loss minus the dense model's
  metric_drop: List[float]       # accuracy lost; regression: the error metric's increase

  def curve(self):
    """(sparsities, loss increases) from (0, 0), non-decreasing and strictly increasing."""
    s = np.array([0.0] + list(self.sparsities))
    d = np.maximum.accumulate(np.maximum(0.0, np.array([0.0] + list(self.loss_increase))))
    return s, d + _TIE_SLOPE * s

  def sparsity_at(self, threshold: float, max_layer_sparsity: float) -> float:
    """The highest sparsity whose (interpolated) loss increase is <= threshold, capped."""
    s, d = self.curve()
    return float(min(max_layer_sparsity, np.interp(threshold, d, s)))


@dataclasses.dataclass
class Sensitivity:
  """Every measured layer, and the dense model it was measured against."""
  layers: Dict[str, LayerSensitivity]
  dense_loss: float
  dense_metric: float
  metric: str
  examples: int
  seconds: float

  def allocate(self, target: float, max_layer_sparsity: float) -> Dict[str, float]:
    """Per-layer sparsity whose weight-weighted mean is `target` (see the module docstring).

    When every layer at `max_layer_sparsity` is still below `target`, all are at the cap.
    """
    if not 0.0 <= target < 1.0:
      raise SensitivityError(f"target must be in [0, 1), got {target}")
    names = list(self.layers)
    counts = np.array([self.layers[n].weights for n in names], dtype=np.float64)

    def overall(threshold):
      return float(np.dot(counts, [self.layers[n].sparsity_at(threshold, max_layer_sparsity)
                                   for n in names]) / counts.sum())

    low, high = 0.0, max(float(self.layers[n].curve()[1][-1]) for n in names)
    if overall(high) > target:   # overall(0) is 0: bisect to the least threshold reaching target
      for _ in range(_BISECTIONS):
        middle = (low + high) / 2
        low, high = (middle, high) if overall(middle) < target else (low, middle)
    return {n: self.layers[n].sparsity_at(high, max_layer_sparsity) for n in names}

  def report(self) -> Dict[str, Any]:
    return {"dense_loss": self.dense_loss, "dense_metric": self.dense_metric,
            "metric": self.metric, "examples": self.examples, "seconds": self.seconds,
            "layers": {n: dataclasses.asdict(l) for n, l in self.layers.items()}}


def _batches(dataset: tf.data.Dataset):
  batches = [(inputs, np.asarray(labels)) for inputs, labels in dataset]
  if not batches or not sum(len(labels) for _, labels in batches):
    raise SensitivityError("the selection split is empty: measuring layer sensitivity needs "
                           "examples")
  return batches


def _magnitude_prune(values: np.ndarray, sparsity: float) -> np.ndarray:
  """`values` with its round(sparsity * size) smallest magnitudes set to zero."""
  k = int(round(sparsity * values.size))
  pruned = values.copy().ravel()
  if k:
    pruned[np.argsort(np.abs(pruned), kind="stable")[:k]] = 0.0
  return pruned.reshape(values.shape)


def measure(model, layer_weights: Mapping[str, Sequence[tf.Variable]],
            selection_ds: tf.data.Dataset, loss: Any = None, head: str = heads.MULTICLASS,
            metric: str = "", sparsities: Sequence[float] = SPARSITIES) -> Sensitivity:
  """Prunes each layer of `layer_weights` ({layer: its prunable variables}) alone and scores it.

  `selection_ds` is a finite dataset of (inputs, labels) batches: the selection split.
  `loss` is the fine-tuning loss (a Keras loss or its name; default: the model's, else
  sparse categorical cross-entropy); `head`/`metric` score the reported metric drop.
  Every variable is restored afterwards.
  """
  if not layer_weights:
    raise SensitivityError("no prunable layer to measure")
  start = time.time()
  batches = _batches(selection_ds)
  loss_fn = tf.keras.losses.get(loss or getattr(model, "loss", None)
                                or "sparse_categorical_crossentropy")
  labels = np.concatenate([y for _, y in batches])
  forward = tf.function(lambda x: model(x, training=False))
  name = heads.metric_for(head, metric)
  sign = 1.0 if heads.lower_is_better(name) else -1.0   # a drop: worse is positive

  def scores():
    outputs = np.concatenate([np.asarray(forward(x)) for x, _ in batches])
    y = labels.reshape(outputs.shape) if labels.size == outputs.size else labels
    return (float(np.mean(loss_fn(y, outputs))),
            heads.score(head, metric, outputs, labels))

  dense_loss, dense_metric = scores()
  layers = {}
  for layer, variables in layer_weights.items():
    originals = [v.numpy() for v in variables]
    increases, drops = [], []
    try:
      for sparsity in sparsities:
        for variable, values in zip(variables, originals):
          variable.assign(_magnitude_prune(values, sparsity))
        pruned_loss, pruned_metric = scores()
        increases.append(pruned_loss - dense_loss)
        drops.append(sign * (pruned_metric - dense_metric))
    finally:
      for variable, values in zip(variables, originals):
        variable.assign(values)
    layers[layer] = LayerSensitivity(int(sum(v.size for v in originals)), list(sparsities),
                                     increases, drops)
  return Sensitivity(layers, dense_loss, dense_metric, name, int(labels.shape[0]),
                     time.time() - start)
