"""Paired comparisons of a candidate with a baseline on the same examples: numpy and scipy only.

Classifier heads: the two models' outcomes form a 2x2 table of (baseline right?, candidate
right?); `b` examples only the baseline gets right, `c` only the candidate, and the accuracy
drop is (b - c) / n. Its interval is Tango's (1998) asymptotic score interval for a
difference of paired proportions, with a half-unit continuity correction. It is
unconditional: the number of discordant pairs is random, not taken as known, so a perfect
match (b = c = 0) on 360 examples still leaves 1.32 pp of doubt. Without the correction the
score test's size reaches 2.9 % at n = 60 for a nominal 2.5 %; with it, it stays at or below
2.5 % (tests/components/test_stats_simulation.py).

Regression heads: each model's per-example error (|e| for MAE, e^2 for RMSE); the interval on
the increase of the error metric is a paired t interval on the per-example differences (MAE),
or on their delta-method linearization (RMSE, the square root of a mean).

The decision is a non-inferiority test: WITHIN when the interval's upper end (a one-sided
97.5 % bound for a 95 % interval) is within the budget.
"""
import dataclasses
import math
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from tfx_bonsai.components.common import settings as settings_lib

DEFAULT_CONFIDENCE = 0.95
# Half a unit of b - c: the score statistic's continuity correction.
CONTINUITY_CORRECTION = 0.5
# The largest sample size `examples_needed` reports; beyond it the answer is "more than".
MAX_EXAMPLES_NEEDED = 10_000_000
ERROR_METRICS = settings_lib.ERROR_METRICS
MAE, RMSE = ERROR_METRICS

WITHIN = "within"        # the whole interval is within the budget
OVER = "over"            # the whole interval is over the budget
UNDECIDED = "undecided"  # the interval contains the budget: too few examples to decide

# Slack so that a figure exactly at its threshold passes despite float rounding.
_EPSILON = 1e-9
# The score statistic's variance vanishes at a difference of +-1; the roots are searched inside.
_EDGE = 1e-12


@dataclasses.dataclass(frozen=True)
class PairedCounts:
  """Outcomes of a baseline and a candidate model on the same `n` examples.

  baseline_only: examples only the baseline classifies correctly (b);
  candidate_only: examples only the candidate classifies correctly (c);
  both: examples both classify correctly.
  """
  n: int
  both: int
  baseline_only: int
  candidate_only: int

  def __post_init__(self):
    for name in ("n", "both", "baseline_only", "candidate_only"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if self.both + self.baseline_only + self.candidate_only > self.n:
      raise ValueError(f"both + baseline_only + candidate_only must be <= n, got "
                       f"{self.both} + {self.baseline_only} + {self.candidate_only} > {self.n}")

  @classmethod
  def from_outcomes(cls, baseline_correct: np.ndarray,
                    candidate_correct: np.ndarray) -> "PairedCounts":
    """The table of two boolean arrays (is each example right?) over the same examples."""
    baseline_correct = np.asarray(baseline_correct, bool)
    candidate_correct = np.asarray(candidate_correct, bool)
    if baseline_correct.shape != candidate_correct.shape:
      raise ValueError(f"paired outcomes differ in shape: {baseline_correct.shape} vs "
                       f"{candidate_correct.shape}")
    return cls(n=int(baseline_correct.size),
               both=int(np.sum(baseline_correct & candidate_correct)),
               baseline_only=int(np.sum(baseline_correct & ~candidate_correct)),
               candidate_only=int(np.sum(~baseline_correct & candidate_correct)))

  @property
  def discordant(self) -> int:
    return self.baseline_only + self.candidate_only

  @property
  def baseline_accuracy(self) -> float:
    return (self.both + self.baseline_only) / self.n

  @property
  def candidate_accuracy(self) -> float:
    return (self.both + self.candidate_only) / self.n

  @property
  def drop(self) -> float:
    """baseline accuracy - candidate accuracy (positive: the candidate is worse)."""
    return (self.baseline_only - self.candidate_only) / self.n

  def to_dict(self) -> Dict[str, int]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: Dict[str, Any]) -> "PairedCounts":
    return cls(**{f.name: int(data[f.name]) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class PairedErrors:
  """Per-example errors of a baseline and a candidate regression model on the same `n`
  examples, kept as sums (what a Beam combiner can merge).

  metric: MAE (each example's error is |y - f|) or RMSE (e^2; the metric is the root of the
  mean). The sums are of those per-example errors `a`: sum a and sum a^2 per model, and
  `cross_sum` = sum a_baseline * a_candidate.
  """
  metric: str
  n: int
  baseline_sum: float
  baseline_sum_sq: float
  candidate_sum: float
  candidate_sum_sq: float
  cross_sum: float

  def __post_init__(self):
    if self.metric not in ERROR_METRICS:
      raise ValueError(f"metric must be one of {list(ERROR_METRICS)}, got {self.metric!r}")
    if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
      raise ValueError(f"n must be a non-negative integer, got {self.n!r}")
    for field in dataclasses.fields(self)[2:]:
      value = getattr(self, field.name)
      if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{field.name} must be a finite number, got {value!r}")

  @classmethod
  def from_residuals(cls, metric: str, baseline_residuals: np.ndarray,
                     candidate_residuals: np.ndarray) -> "PairedErrors":
    """The sums from each model's residuals (label - prediction) on the same examples."""
    base = np.asarray(baseline_residuals, np.float64).ravel()
    cand = np.asarray(candidate_residuals, np.float64).ravel()
    if base.shape != cand.shape:
      raise ValueError(f"paired residuals differ in length: {base.size} vs {cand.size}")
    base, cand = (np.abs(base), np.abs(cand)) if metric == MAE else (base ** 2, cand ** 2)
    return cls(metric, int(base.size), float(base.sum()), float(np.sum(base ** 2)),
               float(cand.sum()), float(np.sum(cand ** 2)), float(np.sum(base * cand)))

  def _figure(self, total: float) -> float:
    mean = total / self.n
    return mean if self.metric == MAE else math.sqrt(max(mean, 0.0))

  @property
  def baseline_error(self) -> float:
    return self._figure(self.baseline_sum)

  @property
  def candidate_error(self) -> float:
    return self._figure(self.candidate_sum)

  @property
  def drop(self) -> float:
    """candidate error - baseline error (positive: the candidate is worse)."""
    return self.candidate_error - self.baseline_error

  def spread(self) -> float:
    """The standard deviation of one example's contribution to `drop`: of the differences of
    errors (MAE), of their linearization around the two mean squared errors (RMSE)."""
    n = self.n
    if n < 2:
      raise ValueError(f"a paired error interval needs at least 2 examples, got {n}")
    mean_b, mean_c = self.baseline_sum / n, self.candidate_sum / n
    var_b = (self.baseline_sum_sq - n * mean_b ** 2) / (n - 1)
    var_c = (self.candidate_sum_sq - n * mean_c ** 2) / (n - 1)
    cov = (self.cross_sum - n * mean_b * mean_c) / (n - 1)
    if self.metric == MAE:
      w_b = w_c = 1.0
    else:  # d sqrt(m) = dm / (2 sqrt(m)); a model without error contributes nothing
      w_b = 0.5 / math.sqrt(mean_b) if mean_b > 0 else 0.0
      w_c = 0.5 / math.sqrt(mean_c) if mean_c > 0 else 0.0
    return math.sqrt(max(w_c ** 2 * var_c + w_b ** 2 * var_b - 2 * w_b * w_c * cov, 0.0))

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, data: Dict[str, Any]) -> "PairedErrors":
    values = {f.name: data[f.name] for f in dataclasses.fields(cls)}
    values["n"] = int(values["n"])
    return cls(**{k: v if k in ("metric", "n") else float(v) for k, v in values.items()})


Paired = Union[PairedCounts, PairedErrors]


def _z(confidence: float) -> float:
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
  return float(scipy_stats.norm.ppf(1 - (1 - confidence) / 2))


def score_statistic(theta, b, c, n, correction: float = 0.0):
  """Tango's score statistic for H0: drop = theta, (b - c + correction - n theta) / sd(theta).

  The standard deviation is taken at the restricted maximum likelihood estimate of
  P(only the candidate right) under H0 (Tango 1998, a quadratic's root). Accepts numpy arrays.
  """
  theta, b, c = (np.asarray(x, np.float64) for x in (theta, b, c))
  a = 2.0 * n
  bb = -b - c + (2.0 * n - b + c) * theta
  cc = -c * theta * (1.0 - theta)
  p21 = (-bb + np.sqrt(np.maximum(bb * bb - 4.0 * a * cc, 0.0))) / (2.0 * a)
  variance = n * (2.0 * np.maximum(p21, 0.0) + theta * (1.0 - theta))
  numerator = b - c + correction - n * theta
  with np.errstate(divide="ignore", invalid="ignore"):
    z = numerator / np.sqrt(np.maximum(variance, 0.0))
    edge = np.where(numerator == 0, 0.0, np.sign(numerator) * np.inf)
  return np.where(variance > 0, z, edge)


def tango_interval(b: float, c: float, n: float, confidence: float = DEFAULT_CONFIDENCE,
                   correction: float = CONTINUITY_CORRECTION) -> Tuple[float, float]:
  """Tango's score interval on (b - c) / n, each end widened by `correction` units of b - c
  (0: Tango's original); b, c and n may be fractional."""
  z = _z(confidence)
  point = (b - c) / n

  def upper(theta):
    return float(score_statistic(theta, b, c, n, correction)) + z

  def lower(theta):
    return float(score_statistic(theta, b, c, n, -correction)) - z

  top, bottom = 1.0 - _EDGE, -1.0 + _EDGE
  high = 1.0 if upper(top) >= 0 else optimize.brentq(upper, min(point, top), top, xtol=1e-12)
  low = -1.0 if lower(bottom) <= 0 else optimize.brentq(lower, bottom, max(point, bottom),
                                                         xtol=1e-12)
  return float(low), float(high)


def _t_interval(estimate: float, spread: float, n: float,
                confidence: float) -> Tuple[float, float]:
  _z(confidence)   # validates it
  half = float(scipy_stats.t.ppf(1 - (1 - confidence) / 2, n - 1)) * spread / math.sqrt(n)
  return estimate - half, estimate + half


def drop_interval(paired: Paired, confidence: float = DEFAULT_CONFIDENCE) -> Tuple[float, float]:
  """The two-sided interval on the drop: accuracy lost (PairedCounts) or error gained
  (PairedErrors); each end is a one-sided bound at (1 + confidence) / 2."""
  if paired.n <= 0:
    raise ValueError("no examples: the paired interval needs n > 0")
  if isinstance(paired, PairedErrors):
    return _t_interval(paired.drop, paired.spread(), paired.n, confidence)
  return tango_interval(paired.baseline_only, paired.candidate_only, paired.n, confidence)


def p_over(counts: PairedCounts, budget: float) -> float:
  """One-sided p-value against "the drop is at most `budget`": small when the drop is
  confidently over it (the corrected score test that the interval's lower end inverts)."""
  z = score_statistic(budget, counts.baseline_only, counts.candidate_only, counts.n,
                      -CONTINUITY_CORRECTION)
  return float(scipy_stats.norm.sf(z))


def classify(low: float, high: float, budget: float, epsilon: float = _EPSILON) -> str:
  """WITHIN, OVER or UNDECIDED: where the interval [low, high] lies against the budget."""
  if high <= budget + epsilon:
    return WITHIN
  if low > budget + epsilon:
    return OVER
  return UNDECIDED


def _decided_at(paired: Paired, budget: float,
                confidence: float) -> Callable[[float], bool]:
  """Whether the interval would decide at a sample size, if the observed rates held."""
  if isinstance(paired, PairedErrors):
    estimate, spread = paired.drop, paired.spread()
    return lambda size: classify(*_t_interval(estimate, spread, size, confidence),
                                 budget) != UNDECIDED
  rate_b, rate_c = paired.baseline_only / paired.n, paired.candidate_only / paired.n
  return lambda size: classify(*tango_interval(rate_b * size, rate_c * size, size, confidence),
                               budget) != UNDECIDED


def examples_needed(paired: Paired, budget: float,
                    confidence: float = DEFAULT_CONFIDENCE) -> Optional[int]:
  """About how many examples would decide the budget, if the observed rates held.

  Keeps b/n and c/n (or the errors' mean and spread) and grows n until the interval lies
  wholly on the side of the budget its point drop is on. None when it never would (the
  point drop equals the budget) or it would take more than MAX_EXAMPLES_NEEDED.
  """
  if paired.n <= 0:
    raise ValueError("no examples: the paired interval needs n > 0")
  if abs(paired.drop - budget) <= 1e-12:
    return None
  decided = _decided_at(paired, budget, confidence)
  if decided(paired.n):
    return paired.n
  low, high = paired.n, paired.n * 2
  while not decided(high):
    if high > MAX_EXAMPLES_NEEDED:
      return None
    low, high = high, high * 2
  while high - low > max(1, low // 100):   # about: to 1 %
    middle = (low + high) // 2
    low, high = (low, middle) if decided(middle) else (middle, high)
  return int(high)


@dataclasses.dataclass(frozen=True)
class PairedComparison:
  """A candidate against a baseline on the same examples, judged against a drop budget."""
  counts: Paired
  budget: float
  confidence: float
  drop: float
  low: float
  high: float
  position: str                      # WITHIN, OVER or UNDECIDED
  needed: Optional[int]              # examples that would decide, when UNDECIDED

  def passes(self, decision: str) -> bool:
    """The gate's and the search's decision: `confident` blesses when the interval's upper
    end is within the budget (non-inferiority), `point` when the point drop is."""
    if decision == settings_lib.CONFIDENT:
      return self.position == WITHIN
    if decision == settings_lib.POINT:
      return self.drop <= self.budget + _EPSILON
    raise ValueError(f"decision must be one of {list(settings_lib.ACCURACY_DECISIONS)}, "
                     f"got {decision!r}")

  def to_dict(self) -> Dict[str, Any]:
    return {"n": self.counts.n, "drop": self.drop, "ci_low": self.low, "ci_high": self.high,
            "confidence": self.confidence, "budget": self.budget, "position": self.position,
            "examples_needed": self.needed, "counts": self.counts.to_dict()}

  def describe(self) -> str:
    """E.g. `drop +0.56 pp (95% CI -0.83..+1.94 pp, n=360)`, or for an error metric
    `mae increase +0.0120 (95% CI -0.0040..+0.0280, n=360)`."""
    level = f"{100 * self.confidence:.0f}% CI"
    if isinstance(self.counts, PairedErrors):
      return (f"{self.counts.metric} increase {self.drop:+.4f} ({level} "
              f"{self.low:+.4f}..{self.high:+.4f}, n={self.counts.n})")
    return (f"drop {100 * self.drop:+.2f} pp ({level} "
            f"{100 * self.low:+.2f}..{100 * self.high:+.2f} pp, n={self.counts.n})")


def compare(paired: Paired, budget: float,
            confidence: float = DEFAULT_CONFIDENCE) -> PairedComparison:
  """The point drop, its interval, and where it lies against `budget`."""
  limit = 1.0 if isinstance(paired, PairedCounts) else math.inf
  if math.isnan(budget) or not 0.0 <= budget <= limit:
    raise ValueError(f"budget must be in [0, {limit:g}], got {budget!r}")
  low, high = drop_interval(paired, confidence)
  position = classify(low, high, budget)
  needed = examples_needed(paired, budget, confidence) if position == UNDECIDED else None
  return PairedComparison(paired, budget, confidence, paired.drop, low, high, position, needed)


def holm_adjusted(p_values: Dict[str, float]) -> Dict[str, float]:
  """Holm's step-down adjusted p-values: rejecting each hypothesis whose adjusted p-value is
  at most alpha keeps the family-wise error at most alpha."""
  adjusted, running = {}, 0.0
  ordered = sorted(p_values.items(), key=lambda item: item[1])
  for rank, (name, p) in enumerate(ordered):
    running = max(running, min(1.0, (len(ordered) - rank) * p))
    adjusted[name] = running
  return adjusted
