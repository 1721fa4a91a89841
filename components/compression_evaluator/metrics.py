"""The gate's TFMA metric over batches: every model's accuracy and the paired outcomes at once.

TFMA's per-example path (UnbatchExtractor, then per example the slice keys, the standard
metric inputs, ExampleCount and a Keras accuracy through TFMA's metric wrapper) costs about
150 us per example on two cores, more than the int8 inference. `PairedAccuracy` works on the
extracts as the prediction step leaves them, one per record batch: its preprocessor turns a
batch into a (models x examples) matrix of right/wrong with numpy, and its combiner counts
each pattern of (model right?) over the models. From those counts come, per model, the
`example_count` and the head's accuracy (TFMA's names, so the evaluation reads as before),
and on the first model (the candidate) the count of each pattern, from which the gate takes
its paired drops (`paired_counts`). The extracts must stay batched (`make_extractors(...,
batched=True)`) and the slicing overall only: it is a classifier-only, unweighted metric.
"""
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.metrics import metric_types

from tfx_bonsai.components.common import heads

EXAMPLE_COUNT = "example_count"
# The accuracy's name per head: TFMA's (Keras') metric names, as the per-example path reports.
ACCURACY_NAMES = {heads.MULTICLASS: "sparse_categorical_accuracy",
                  heads.MULTICLASS_LOGITS: "sparse_categorical_accuracy",
                  heads.BINARY: "binary_accuracy", heads.BINARY_LOGITS: "binary_accuracy"}
# A pattern's metric name: "paired_outcomes:candidate=1,dense=0" (1: that model was right).
PATTERN_PREFIX = "paired_outcomes:"
_PATTERN = re.compile(r"^paired_outcomes:((?:[^=,]*=[01],)*[^=,]*=[01])$")


class PairedAccuracyError(ValueError):
  """A configuration PairedAccuracy cannot compute, naming what to change."""


def pattern_name(model_names: Sequence[str], pattern: Sequence[int]) -> str:
  """The metric name of a pattern of (model right?) over `model_names`."""
  return PATTERN_PREFIX + ",".join(f"{m}={int(b)}" for m, b in zip(model_names, pattern))


def parse_pattern(name: str) -> Optional[Tuple[Tuple[str, ...], Tuple[int, ...]]]:
  """(model names, pattern) of a pattern's metric name; None for any other metric."""
  match = _PATTERN.match(name)
  if not match:
    return None
  pairs = [p.split("=") for p in match.group(1).split(",")]
  return tuple(m for m, _ in pairs), tuple(int(b) for _, b in pairs)


def correct_matrix(labels: np.ndarray, predictions: Sequence[np.ndarray],
                   head: str = heads.MULTICLASS) -> np.ndarray:
  """(models x examples) bool: is each model's decision the label, over one batch.

  Top-1 of several scores; one score is on the label's side of the head's threshold (0.5 for
  a probability, 0 for a logit). The same rule as `extractors.is_correct`, vectorized.
  """
  if head not in ACCURACY_NAMES:
    raise heads.HeadError(f"PairedAccuracy needs a classifier head, one of "
                          f"{sorted(ACCURACY_NAMES)}; got {head!r}")
  labels = np.asarray(labels)
  n = labels.shape[0] if labels.ndim else 1
  labels = labels.reshape(n, -1)
  if labels.shape[1] != 1:
    raise ValueError(f"paired outcomes need one label per example, got {labels.shape[1]}")
  labels = labels[:, 0].astype(np.int64)
  rows = []
  for scores in predictions:
    scores = np.asarray(scores).reshape(n, -1)
    if scores.shape[1] == 1:
      threshold = 0.0 if head == heads.BINARY_LOGITS else 0.5
      decided = (scores[:, 0] > threshold).astype(np.int64)
    else:
      decided = np.argmax(scores, axis=1)
    rows.append(decided == labels)
  return np.stack(rows) if rows else np.zeros((0, n), bool)


def _per_model(value: Any, model_names: Sequence[str], what: str) -> List[Any]:
  """One entry per model of a batched extract (keyed by model name when several models)."""
  if len(model_names) == 1 and not isinstance(value, dict):
    return [value]
  if not isinstance(value, dict):
    raise PairedAccuracyError(f"PairedAccuracy: {what} of {len(model_names)} models should be "
                              f"keyed by model name, got {type(value).__name__}")
  missing = [m for m in model_names if m not in value]
  if missing:
    raise PairedAccuracyError(f"PairedAccuracy: no {what} for model(s) {missing}; "
                              f"the extracts have {sorted(value)}")
  return [value[m] for m in model_names]


class _CorrectPreprocessor(metric_types.Preprocessor):
  """A batched extract -> its (models x examples) right/wrong matrix."""

  def __init__(self, model_names: Sequence[str], head: str):
    super().__init__(name=f"_paired_accuracy_preprocessor:{head}:{','.join(model_names)}")
    self._model_names = list(model_names)
    self._head = head

  def process(self, extracts) -> Iterator[np.ndarray]:
    if isinstance(extracts, list):
      raise PairedAccuracyError("PairedAccuracy does not take a query_key")
    labels = _per_model(extracts[tfma_constants.LABELS_KEY], self._model_names, "labels")
    predictions = _per_model(extracts[tfma_constants.PREDICTIONS_KEY], self._model_names,
                             "predictions")
    for i, scores in enumerate(predictions):
      if isinstance(scores, dict):
        raise PairedAccuracyError(f"PairedAccuracy: model {self._model_names[i]!r} has several "
                                  f"outputs {sorted(scores)}; it needs a single-output model")
    # Each model is scored against its own labels (the same label feature, keyed per model).
    rows = [correct_matrix(labels[i], [scores], self._head)[0]
            for i, scores in enumerate(predictions)]
    if len({r.shape[0] for r in rows}) > 1:
      raise PairedAccuracyError("PairedAccuracy needs batched extracts (one array per batch); "
                                f"got batches of sizes {[r.shape[0] for r in rows]}")
    yield np.stack(rows)


class _PatternCombiner(beam.CombineFn):
  """Counts each pattern of (model right?) over the models; outputs the metrics from them."""

  def __init__(self, model_names: Sequence[str], accuracy_name: str):
    self._model_names = list(model_names)
    self._accuracy_name = accuracy_name
    self._weights = (1 << np.arange(len(self._model_names), dtype=np.int64))[:, None]

  def create_accumulator(self) -> np.ndarray:
    return np.zeros(1 << len(self._model_names), np.int64)

  def add_input(self, accumulator: np.ndarray, correct: np.ndarray) -> np.ndarray:
    if correct.ndim != 2 or correct.shape[0] != len(self._model_names):
      raise PairedAccuracyError(f"PairedAccuracy: a batch's outcomes have shape {correct.shape}, "
                                f"expected ({len(self._model_names)}, examples)")
    codes = (correct.astype(np.int64) * self._weights).sum(axis=0)
    accumulator += np.bincount(codes, minlength=accumulator.size)
    return accumulator

  def merge_accumulators(self, accumulators) -> np.ndarray:
    result = self.create_accumulator()
    for accumulator in accumulators:
      result += accumulator
    return result

  def extract_output(self, accumulator: np.ndarray) -> Dict[metric_types.MetricKey, float]:
    n = int(accumulator.sum())
    codes = np.arange(accumulator.size)
    output = {}
    for i, model in enumerate(self._model_names):
      right = int(accumulator[(codes >> i) & 1 == 1].sum())
      output[metric_types.MetricKey(EXAMPLE_COUNT, model_name=model)] = float(n)
      output[metric_types.MetricKey(self._accuracy_name, model_name=model)] = (
          right / n if n else float("nan"))
    if len(self._model_names) > 1:
      for code, count in enumerate(accumulator):
        pattern = [(code >> i) & 1 for i in range(len(self._model_names))]
        output[metric_types.MetricKey(pattern_name(self._model_names, pattern),
                                      model_name=self._model_names[0])] = float(count)
    return output


def _paired_accuracy(name: str = "paired_accuracy", head: str = heads.MULTICLASS,
                     model_names: Optional[List[str]] = None,
                     output_names: Optional[List[str]] = None,
                     sub_keys: Optional[List[Any]] = None, example_weighted: bool = False,
                     query_key: str = "") -> metric_types.MetricComputations:
  del name  # the outputs take TFMA's names (example_count, the head's accuracy)
  if head not in ACCURACY_NAMES:
    raise PairedAccuracyError(f"PairedAccuracy needs a classifier head, one of "
                              f"{sorted(ACCURACY_NAMES)}; got head {head!r} (a regression "
                              f"head is scored by TFMA's error metrics, not batched)")
  if [o for o in output_names or [] if o]:
    raise PairedAccuracyError(f"PairedAccuracy takes single-output models, got output_names "
                              f"{output_names}")
  if [k for k in sub_keys or [] if k is not None]:
    raise PairedAccuracyError(f"PairedAccuracy does not binarize or take top-k; got sub_keys "
                              f"{sub_keys}")
  if example_weighted:
    raise PairedAccuracyError("PairedAccuracy is unweighted: set no example_weights in the "
                              "MetricsSpec")
  if query_key:
    raise PairedAccuracyError(f"PairedAccuracy does not take a query_key, got {query_key!r}")
  models = list(model_names or [""])
  if len(models) > 16:
    raise PairedAccuracyError(f"PairedAccuracy pairs at most 16 models, got {len(models)}")
  accuracy_name = ACCURACY_NAMES[head]
  keys = [metric_types.MetricKey(k, model_name=m) for m in models
          for k in (EXAMPLE_COUNT, accuracy_name)]
  return [metric_types.MetricComputation(
      keys=keys, preprocessors=[_CorrectPreprocessor(models, head)],
      combiner=_PatternCombiner(models, accuracy_name))]


class PairedAccuracy(metric_types.Metric):
  """Per model `example_count` and the head's accuracy, plus the paired outcome patterns,
  computed over batched extracts (see the module docstring)."""

  def __init__(self, name: str = "paired_accuracy", head: str = heads.MULTICLASS):
    super().__init__(_paired_accuracy, name=name, head=head)

  @property
  def compute_confidence_interval(self) -> bool:
    return False


metric_types.register_metric(PairedAccuracy)


def patterns_from_metrics(metrics: Dict[str, float]) -> Optional[Dict[str, Any]]:
  """The paired outcomes ({"models": [...], "patterns": [[[0/1...], n], ...]}, the content of
  `paired_outcomes.json`) from one model's overall metrics; None when there are none."""
  models, patterns = None, []
  for name, value in metrics.items():
    parsed = parse_pattern(name)
    if parsed is None:
      continue
    if models is not None and parsed[0] != models:
      raise ValueError(f"paired outcome patterns over different models: {models} and "
                       f"{parsed[0]}")
    models = parsed[0]
    if int(round(value)):  # as the per-example path lists them: the patterns seen
      patterns.append([list(parsed[1]), int(round(value))])
  if models is None:
    return None
  return {"models": list(models), "patterns": sorted(patterns)}
