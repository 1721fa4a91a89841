"""The gate's TFMA metric over batches: every model's accuracy and the paired outcomes at once.

TFMA's per-example path (UnbatchExtractor, then per example the slice keys, the standard
metric inputs, ExampleCount and a Keras accuracy through TFMA's metric wrapper) costs about
150 us per example on two cores, more than the int8 inference. `PairedAccuracy` works on the
extracts as the prediction step leaves them, one per record batch: its preprocessor turns a
batch into a (models x examples) matrix of right/wrong with numpy, and its combiner counts
each pattern of (model right?) over the models. From those counts come, per model, the
`example_count` and the head's accuracy (TFMA's names, so the evaluation reads as before),
and on the first model (the candidate) the count of each pattern, overall and per class
(label), from which the gate takes its paired drops (`paired_counts`). The extracts must stay
batched (`make_extractors(..., batched=True)`) and the slicing overall only: it is a
classifier-only, unweighted metric.

`PairedError` is its counterpart for regression heads: per model the example count and the
error metric (MAE or RMSE), and for each other model against the first the sums from which
the gate takes the paired interval on the error increase (`stats.PairedErrors`).
"""
import json
import re
import urllib.parse
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.metrics import metric_types

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import stats

EXAMPLE_COUNT = "example_count"
# The accuracy's name per head: TFMA's (Keras') metric names, as the per-example path reports.
ACCURACY_NAMES = {heads.MULTICLASS: "sparse_categorical_accuracy",
                  heads.MULTICLASS_LOGITS: "sparse_categorical_accuracy",
                  heads.BINARY: "binary_accuracy", heads.BINARY_LOGITS: "binary_accuracy"}
# A pattern's metric name: "paired_outcomes:candidate=1,dense=0" (1: that model was right).
PATTERN_PREFIX = "paired_outcomes:"
_PATTERN = re.compile(r"^paired_outcomes:((?:[^=,]*=[01],)*[^=,]*=[01])$")
# The same per group of examples: a class ("paired_outcomes_by:class%3D3:candidate=1,...",
# the label 3) or a slice ("slice%3Dcolor%3Dred"); the group's name is URL-quoted.
GROUP_PATTERN_PREFIX = "paired_outcomes_by:"
_GROUP_PATTERN = re.compile(r"^paired_outcomes_by:([^:]*):((?:[^=,]*=[01],)*[^=,]*=[01])$")
CLASS, SLICE = "class", "slice"   # the kinds of group: "class=3", "slice=color=red"
# Regression heads: the error metric's name per metric (TFMA's, as the per-example path reports).
ERROR_NAMES = {stats.MAE: "mean_absolute_error", stats.RMSE: "root_mean_squared_error"}
# A paired error sum's metric name: "paired_errors:dense:cross_sum" (on the first model).
ERRORS_PREFIX = "paired_errors:"
ERROR_SUMS = ("baseline_sum", "baseline_sum_sq", "candidate_sum", "candidate_sum_sq", "cross_sum")


class PairedAccuracyError(ValueError):
  """A configuration PairedAccuracy cannot compute, naming what to change."""


def pattern_name(model_names: Sequence[str], pattern: Sequence[int]) -> str:
  """The metric name of a pattern of (model right?) over `model_names`."""
  return PATTERN_PREFIX + ",".join(f"{m}={int(b)}" for m, b in zip(model_names, pattern))


def group_pattern_name(group: str, model_names: Sequence[str], pattern: Sequence[int]) -> str:
  """The metric name of a pattern among the examples of `group` ("class=3", "slice=...")."""
  return (f"{GROUP_PATTERN_PREFIX}{urllib.parse.quote(group, safe='')}:"
          + pattern_name(model_names, pattern)[len(PATTERN_PREFIX):])


def slice_name(feature_values: Sequence[Tuple[str, Any]]) -> str:
  """A slice's name as TFMA writes slice keys: "color=red" or "color=red,size=2"."""
  return ",".join(f"{key}={value}" for key, value in feature_values)


def _pairs(text: str) -> Tuple[Tuple[str, ...], Tuple[int, ...]]:
  pairs = [p.split("=") for p in text.split(",")]
  return tuple(m for m, _ in pairs), tuple(int(b) for _, b in pairs)


def parse_pattern(name: str) -> Optional[Tuple[Tuple[str, ...], Tuple[int, ...]]]:
  """(model names, pattern) of a pattern's metric name; None for any other metric."""
  match = _PATTERN.match(name)
  return _pairs(match.group(1)) if match else None


def parse_group_pattern(name: str
                        ) -> Optional[Tuple[str, Tuple[str, ...], Tuple[int, ...]]]:
  """(group, model names, pattern) of a per-group pattern's name; None for any other metric."""
  match = _GROUP_PATTERN.match(name)
  return (urllib.parse.unquote(match.group(1)),) + _pairs(match.group(2)) if match else None


def _feature_column(features: Dict[str, Any], key: str, size: int) -> List[str]:
  """One value per example of a feature in a batch of extracts, as text."""
  if key not in features:
    raise PairedAccuracyError(f"PairedAccuracy: slicing feature {key!r} is not in the "
                              f"examples; they have {sorted(features)}")
  values = np.asarray(features[key])
  if values.ndim == 2 and values.shape[1] == 1:
    values = values[:, 0]
  if values.shape != (size,):
    raise PairedAccuracyError(f"PairedAccuracy: slicing feature {key!r} must have one value "
                              f"per example, got shape {values.shape} for {size} examples")
  return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


def slice_groups(slicing_specs: Sequence[Dict[str, Any]], features: Dict[str, Any],
                 size: int) -> List[List[str]]:
  """Per example, the slices (TFMA SlicingSpec dicts: feature_keys, feature_values) it is in."""
  groups: List[List[str]] = [[] for _ in range(size)]
  for spec in slicing_specs:
    keys = sorted(set(spec.get("feature_keys", [])) | set(spec.get("feature_values", {})))
    columns = {key: _feature_column(features, key, size) for key in keys}
    wanted = {k: str(v) for k, v in spec.get("feature_values", {}).items()}
    for i in range(size):
      values = [(key, columns[key][i]) for key in keys]
      name = f"{SLICE}={slice_name(values)}"
      if name not in groups[i] and all(value == wanted[key] for key, value in values
                                       if key in wanted):
        groups[i].append(name)
  return groups


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


def _labels_and_predictions(extracts, model_names: Sequence[str], metric: str, error: type):
  """(labels, predictions), one entry per model, of a batched extract; `error` for a
  query-keyed (list) extract, which `metric` does not take."""
  if isinstance(extracts, list):
    raise error(f"{metric} does not take a query_key")
  return (_per_model(extracts[tfma_constants.LABELS_KEY], model_names, "labels"),
          _per_model(extracts[tfma_constants.PREDICTIONS_KEY], model_names, "predictions"))


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

  def __init__(self, model_names: Sequence[str], head: str,
               slicing_specs: Sequence[Dict[str, Any]] = ()):
    super().__init__(name=f"_paired_accuracy_preprocessor:{head}:{','.join(model_names)}:"
                          f"{json.dumps(list(slicing_specs), sort_keys=True)}")
    self._model_names = list(model_names)
    self._head = head
    self._slicing_specs = list(slicing_specs)

  def process(self, extracts) -> Iterator[np.ndarray]:
    labels, predictions = _labels_and_predictions(extracts, self._model_names,
                                                  "PairedAccuracy", PairedAccuracyError)
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
    size = rows[0].shape[0]
    groups = [[f"{CLASS}={label}"] for label in
              np.asarray(labels[0]).reshape(-1).astype(np.int64)]
    if self._slicing_specs:
      features = extracts.get(tfma_constants.FEATURES_KEY) or {}
      for mine, slices in zip(groups, slice_groups(self._slicing_specs, features, size)):
        mine.extend(slices)
    yield np.stack(rows), groups


class _PatternCombiner(beam.CombineFn):
  """Counts each pattern of (model right?) over the models, per group of examples (each class,
  each slice); outputs the metrics from them. The accumulator maps each group to its pattern
  counts; every example is in exactly one class, so the classes sum to the overall counts."""

  def __init__(self, model_names: Sequence[str], accuracy_name: str):
    self._model_names = list(model_names)
    self._accuracy_name = accuracy_name
    self._weights = (1 << np.arange(len(self._model_names), dtype=np.int64))[:, None]

  def create_accumulator(self) -> Dict[str, np.ndarray]:
    return {}

  def add_input(self, accumulator: Dict[str, np.ndarray],
                batch: Tuple[np.ndarray, List[List[str]]]) -> Dict[str, np.ndarray]:
    correct, groups = batch
    if correct.ndim != 2 or correct.shape != (len(self._model_names), len(groups)):
      raise PairedAccuracyError(f"PairedAccuracy: a batch's outcomes have shape {correct.shape}, "
                                f"expected ({len(self._model_names)}, {len(groups)})")
    codes = (correct.astype(np.int64) * self._weights).sum(axis=0)
    size = 1 << len(self._model_names)
    for code, names in zip(codes, groups):
      for name in names:
        if name not in accumulator:
          accumulator[name] = np.zeros(size, np.int64)
        accumulator[name][code] += 1
    return accumulator

  def merge_accumulators(self, accumulators) -> Dict[str, np.ndarray]:
    result = self.create_accumulator()
    for accumulator in accumulators:
      for name, counts in accumulator.items():
        result[name] = result.get(name, 0) + counts
    return result

  def extract_output(self, accumulator: Dict[str, np.ndarray]
                     ) -> Dict[metric_types.MetricKey, float]:
    overall = sum((counts for name, counts in accumulator.items()
                   if name.startswith(f"{CLASS}=")),
                  np.zeros(1 << len(self._model_names), np.int64))
    n = int(overall.sum())
    codes = np.arange(overall.size)
    output = {}
    for i, model in enumerate(self._model_names):
      right = int(overall[(codes >> i) & 1 == 1].sum())
      output[metric_types.MetricKey(EXAMPLE_COUNT, model_name=model)] = float(n)
      output[metric_types.MetricKey(self._accuracy_name, model_name=model)] = (
          right / n if n else float("nan"))
    if len(self._model_names) > 1:
      first = self._model_names[0]
      for code, count in enumerate(overall):
        pattern = [(code >> i) & 1 for i in range(len(self._model_names))]
        output[metric_types.MetricKey(pattern_name(self._model_names, pattern),
                                      model_name=first)] = float(count)
        for group, counts in accumulator.items():
          if counts[code]:
            output[metric_types.MetricKey(group_pattern_name(group, self._model_names, pattern),
                                          model_name=first)] = float(counts[code])
    return output


def _paired_accuracy(name: str = "paired_accuracy", head: str = heads.MULTICLASS,
                     slicing_specs: Optional[List[Dict[str, Any]]] = None,
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
      keys=keys, preprocessors=[_CorrectPreprocessor(models, head, slicing_specs or ())],
      combiner=_PatternCombiner(models, accuracy_name))]


class PairedAccuracy(metric_types.Metric):
  """Per model `example_count` and the head's accuracy, plus the paired outcome patterns,
  computed over batched extracts (see the module docstring)."""

  def __init__(self, name: str = "paired_accuracy", head: str = heads.MULTICLASS,
               slicing_specs: Optional[List[Dict[str, Any]]] = None):
    super().__init__(_paired_accuracy, name=name, head=head, slicing_specs=slicing_specs)

  @property
  def compute_confidence_interval(self) -> bool:
    return False


metric_types.register_metric(PairedAccuracy)


def patterns_from_metrics(metrics: Dict[str, float]) -> Optional[Dict[str, Any]]:
  """The paired outcomes ({"models": [...], "patterns": [[[0/1...], n], ...], "classes":
  {label: patterns}, "slices": {slice name: patterns}}, the content of
  `paired_outcomes.json`) from one model's overall metrics; None when there are none."""
  models, patterns, groups = None, [], {CLASS: {}, SLICE: {}}
  for name, value in metrics.items():
    by_group = parse_group_pattern(name)
    parsed = parse_pattern(name) if by_group is None else by_group[1:]
    if parsed is None:
      continue
    if models is not None and parsed[0] != models:
      raise ValueError(f"paired outcome patterns over different models: {models} and "
                       f"{parsed[0]}")
    models = parsed[0]
    if int(round(value)):  # as the per-example path lists them: the patterns seen
      entry = [list(parsed[1]), int(round(value))]
      if by_group is None:
        patterns.append(entry)
      else:
        kind, group = by_group[0].split("=", 1)
        groups[kind].setdefault(group, []).append(entry)
  if models is None:
    return None
  classes = sorted(groups[CLASS].items(), key=lambda item: int(item[0]))
  outcomes = {"models": list(models), "patterns": sorted(patterns),
              "classes": {label: sorted(p) for label, p in classes}}
  if groups[SLICE]:
    outcomes["slices"] = {name: sorted(p) for name, p in sorted(groups[SLICE].items())}
  return outcomes


class PairedErrorError(ValueError):
  """A configuration PairedError cannot compute, naming what to change."""


class _ResidualPreprocessor(metric_types.Preprocessor):
  """A batched extract -> its (models x examples) per-example errors (|e| or e^2)."""

  def __init__(self, model_names: Sequence[str], metric: str):
    super().__init__(name=f"_paired_error_preprocessor:{metric}:{','.join(model_names)}")
    self._model_names = list(model_names)
    self._metric = metric

  def process(self, extracts) -> Iterator[np.ndarray]:
    labels, predictions = _labels_and_predictions(extracts, self._model_names,
                                                  "PairedError", PairedErrorError)
    rows = []
    for i, scores in enumerate(predictions):
      if isinstance(scores, dict):
        raise PairedErrorError(f"PairedError: model {self._model_names[i]!r} has several "
                               f"outputs {sorted(scores)}; it needs a single-output model")
      truth = np.asarray(labels[i], np.float64).reshape(-1)
      scores = np.asarray(scores, np.float64).reshape(truth.size, -1)
      if scores.shape[1] != 1:
        raise PairedErrorError(f"PairedError: model {self._model_names[i]!r} outputs "
                               f"{scores.shape[1]} values per example; a regression head "
                               "outputs one")
      residual = truth - scores[:, 0]
      rows.append(np.abs(residual) if self._metric == stats.MAE else residual ** 2)
    if len({r.shape[0] for r in rows}) > 1:
      raise PairedErrorError("PairedError needs batched extracts (one array per batch); "
                             f"got batches of sizes {[r.shape[0] for r in rows]}")
    yield np.stack(rows)


class _ErrorSumsCombiner(beam.CombineFn):
  """Sums per-example errors, their squares, and the first model's errors times each other's."""

  def __init__(self, model_names: Sequence[str], metric: str):
    self._model_names = list(model_names)
    self._metric = metric

  def create_accumulator(self) -> np.ndarray:
    # Rows: count, sum a, sum a^2, sum a * a_first; one column per model.
    return np.zeros((4, len(self._model_names)), np.float64)

  def add_input(self, accumulator: np.ndarray, errors: np.ndarray) -> np.ndarray:
    if errors.ndim != 2 or errors.shape[0] != len(self._model_names):
      raise PairedErrorError(f"PairedError: a batch's errors have shape {errors.shape}, "
                             f"expected ({len(self._model_names)}, examples)")
    accumulator[0] += errors.shape[1]
    accumulator[1] += errors.sum(axis=1)
    accumulator[2] += (errors ** 2).sum(axis=1)
    accumulator[3] += (errors * errors[0]).sum(axis=1)
    return accumulator

  def merge_accumulators(self, accumulators) -> np.ndarray:
    result = self.create_accumulator()
    for accumulator in accumulators:
      result += accumulator
    return result

  def extract_output(self, accumulator: np.ndarray) -> Dict[metric_types.MetricKey, float]:
    output = {}
    n = int(accumulator[0, 0])
    first = self._model_names[0]
    for i, model in enumerate(self._model_names):
      mean = accumulator[1, i] / n if n else float("nan")
      output[metric_types.MetricKey(EXAMPLE_COUNT, model_name=model)] = float(n)
      output[metric_types.MetricKey(ERROR_NAMES[self._metric], model_name=model)] = (
          mean if self._metric == stats.MAE else float(np.sqrt(mean)))
      if i:
        sums = (accumulator[1, i], accumulator[2, i], accumulator[1, 0], accumulator[2, 0],
                accumulator[3, i])
        for field, value in zip(ERROR_SUMS, sums):
          output[metric_types.MetricKey(f"{ERRORS_PREFIX}{model}:{field}",
                                        model_name=first)] = float(value)
    return output


def _paired_error(name: str = "paired_error", metric: str = stats.MAE,
                  model_names: Optional[List[str]] = None,
                  output_names: Optional[List[str]] = None,
                  sub_keys: Optional[List[Any]] = None, example_weighted: bool = False,
                  query_key: str = "") -> metric_types.MetricComputations:
  del name  # the outputs take TFMA's names (example_count, the error metric's)
  if metric not in ERROR_NAMES:
    raise PairedErrorError(f"PairedError's metric must be one of {sorted(ERROR_NAMES)}, "
                           f"got {metric!r}")
  if [o for o in output_names or [] if o] or [k for k in sub_keys or [] if k is not None]:
    raise PairedErrorError("PairedError takes single-output models without sub_keys")
  if example_weighted or query_key:
    raise PairedErrorError("PairedError is unweighted and takes no query_key")
  models = list(model_names or [""])
  keys = [metric_types.MetricKey(k, model_name=m) for m in models
          for k in (EXAMPLE_COUNT, ERROR_NAMES[metric])]
  return [metric_types.MetricComputation(
      keys=keys, preprocessors=[_ResidualPreprocessor(models, metric)],
      combiner=_ErrorSumsCombiner(models, metric))]


class PairedError(metric_types.Metric):
  """Per model `example_count` and the error metric (MAE or RMSE), plus the sums of the paired
  per-example errors of each model against the first (see the module docstring)."""

  def __init__(self, name: str = "paired_error", metric: str = stats.MAE):
    super().__init__(_paired_error, name=name, metric=metric)

  @property
  def compute_confidence_interval(self) -> bool:
    return False


metric_types.register_metric(PairedError)


def paired_errors_from_metrics(metrics: Dict[str, float], metric: str,
                               baseline: str) -> Optional[stats.PairedErrors]:
  """`baseline` against the candidate (the first model) from the candidate's overall metrics;
  None when the evaluation has no such sums."""
  prefix = f"{ERRORS_PREFIX}{baseline}:"
  sums = {name[len(prefix):]: value for name, value in metrics.items()
          if name.startswith(prefix)}
  if set(sums) != set(ERROR_SUMS):
    return None
  n = metrics.get(EXAMPLE_COUNT)
  if n is None:
    return None
  return stats.PairedErrors(metric, int(round(n)), **{k: float(v) for k, v in sums.items()})
