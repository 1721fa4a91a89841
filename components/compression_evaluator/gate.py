"""The compression gate: bless a compressed model only when every measured check passes.

Nothing here knows about TFX or TFMA. `decide` takes the measured figures as a dict
keyed by the constants below and returns a `Verdict`. A figure a check needs that is
missing or NaN fails that check, and the verdict gives the reason "metric X could not
be computed (needed by ...)": the gate never passes silently.
"""
import dataclasses
import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common import stats
from tfx_bonsai.components.compression_evaluator import settings

# Keys of the `measured` dict.
CANDIDATE_ACCURACY = "candidate_accuracy"
DENSE_ACCURACY = "dense_accuracy"
# Present (even as None/NaN) only when a production model exists.
PRODUCTION_ACCURACY = "production_accuracy"
DENSE_TFLITE_BYTES = "dense_tflite_bytes"
CANDIDATE_BYTES = "candidate_bytes"
CANDIDATE_GZIP_BYTES = "candidate_gzip_bytes"
# True/False: the SparsityValidator's blessing; None or absent: no sparsity input.
SPARSITY_PASSED = "sparsity_passed"
# The candidate's batch-1 latency / the dense float TFLite's (TFLiteConverter's property).
LATENCY_RATIO = "latency_ratio"
# Regression heads: the error metric (MAE or RMSE, GateConfig.metric) instead of accuracy.
CANDIDATE_ERROR = "candidate_error"
DENSE_ERROR = "dense_error"
PRODUCTION_ERROR = "production_error"  # present only when a production model exists
ACCURACY = "accuracy"
ERROR_METRICS = ("mae", "rmse")
# Paired outcomes on the same examples (stats.PairedCounts.to_dict()): dense (or production)
# as the baseline, the candidate as the candidate. Needed by the `confident` decision.
DENSE_PAIRED_COUNTS = "dense_paired_counts"
PRODUCTION_PAIRED_COUNTS = "production_paired_counts"
# {class label: stats.PairedCounts.to_dict()}: dense against the candidate on each class's
# examples. Needed by the class_drop check.
DENSE_CLASS_PAIRED_COUNTS = "dense_class_paired_counts"
# {slice name: counts}: the same on each slice of the `slicing_specs` setting.
DENSE_SLICE_PAIRED_COUNTS = "dense_slice_paired_counts"
# Regression heads: the paired per-example errors' sums (stats.PairedErrors.to_dict()).
DENSE_PAIRED_ERRORS = "dense_paired_errors"
PRODUCTION_PAIRED_ERRORS = "production_paired_errors"
# True/False: the dense model's own ModelBlessing (a TFX Evaluator upstream); None or absent: none.
DENSE_BLESSED = "dense_blessed"

# Check names.
ACCURACY_DROP = "accuracy_drop"
RELATIVE_ACCURACY_DROP = "relative_accuracy_drop"
PRODUCTION_DROP = "production_drop"
COMPRESSION_RATIO = "compression_ratio"
SPARSITY = "sparsity"
METRIC_INCREASE = "metric_increase"          # candidate error - dense error
PRODUCTION_INCREASE = "production_increase"  # candidate error - production error
MIN_ACCURACY = "min_accuracy"
CLASS_DROP = "class_drop"      # no class or slice confidently over max_class_drop (Holm)
DENSE_BLESSING = "dense_blessing"
# LATENCY_RATIO (above) names its check too.

# How the accuracy drops are decided (the accuracy_decision setting).
POINT, CONFIDENT = settings_lib.POINT, settings_lib.CONFIDENT
ACCURACY_DECISIONS = settings_lib.ACCURACY_DECISIONS

# Slack on every comparison so that a figure exactly at its threshold passes
# despite float rounding (e.g. 0.95 - 0.94 > 0.01 in binary floating point).
_EPSILON = 1e-9


# The gate's thresholds are the component's settings (one definition of names, defaults, rules).
GateConfig = settings.CompressionEvaluatorSettings


@dataclasses.dataclass(frozen=True)
class Check:
  """One comparison: `measured` against `threshold` (`<=` or `>=`); measured None if unknown."""
  name: str
  measured: Optional[float]
  threshold: float
  passed: bool
  op: str = "<="
  missing: Tuple[str, ...] = ()  # the metrics that could not be computed
  digits: int = 3
  paired: Optional[stats.PairedComparison] = None   # drops measured on paired examples
  decision: str = POINT
  note: str = ""   # class_drop: which class or slice, and the family-wise test's figures

  def describe(self) -> str:
    """E.g. `accuracy_drop 0.003 <= 0.010 ok` or `compression_ratio 8.1 < 10.0`."""
    if self.missing:
      return f"{self.name} not checked: metric {', '.join(self.missing)} could not be computed"
    if self.name == SPARSITY:
      return "sparsity blessed ok" if self.passed else "sparsity NOT_BLESSED by SparsityValidator"
    if self.name == DENSE_BLESSING:
      return ("dense model blessed by its Evaluator ok" if self.passed
              else "dense model NOT blessed by its Evaluator")
    if self.name == CLASS_DROP:
      return self._describe_class()
    if self.paired is not None:
      return self._describe_paired()
    failed_op = {"<=": ">", ">=": "<"}[self.op]
    text = (f"{self.name} {self.measured:.{self.digits}f} "
            f"{self.op if self.passed else failed_op} {self.threshold:.{self.digits}f}")
    return text + " ok" if self.passed else text

  def _describe_class(self) -> str:
    budget = f"{100 * self.threshold:.2f} pp"
    if self.passed:
      return f"{self.name} no class or slice confidently over {budget} ({self.note}) ok"
    return f"{self.name}: {self.note} is confidently over its {budget} budget"

  def _describe_paired(self) -> str:
    p = self.paired
    budget = (f"{self.threshold:.4f}" if isinstance(p.counts, stats.PairedErrors)
              else f"{100 * self.threshold:.2f} pp")
    needed = (f"about {p.needed:,} examples would decide" if p.needed is not None
              else "no sample size would decide at these rates")
    if p.position == stats.UNDECIDED and self.decision == CONFIDENT:
      return (f"{self.name}: too few examples to decide at a {budget} budget: "
              f"{p.describe()}; {needed}")
    text = f"{self.name} {p.describe()} {'<=' if self.passed else '>'} {budget}"
    if p.position == stats.UNDECIDED:
      text += f" (point decision; the interval straddles the budget: {needed})"
    return text + " ok" if self.passed else text

  def to_dict(self) -> Dict[str, Any]:
    data = {"name": self.name, "measured": self.measured, "threshold": self.threshold,
            "passed": self.passed}
    if self.note:
      data["note"] = self.note
    if self.paired is not None:
      data.update(decision=self.decision, **{k: v for k, v in self.paired.to_dict().items()
                                             if k != "budget"})
    return data


@dataclasses.dataclass(frozen=True)
class Verdict:
  """The gate's decision: `blessed` only when every check passed and nothing failed."""
  blessed: bool
  checks: Tuple[Check, ...]
  reasons: Tuple[str, ...]
  measured: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def summary_line(self) -> str:
    """One line: the verdict, failures first, then the passed checks."""
    head = "BLESSED" if self.blessed else "NOT BLESSED"
    passed = [c.describe() for c in self.checks if c.passed]
    return f"{head}: " + "; ".join(list(self.reasons) + passed)

  def to_dict(self) -> Dict[str, Any]:
    return {"blessed": self.blessed, "checks": [c.to_dict() for c in self.checks],
            "reasons": list(self.reasons),
            "measured": {k: None if isinstance(v, float) and math.isnan(v) else v
                         for k, v in self.measured.items()},
            "summary": self.summary_line()}


def _value(measured: Mapping[str, Any], key: str) -> Optional[float]:
  """The figure as a float, or None when it is missing, not a number or NaN."""
  value = measured.get(key)
  if value is None or isinstance(value, bool):
    return None
  try:
    value = float(value)
  except (TypeError, ValueError):
    return None
  return None if math.isnan(value) else value


def _compare(name: str, measured: float, threshold: float, op: str, digits: int = 3) -> Check:
  passed = (measured <= threshold + _EPSILON) if op == "<=" else (
      measured >= threshold - _EPSILON)
  return Check(name, measured, threshold, passed, op, digits=digits)


def _missing(name: str, threshold: float, metrics: Tuple[str, ...], op: str = "<=") -> Check:
  return Check(name, None, threshold, False, op, missing=metrics)


def _paired(measured: Mapping[str, Any], key: str, kind=stats.PairedCounts,
            smallest: int = 1) -> Optional[stats.Paired]:
  """The paired counts (or errors) under `key`, or None when absent, malformed or over fewer
  than `smallest` examples."""
  data = measured.get(key)
  if not isinstance(data, Mapping):
    return None
  try:
    paired = kind.from_dict(data)
  except (KeyError, TypeError, ValueError):
    return None
  return paired if paired.n >= smallest else None


def _drop_check(name: str, measured: Mapping[str, Any], baseline_key: str, paired_key: str,
                config: GateConfig) -> Check:
  """baseline - candidate accuracy against the budget, decided as `config.accuracy_decision`.

  With paired counts the drop, its interval and n come from them; `point` decides on the
  drop, `confident` on the interval's upper end. Without them `point` compares the two
  accuracies, and `confident` cannot decide (a missing metric).
  """
  budget = config.max_accuracy_drop
  missing = _all_missing(measured, CANDIDATE_ACCURACY, baseline_key)
  counts = _paired(measured, paired_key)
  if missing:
    return _missing(name, budget, missing)
  if counts is None:
    if config.accuracy_decision == CONFIDENT:
      return _missing(name, budget, (paired_key,))
    drop = _value(measured, baseline_key) - _value(measured, CANDIDATE_ACCURACY)
    return _compare(name, drop, budget, "<=")
  comparison = stats.compare(counts, budget)
  return Check(name, comparison.drop, budget, comparison.passes(config.accuracy_decision), "<=",
               paired=comparison, decision=config.accuracy_decision)


def _groups(measured: Mapping[str, Any], key: str,
            kind: str) -> Optional[Dict[str, stats.PairedCounts]]:
  """{"class 3" or "slice color=red": counts} under `key`; None when absent or malformed."""
  data = measured.get(key)
  if not isinstance(data, Mapping) or not data:
    return None
  groups = {f"{kind} {name}": _paired({"counts": counts}, "counts")
            for name, counts in data.items()}
  return None if any(c is None for c in groups.values()) else groups


def _class_check(measured: Mapping[str, Any], config: GateConfig) -> Check:
  """Refuses when some class (or slice of `config.slicing_specs`) is confidently over
  `max_class_drop`: each group's one-sided score test against the budget, Holm-adjusted
  across all of them at the interval's one-sided level."""
  budget = config.max_class_drop
  groups = _groups(measured, DENSE_CLASS_PAIRED_COUNTS, "class")
  if groups is None:
    return _missing(CLASS_DROP, budget, (DENSE_CLASS_PAIRED_COUNTS,))
  if config.slicing_specs:
    slices = _groups(measured, DENSE_SLICE_PAIRED_COUNTS, "slice")
    if slices is None:
      return _missing(CLASS_DROP, budget, (DENSE_SLICE_PAIRED_COUNTS,))
    groups.update(slices)
  adjusted = stats.holm_adjusted({name: stats.p_over(counts, budget)
                                  for name, counts in groups.items()})
  worst = min(adjusted, key=lambda name: (adjusted[name], -groups[name].drop))
  comparison = stats.compare(groups[worst], budget)
  alpha = (1 - comparison.confidence) / 2
  passed = adjusted[worst] > alpha
  slices = len(groups) - len(measured[DENSE_CLASS_PAIRED_COUNTS])
  family = f"{len(groups) - slices} classes" + (f" and {slices} slices" if slices else "")
  note = (f"{'worst ' if passed else ''}{worst}: {comparison.describe()}, Holm-adjusted "
          f"p={adjusted[worst]:.2g} across {family}")
  return Check(CLASS_DROP, comparison.drop, budget, passed, "<=", paired=comparison,
               decision=CONFIDENT, note=note)


def _all_missing(measured: Mapping[str, Any], *keys: str) -> Tuple[str, ...]:
  return tuple(k for k in keys if _value(measured, k) is None)


def _missing_reasons(checks: Sequence[Check]) -> Tuple[str, ...]:
  """One reason per metric that could not be computed, naming the checks that needed it."""
  needed_by: Dict[str, list] = {}
  for check in checks:
    for metric in check.missing:
      needed_by.setdefault(metric, []).append(check.name)
  return tuple(f"metric {metric} could not be computed (needed by {', '.join(names)})"
               for metric, names in needed_by.items())


def _accuracy_checks(measured: Mapping[str, Any], config: GateConfig) -> list:
  """Classifier heads: accuracy_drop and production_drop (when a production model exists),
  decided as `config.accuracy_decision` on paired outcomes; min_accuracy and
  relative_accuracy_drop when on."""
  checks = []
  missing = _all_missing(measured, CANDIDATE_ACCURACY, DENSE_ACCURACY)
  checks.append(_drop_check(ACCURACY_DROP, measured, DENSE_ACCURACY, DENSE_PAIRED_COUNTS, config))

  if config.min_accuracy > 0:
    if _value(measured, CANDIDATE_ACCURACY) is None:
      checks.append(_missing(MIN_ACCURACY, config.min_accuracy, (CANDIDATE_ACCURACY,), ">="))
    else:
      checks.append(_compare(MIN_ACCURACY, _value(measured, CANDIDATE_ACCURACY),
                             config.min_accuracy, ">="))

  if config.max_relative_accuracy_drop > 0:
    dense = _value(measured, DENSE_ACCURACY)
    if missing:
      checks.append(_missing(RELATIVE_ACCURACY_DROP, config.max_relative_accuracy_drop, missing))
    elif dense <= 0:
      checks.append(_missing(RELATIVE_ACCURACY_DROP, config.max_relative_accuracy_drop,
                             (f"{RELATIVE_ACCURACY_DROP} (dense_accuracy is {dense})",)))
    else:
      relative = (dense - _value(measured, CANDIDATE_ACCURACY)) / dense
      checks.append(_compare(RELATIVE_ACCURACY_DROP, relative,
                             config.max_relative_accuracy_drop, "<="))

  if PRODUCTION_ACCURACY in measured:
    checks.append(_drop_check(PRODUCTION_DROP, measured, PRODUCTION_ACCURACY,
                              PRODUCTION_PAIRED_COUNTS, config))
  if config.max_class_drop > 0:
    checks.append(_class_check(measured, config))
  return checks


def _error_checks(measured: Mapping[str, Any], config: GateConfig) -> list:
  """metric_increase, and production_increase when a production model exists (regression
  heads), decided as `config.accuracy_decision` on the paired per-example errors: `confident`
  on the upper end of the paired t interval (without the paired errors it cannot decide),
  `point` on the point increase."""
  checks = []
  budget = config.max_metric_increase
  baselines = [(METRIC_INCREASE, DENSE_ERROR, DENSE_PAIRED_ERRORS)]
  if PRODUCTION_ERROR in measured:
    baselines.append((PRODUCTION_INCREASE, PRODUCTION_ERROR, PRODUCTION_PAIRED_ERRORS))
  for name, baseline, paired_key in baselines:
    missing = _all_missing(measured, CANDIDATE_ERROR, baseline)
    paired = _paired(measured, paired_key, stats.PairedErrors, smallest=2)
    if missing:
      checks.append(_missing(name, budget, missing))
    elif paired is not None:
      comparison = stats.compare(paired, budget)
      checks.append(Check(name, comparison.drop, budget,
                          comparison.passes(config.accuracy_decision), "<=", digits=4,
                          paired=comparison, decision=config.accuracy_decision))
    elif config.accuracy_decision == CONFIDENT:
      checks.append(_missing(name, budget, (paired_key,)))
    else:
      increase = _value(measured, CANDIDATE_ERROR) - _value(measured, baseline)
      checks.append(_compare(name, increase, budget, "<=", 4))
  return checks


def decide(measured: Mapping[str, Any], config: GateConfig,
           errors: Sequence[str] = ()) -> Verdict:
  """Runs every enabled check on `measured` and returns the Verdict.

  `errors` are failures found before measuring (e.g. "evaluation failed: ..."); any
  makes the verdict NOT blessed and is listed first among the reasons.
  """
  config.validate()
  checks = (_error_checks(measured, config) if config.metric in ERROR_METRICS
            else _accuracy_checks(measured, config))

  missing_size = _all_missing(measured, DENSE_TFLITE_BYTES, CANDIDATE_GZIP_BYTES)
  if not missing_size and _value(measured, CANDIDATE_GZIP_BYTES) <= 0:
    missing_size = (f"{CANDIDATE_GZIP_BYTES} (got {measured[CANDIDATE_GZIP_BYTES]})",)
  if missing_size:
    checks.append(_missing(COMPRESSION_RATIO, config.min_compression_ratio, missing_size, ">="))
  else:
    ratio = _value(measured, DENSE_TFLITE_BYTES) / _value(measured, CANDIDATE_GZIP_BYTES)
    checks.append(_compare(COMPRESSION_RATIO, ratio, config.min_compression_ratio, ">=", 1))

  if config.max_latency_ratio > 0:
    missing_latency = _all_missing(measured, LATENCY_RATIO)
    if not missing_latency and _value(measured, LATENCY_RATIO) <= 0:
      missing_latency = (f"{LATENCY_RATIO} (got {measured[LATENCY_RATIO]})",)
    if missing_latency:
      checks.append(_missing(LATENCY_RATIO, config.max_latency_ratio, missing_latency))
    else:
      checks.append(_compare(LATENCY_RATIO, _value(measured, LATENCY_RATIO),
                             config.max_latency_ratio, "<=", 2))

  sparsity = measured.get(SPARSITY_PASSED)
  if sparsity is not None:
    checks.append(Check(SPARSITY, 1.0 if sparsity else 0.0, 1.0, bool(sparsity), ">="))

  dense_blessed = measured.get(DENSE_BLESSED)
  if dense_blessed is not None:
    checks.append(Check(DENSE_BLESSING, 1.0 if dense_blessed else 0.0, 1.0, bool(dense_blessed),
                        ">="))

  reasons = (tuple(errors) + _missing_reasons(checks)
             + tuple(c.describe() for c in checks if not c.passed and not c.missing))
  return Verdict(blessed=not reasons, checks=tuple(checks), reasons=reasons,
                 measured=dict(measured))
