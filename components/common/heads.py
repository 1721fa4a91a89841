"""What a model's output means, and how it is scored: one definition for every component.

A head is one of HEADS. Classifiers are scored by accuracy (top-1 class, or the 0/1
decision of a single unit); regression by an error metric, MAE or RMSE, where lower is
better. `resolve` picks the head from the model when it is "auto".
"""
from typing import Any, List, Optional

import numpy as np

from tfx_bonsai.components.common import settings as settings_lib

AUTO = "auto"
MULTICLASS = "multiclass"                 # N units, softmax
MULTICLASS_LOGITS = "multiclass_logits"   # N units, no activation
BINARY = "binary"                         # 1 sigmoid unit
BINARY_LOGITS = "binary_logits"           # 1 unit, no activation: class 1 when > 0
REGRESSION = "regression"
HEADS = settings_lib.HEADS   # (AUTO, MULTICLASS, MULTICLASS_LOGITS, BINARY, BINARY_LOGITS, REGRESSION)

ACCURACY = "accuracy"
MAE = "mae"
RMSE = "rmse"
METRICS = settings_lib.METRICS              # (ACCURACY, MAE, RMSE)
ERROR_METRICS = settings_lib.ERROR_METRICS  # (MAE, RMSE)


class HeadError(settings_lib.SettingsError):
  """A head or metric that does not fit the model, naming the allowed values."""


def validate(head: str, metric: str = "") -> None:
  """Raises HeadError naming `head` or `metric` and their allowed values (the settings' rule)."""
  problem = settings_lib.head_problem(head, metric)
  if problem:
    raise HeadError(*problem)


def metric_for(head: str, metric: str = "") -> str:
  """The metric that scores `head` (a resolved head): `metric`, or accuracy / MAE by default."""
  if head == REGRESSION:
    return metric or MAE
  return ACCURACY


def lower_is_better(metric: str) -> bool:
  return metric in ERROR_METRICS


def _activation(model) -> str:
  """The name of the activation that produces the model's output, skipping reshapes."""
  for layer in reversed(model.layers):
    kind = type(layer).__name__
    if kind == "Softmax":
      return "softmax"
    if kind == "Activation" or hasattr(layer, "activation"):
      return getattr(getattr(layer, "activation", None), "__name__", "linear")
    if layer.weights:
      return "linear"
  return "linear"


def resolve(head: str, model, metric: str = "") -> str:
  """The concrete head of `model`: `head`, or for "auto" the one its output layer implies.

  "auto" reads the last activation: softmax -> multiclass, sigmoid on one unit -> binary,
  none on several units -> multiclass_logits. One unit without activation is either
  binary logits or a regression, so HeadError asks which, as does a metric of MAE/RMSE.
  """
  validate(head, metric)
  if len(model.outputs) != 1:
    raise HeadError(f"model '{model.name}' has {len(model.outputs)} outputs "
                    f"{list(model.output_names)}; only single-output models are supported: "
                    "export one output per pipeline (keras.Model(inputs, outputs[i]))")
  units = model.output_shape[-1] if len(model.output_shape) > 1 else 1
  if head != AUTO:
    if head in (BINARY, BINARY_LOGITS, REGRESSION) and units != 1:
      raise HeadError(f"head {head!r} needs one output unit; model '{model.name}' has {units}")
    if head in (MULTICLASS, MULTICLASS_LOGITS) and units < 2:
      raise HeadError(f"head {head!r} needs at least 2 output units; model '{model.name}' has "
                      f"{units}: use 'binary', 'binary_logits' or 'regression'")
    return head
  if metric in ERROR_METRICS:
    return REGRESSION
  activation = _activation(model)
  if units > 1:
    return MULTICLASS if activation == "softmax" else MULTICLASS_LOGITS
  if activation == "sigmoid":
    return BINARY
  raise HeadError(f"model '{model.name}' ends in one unit with activation {activation!r}: set "
                  f"head to 'binary_logits' (a logit, class 1 when > 0) or 'regression'")


def keras_loss(head: str, model=None) -> Any:
  """The fine-tuning loss: the head's cross-entropy, or the model's own loss (MSE) for regression."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  losses = tf_keras.losses
  if head in (MULTICLASS, MULTICLASS_LOGITS):
    return losses.SparseCategoricalCrossentropy(from_logits=head == MULTICLASS_LOGITS)
  if head in (BINARY, BINARY_LOGITS):
    return losses.BinaryCrossentropy(from_logits=head == BINARY_LOGITS)
  return getattr(model, "loss", None) or "mse"


def keras_metrics(head: str, metric: str = "") -> List[Any]:
  """One Keras metric named after `metric_for(head, metric)` ("accuracy", "mae" or "rmse")."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  m = tf_keras.metrics
  name = metric_for(head, metric)
  if head in (MULTICLASS, MULTICLASS_LOGITS):
    return [m.SparseCategoricalAccuracy(name=ACCURACY)]
  if head in (BINARY, BINARY_LOGITS):
    return [m.BinaryAccuracy(name=ACCURACY, threshold=0.0 if head == BINARY_LOGITS else 0.5)]
  if name == RMSE:
    return [m.RootMeanSquaredError(name=RMSE)]
  return [m.MeanAbsoluteError(name=MAE)]


def decisions(head: str, outputs: np.ndarray) -> Optional[np.ndarray]:
  """The predicted class per row (None for regression)."""
  outputs = np.asarray(outputs)
  if head in (MULTICLASS, MULTICLASS_LOGITS):
    return np.argmax(outputs, axis=-1)
  if head in (BINARY, BINARY_LOGITS):
    return (outputs.reshape(len(outputs)) > (0.0 if head == BINARY_LOGITS else 0.5)).astype(int)
  return None


def score(head: str, metric: str, outputs: np.ndarray, labels: np.ndarray) -> float:
  """The head's metric of `outputs` against `labels`: accuracy, MAE or RMSE."""
  labels = np.asarray(labels)
  if head == REGRESSION:
    errors = np.asarray(outputs, np.float64).reshape(len(labels)) - labels.reshape(
        len(labels)).astype(np.float64)
    if metric_for(head, metric) == RMSE:
      return float(np.sqrt(np.mean(errors ** 2)))
    return float(np.mean(np.abs(errors)))
  predicted = decisions(head, outputs)
  return float(np.mean(predicted == labels.reshape(predicted.shape)))
