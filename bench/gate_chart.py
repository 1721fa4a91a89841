"""The gate's operating characteristic: `python -m bench.gate_chart` writes
docs/gate_operating_characteristic.png and prints the README's table of the smallest budget
each eval size can confirm.

P(bless) is exact, not sampled: for a candidate that loses p_b and gains p_c of the
examples (multinomial paired outcomes), the sum of the probabilities of the counts (b, c)
the `confident` decision blesses (`stats.compare`'s interval), as in
tests/components/test_stats_simulation.py.
"""
import os

import numpy as np
from scipy import stats as scipy_stats

from tfx_bonsai.components.common import stats

CHART = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                     "gate_operating_characteristic.png")
SIZES = (360, 1000, 5000)
BUDGETS = (0.01, 0.02)
GAINED = 0.005    # the candidate is right where the baseline is wrong on 0.5 % of examples
TABLE_SIZES = (100, 300, 360, 1000, 2000, 5000, 10000)
DISCORDANCES = (0.02, 0.05)   # equal accuracies, this share of examples disagreeing


def _within(b, c, n, budget):
  counts = stats.PairedCounts(n=n, both=0, baseline_only=b, candidate_only=c)
  return stats.classify(*stats.drop_interval(counts), budget) == stats.WITHIN


def bless_probability(n, p_b, p_c, budget, tail=1e-10):
  """P(the confident decision blesses) when the candidate loses p_b and gains p_c."""
  cs = (range(int(scipy_stats.binom.ppf(tail, n, p_c)),
              int(scipy_stats.binom.isf(tail, n, p_c)) + 1) if p_c > 0 else range(1))
  total, b = 0.0, 0
  for c in cs:
    b = min(b, n - c)
    while b + 1 <= n - c and _within(b + 1, c, n, budget):
      b += 1
    while b >= 0 and not _within(b, c, n, budget):
      b -= 1
    if b >= 0:
      weight = scipy_stats.binom.pmf(c, n, p_c) if p_c > 0 else 1.0
      total += weight * scipy_stats.binom.cdf(b, n - c, p_b / (1 - p_c))
  return total


def smallest_budget(n, discordance):
  """The upper end of the interval at the expected counts of equal models (b = c = n d / 2):
  the smallest budget such an eval split confirms when the counts come out as expected."""
  half = n * discordance / 2
  return stats.tango_interval(half, half, n)[1]


def table() -> str:
  rows = ["| eval examples | perfect match (b = c = 0) | "
          + " | ".join(f"equal accuracy, {100 * d:.0f} % discordant" for d in DISCORDANCES)
          + " |", "|---" * (2 + len(DISCORDANCES)) + "|"]
  for n in TABLE_SIZES:
    cells = [smallest_budget(n, 0.0)] + [smallest_budget(n, d) for d in DISCORDANCES]
    rows.append(f"| {n:,} | " + " | ".join(f"{100 * x:.2f} pp" for x in cells) + " |")
  return "\n".join(rows)


def chart(path: str = CHART) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  figure, axes = pyplot.subplots(1, len(BUDGETS), figsize=(11, 4), sharey=True)
  for ax, budget in zip(axes, BUDGETS):
    drops = np.linspace(-0.005, budget + 0.02, 61)
    for n in SIZES:
      ax.plot(100 * drops, [bless_probability(n, GAINED + d, GAINED, budget) for d in drops],
              label=f"n = {n:,}")
    ax.axvline(100 * budget, color="grey", linestyle="--", linewidth=1)
    ax.axhline((1 - stats.DEFAULT_CONFIDENCE) / 2, color="red", linestyle=":", linewidth=1)
    ax.set_title(f"budget {100 * budget:.0f} pp")
    ax.set_xlabel("true accuracy drop (pp)")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("P(gate blesses)")
  axes[0].legend()
  figure.suptitle(f"`confident` gate: P(bless) against the true drop (candidate also right "
                  f"where the baseline is wrong on {100 * GAINED:.1f} % of examples); "
                  "red: 2.5 %", fontsize=9)
  figure.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  figure.savefig(path, dpi=110)


def main():
  chart()
  print(f"wrote {CHART}")
  print(table())


if __name__ == "__main__":
  main()
