"""The gate's error rates, proven: how often `confident` blesses a candidate truly over budget.

Classifier heads: the false-bless rate is computed exactly, not sampled. The paired outcomes
are multinomial (b baseline-only, c candidate-only, the rest concordant), so P(bless) is the
sum over the counts (b, c) the decision blesses of their multinomial probability: C is
Binomial(n, p_c) and B given C = c is Binomial(n - c, p_b / (1 - p_c)). For each c the
decision blesses b = 0..b*(c) (the upper bound grows with b), found by calling the gate's
own decision. A seeded sampled run cross-checks the sum. Regression heads: seeded Monte Carlo
with residual distributions whose error metrics are known in closed form.
"""
import numpy as np
import pytest
from scipy import stats as scipy_stats

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common import stats

NOMINAL = 0.025     # one-sided: the upper end of the 95% interval
# The drop the candidate truly has: just over the budget.
OVER_BY = 1e-4
# Probability mass of C left out at each end of its binomial (bounded in the assertion).
TAIL = 1e-12


def _blesses(b, c, n, budget):
  counts = stats.PairedCounts(n=n, both=0, baseline_only=b, candidate_only=c)
  return stats.classify(*stats.drop_interval(counts), budget) == stats.WITHIN


def blessed_b(n, budget, cs):
  """{c: the largest b the decision blesses (-1: none)}, walking c upwards."""
  found, b = {}, 0
  for c in map(int, cs):
    b = min(b, n - c)
    while b + 1 <= n - c and _blesses(b + 1, c, n, budget):
      b += 1
    while b >= 0 and not _blesses(b, c, n, budget):
      b -= 1
    found[c] = b
  return found


def bless_probability(n, p_b, p_c, budget):
  """The exact P(bless) (up to 2 * TAIL) of a candidate losing p_b and gaining p_c."""
  if p_c > 0:
    cs = np.arange(int(scipy_stats.binom.ppf(TAIL, n, p_c)),
                   int(scipy_stats.binom.isf(TAIL, n, p_c)) + 1)
  else:
    cs = np.array([0])
  thresholds = blessed_b(n, budget, cs)
  q = p_b / (1 - p_c)
  total = 0.0
  for c in cs:
    weight = scipy_stats.binom.pmf(c, n, p_c) if p_c > 0 else 1.0
    if thresholds[int(c)] >= 0:
      total += weight * scipy_stats.binom.cdf(thresholds[int(c)], n - c, q)
  return total


def _grid():
  for n in (30, 100, 360, 1000, 5000, 10000):
    for budget in (0.005, 0.01, 0.02, 0.05):
      drop = budget + OVER_BY
      for discordance in (drop, 0.02, 0.05, 0.1, 0.2):   # drop itself: p_c = 0
        if discordance >= drop:
          yield n, budget, (discordance + drop) / 2, (discordance - drop) / 2


def test_false_bless_rate_is_at_most_nominal_over_the_grid():
  rates = {(n, budget, round(p_b + p_c, 4)): bless_probability(n, p_b, p_c, budget)
           for n, budget, p_b, p_c in _grid()}
  assert len(rates) >= 100
  worst = max(rates, key=rates.get)
  assert rates[worst] <= NOMINAL + 2 * TAIL, (worst, rates[worst])
  # The grid is not trivially safe: somewhere the rate comes close to the nominal level.
  assert rates[worst] > 0.02


def test_the_old_conditional_rule_would_fail_this_grid():
  """The same computation on the interval the gate used before (conditional on b + c, so
  never above (b + c) / n) exceeds the nominal rate: the test can tell a bad interval."""
  def old_blesses(b, c, n, budget):
    m = b + c
    if m == 0:
      return True
    high = 1.0 if b == m else scipy_stats.beta.ppf(0.975, b + 1, m - b)
    return m / n * (2 * high - 1) <= budget

  n, budget, drop = 360, 0.01, 0.01 + OVER_BY
  p_b, p_c = drop, 0.0
  rate = sum(scipy_stats.binom.pmf(b, n, p_b) for b in range(n + 1)
             if old_blesses(b, 0, n, budget))
  assert rate > 0.2


def test_the_exact_sum_agrees_with_seeded_sampling():
  rng = np.random.default_rng(20)
  n, budget = 360, 0.02
  p_b, p_c = 0.035 + OVER_BY / 2, 0.015 - OVER_BY / 2
  draws = 20_000
  tables = rng.multinomial(n, [p_b, p_c, 1 - p_b - p_c], size=draws)[:, :2]
  pairs, counts = np.unique(tables, axis=0, return_counts=True)
  sampled = sum(k for (b, c), k in zip(pairs, counts) if _blesses(int(b), int(c), n, budget))
  sampled /= draws
  exact = bless_probability(n, p_b, p_c, budget)
  standard_error = np.sqrt(exact * (1 - exact) / draws)
  assert abs(sampled - exact) <= 4 * standard_error + 1e-3


def test_the_gates_decision_is_the_one_simulated():
  n, budget = 1000, 0.01
  thresholds = blessed_b(n, budget, range(0, 30, 7))
  for c, b in thresholds.items():
    counts = stats.PairedCounts(n, 0, b, c)
    assert stats.compare(counts, budget).passes(settings_lib.CONFIDENT)
    assert not stats.compare(stats.PairedCounts(n, 0, b + 1, c),
                             budget).passes(settings_lib.CONFIDENT)


@pytest.mark.parametrize("discordance", [0.0, 0.01, 0.03])
def test_equal_models_on_5000_examples_are_confirmed_within_1pp(discordance):
  rate = (bless_probability(5000, discordance / 2, discordance / 2, 0.01) if discordance
          else float(_blesses(0, 0, 5000, 0.01)))
  assert rate >= 0.95


def _residuals(rng, kind, n, scale, correlation):
  """Baseline residuals, and candidate residuals `scale` times as large in distribution:
  each is the baseline's (with probability `correlation`) or a fresh draw, times `scale`."""
  draw = {"normal": rng.standard_normal, "laplace": rng.laplace}[kind]
  base = draw(size=n)
  fresh = draw(size=n)
  same = rng.random(n) < correlation
  return base, scale * np.where(same, base, fresh)


# The error metric of one unit-scale residual: E|e| and sqrt(E e^2).
_METRIC_OF_UNIT = {("normal", stats.MAE): np.sqrt(2 / np.pi), ("normal", stats.RMSE): 1.0,
                   ("laplace", stats.MAE): 1.0, ("laplace", stats.RMSE): np.sqrt(2.0)}


@pytest.mark.parametrize("kind", ["normal", "laplace"])
@pytest.mark.parametrize("metric, sizes", [(stats.MAE, (30, 100, 360, 1000)),
                                           (stats.RMSE, (100, 360, 1000))])
def test_regression_false_bless_rate_is_at_most_nominal(kind, metric, sizes):
  rng = np.random.default_rng(7)
  draws = 4000
  unit = _METRIC_OF_UNIT[(kind, metric)]
  budget = 0.05 * unit
  scale = 1 + (budget + 1e-6) / unit     # the candidate's metric is scale * unit
  for n in sizes:
    blessed = 0
    for _ in range(draws):
      base, cand = _residuals(rng, kind, n, scale, 0.8)
      interval = stats.drop_interval(stats.PairedErrors.from_residuals(metric, base, cand))
      blessed += stats.classify(*interval, budget) == stats.WITHIN
    rate = blessed / draws
    assert rate <= NOMINAL + 3 * np.sqrt(NOMINAL * (1 - NOMINAL) / draws), (n, rate)


def test_regression_equal_models_on_1000_examples_are_confirmed_within_10_percent():
  rng = np.random.default_rng(8)
  blessed = 0
  for _ in range(500):
    base, cand = _residuals(rng, "normal", 1000, 1.0, 0.8)
    interval = stats.drop_interval(stats.PairedErrors.from_residuals(stats.MAE, base, cand))
    blessed += stats.classify(*interval, 0.1 * np.sqrt(2 / np.pi)) == stats.WITHIN
  assert blessed / 500 >= 0.95
