"""Paired accuracy comparisons with their uncertainty: pure Python and scipy, no TensorFlow.

Two models scored on the same examples form a 2x2 table of (baseline right?, candidate
right?). Only the discordant pairs say anything about the difference: `b` examples the
baseline gets right and the candidate wrong, `c` the other way round. The accuracy drop is
(b - c) / n.

The interval is the exact conditional (McNemar-style) one: given m = b + c discordant
pairs, b is Binomial(m, pi) and the drop is (m / n)(2 pi - 1), so the Clopper-Pearson
interval for pi maps to an interval for the drop. With no discordant pair it is [0, 0]:
the two models agree on every example scored.
"""
import dataclasses
import math
from typing import Any, Dict, Optional, Tuple

from scipy import stats as scipy_stats

DEFAULT_CONFIDENCE = 0.95
# The largest sample size `examples_needed` reports; beyond it the answer is "more than".
MAX_EXAMPLES_NEEDED = 10_000_000

WITHIN = "within"        # the whole interval is within the budget
OVER = "over"            # the whole interval is over the budget
UNDECIDED = "undecided"  # the interval contains the budget: too few examples to decide


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


def clopper_pearson(k: float, m: float, confidence: float = DEFAULT_CONFIDENCE
                    ) -> Tuple[float, float]:
  """Exact (Clopper-Pearson) interval for a binomial proportion, k successes of m.

  Beta quantiles, so `k` and `m` may be fractional (used to project to other sample sizes).
  """
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
  if m <= 0 or not 0.0 <= k <= m:
    raise ValueError(f"need 0 <= k <= m and m > 0, got k={k!r}, m={m!r}")
  alpha = 1.0 - confidence
  low = 0.0 if k <= 0 else float(scipy_stats.beta.ppf(alpha / 2, k, m - k + 1))
  high = 1.0 if k >= m else float(scipy_stats.beta.ppf(1 - alpha / 2, k + 1, m - k))
  return low, high


def _drop_interval(b: float, c: float, n: float, confidence: float) -> Tuple[float, float]:
  m = b + c
  if m <= 0:
    return 0.0, 0.0
  low, high = clopper_pearson(b, m, confidence)
  return m / n * (2 * low - 1), m / n * (2 * high - 1)


def drop_interval(counts: PairedCounts, confidence: float = DEFAULT_CONFIDENCE
                  ) -> Tuple[float, float]:
  """The exact conditional interval on the accuracy drop (baseline - candidate)."""
  if counts.n <= 0:
    raise ValueError("no examples: the paired interval needs n > 0")
  return _drop_interval(counts.baseline_only, counts.candidate_only, counts.n, confidence)


def classify(low: float, high: float, budget: float, epsilon: float = 1e-9) -> str:
  """WITHIN, OVER or UNDECIDED: where the interval [low, high] lies against the budget."""
  if high <= budget + epsilon:
    return WITHIN
  if low > budget + epsilon:
    return OVER
  return UNDECIDED


def examples_needed(counts: PairedCounts, budget: float,
                    confidence: float = DEFAULT_CONFIDENCE) -> Optional[int]:
  """About how many examples would decide the budget, if the observed rates held.

  Keeps b/n and c/n and grows n until the interval lies wholly on the side of the budget
  its point drop is on. None when it never would (the point drop equals the budget, or
  no discordant pair and a zero budget) or it would take more than MAX_EXAMPLES_NEEDED.
  """
  if counts.n <= 0:
    raise ValueError("no examples: the paired interval needs n > 0")
  rate_b, rate_c = counts.baseline_only / counts.n, counts.candidate_only / counts.n
  point = rate_b - rate_c
  if abs(point - budget) <= 1e-12:
    return None

  def decided(size: float) -> bool:
    low, high = _drop_interval(rate_b * size, rate_c * size, size, confidence)
    return classify(low, high, budget) != UNDECIDED

  if decided(counts.n):
    return counts.n
  low, high = counts.n, counts.n * 2
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
  counts: PairedCounts
  budget: float
  confidence: float
  drop: float
  low: float
  high: float
  position: str                      # WITHIN, OVER or UNDECIDED
  needed: Optional[int]              # examples that would decide, when UNDECIDED

  def to_dict(self) -> Dict[str, Any]:
    return {"n": self.counts.n, "drop": self.drop, "ci_low": self.low, "ci_high": self.high,
            "confidence": self.confidence, "budget": self.budget, "position": self.position,
            "examples_needed": self.needed, "counts": self.counts.to_dict()}

  def describe(self) -> str:
    """E.g. `drop +0.56 pp (95% CI -0.83..+1.94 pp, n=360)`."""
    return (f"drop {100 * self.drop:+.2f} pp ({100 * self.confidence:.0f}% CI "
            f"{100 * self.low:+.2f}..{100 * self.high:+.2f} pp, n={self.counts.n})")


def compare(counts: PairedCounts, budget: float,
            confidence: float = DEFAULT_CONFIDENCE) -> PairedComparison:
  """The point drop, its interval, and where it lies against `budget`."""
  if not 0.0 <= budget <= 1.0 or math.isnan(budget):
    raise ValueError(f"budget must be in [0, 1], got {budget!r}")
  low, high = drop_interval(counts, confidence)
  position = classify(low, high, budget)
  needed = examples_needed(counts, budget, confidence) if position == UNDECIDED else None
  return PairedComparison(counts, budget, confidence, counts.drop, low, high, position, needed)
