"""The paired intervals against published values, hand-derived closed forms and a brute-force
inversion of the score test; the decision, Holm, and the sample-size estimate.

None of the expected values comes from the implementation: each is a published figure, a
closed form derived below, or computed here by a different method (a numerical maximum
likelihood and a grid scan instead of Tango's quadratic and root-finding).
"""
import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as scipy_stats

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common import stats

Z975 = 1.959963984540054


def _brute_force_upper(b, c, n, correction, confidence=0.95):
  """The score interval's upper end, by a different route: the restricted MLE of the
  probability of a (candidate-only) pair by numerical maximization of the multinomial
  likelihood, and the bound by a fine grid scan plus bisection on that statistic."""
  z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2)
  rest = n - b - c

  def statistic(theta):
    def negative_log_likelihood(p21):
      p12 = p21 + theta
      p_rest = 1 - p12 - p21
      terms = [(b, p12), (c, p21), (rest, p_rest)]
      return -sum(k * math.log(max(p, 1e-300)) for k, p in terms if k)
    low, high = max(0.0, -theta), (1 - theta) / 2
    p21 = optimize.minimize_scalar(negative_log_likelihood, bounds=(low, high),
                                   method="bounded", options={"xatol": 1e-13}).x
    variance = n * (2 * p21 + theta * (1 - theta))
    return (b - c + correction - n * theta) / math.sqrt(variance)

  grid = np.linspace((b - c) / n + 1e-9, 1 - 1e-9, 2001)
  values = [statistic(t) + z for t in grid]
  i = next(k for k, v in enumerate(values) if v < 0)
  return optimize.brentq(lambda t: statistic(t) + z, grid[i - 1], grid[i], xtol=1e-12)


def test_uncorrected_score_interval_matches_the_published_worked_example():
  # Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency Tables" (2017), ch. 8:
  # complete response before/after consolidation therapy (Cavo et al. 2012), table
  # [[59, 6], [16, 80]]: Tango's asymptotic score CI, estimate -0.0621, 95% CI -0.1240 to
  # -0.0054 (as the R package contingencytables prints it).
  low, high = stats.tango_interval(6, 16, 161, correction=0.0)
  assert (6 - 16) / 161 == pytest.approx(-0.0621, abs=5e-5)
  assert low == pytest.approx(-0.1240, abs=5e-5)
  assert high == pytest.approx(-0.0054, abs=5e-5)


def test_uncorrected_perfect_match_has_the_closed_form_bound():
  # b = c = 0: the restricted MLE of P(candidate only) is 0, so the statistic is
  # -n theta / sqrt(n theta (1 - theta)) = -z  =>  theta = z^2 / (n + z^2).
  for n in (30, 360, 5000):
    low, high = stats.tango_interval(0, 0, n, correction=0.0)
    assert high == pytest.approx(Z975 ** 2 / (n + Z975 ** 2), rel=1e-9)
    assert low == pytest.approx(-high, rel=1e-9)
  assert stats.tango_interval(0, 0, 360, correction=0.0)[1] == pytest.approx(0.0106, abs=5e-5)


def test_a_perfect_match_is_never_a_zero_width_interval():
  # With the half-unit correction: (1/2 - n theta)^2 = z^2 n theta (1 - theta), the root above
  # 1/(2n) of (n^2 + z^2 n) theta^2 - (n + z^2 n) theta + 1/4 = 0.
  for n in (1, 30, 360, 5000):
    a, b, c = n * n + Z975 ** 2 * n, -(n + Z975 ** 2 * n), 0.25
    expected = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    counts = stats.PairedCounts(n=n, both=n, baseline_only=0, candidate_only=0)
    low, high = stats.drop_interval(counts)
    assert high == pytest.approx(expected, rel=1e-9)
    assert low == pytest.approx(-expected, rel=1e-9)
    assert high > 0
  assert stats.compare(stats.PairedCounts(360, 350, 0, 0), 0.01).position == stats.UNDECIDED


def test_one_example_is_never_enough():
  for both, b, c in ((1, 0, 0), (0, 0, 1)):
    comparison = stats.compare(stats.PairedCounts(1, both, b, c), 0.05)
    assert comparison.position == stats.UNDECIDED and comparison.high > 0.5


@pytest.mark.parametrize("b, c, n", [(3, 0, 360), (0, 0, 360), (4, 2, 360), (1, 6, 360),
                                     (12, 5, 100), (40, 20, 160), (2, 9, 1000)])
@pytest.mark.parametrize("correction", [0.0, stats.CONTINUITY_CORRECTION])
def test_upper_end_matches_a_brute_force_inversion(b, c, n, correction):
  high = stats.tango_interval(b, c, n, correction=correction)[1]
  assert high == pytest.approx(_brute_force_upper(b, c, n, correction), abs=2e-6)


def test_lower_end_is_the_upper_end_with_the_models_swapped():
  for b, c, n in ((3, 0, 360), (12, 5, 100), (2, 9, 1000)):
    low = stats.drop_interval(stats.PairedCounts(n, 0, b, c))[0]
    assert low == pytest.approx(-stats.drop_interval(stats.PairedCounts(n, 0, c, b))[1], abs=1e-9)


def test_issue_counts_three_lost_none_gained():
  # b = 3, c = 0 of 360: the old conditional bound was the point drop, 0.83 pp; Tango's score
  # bound is 2.42 pp (issue 20), and larger with the continuity correction.
  assert stats.tango_interval(3, 0, 360, correction=0.0)[1] == pytest.approx(0.0242, abs=5e-5)
  assert stats.drop_interval(stats.PairedCounts(360, 350, 3, 0))[1] > 0.0242


def test_the_bound_grows_with_losses_and_shrinks_with_gains():
  n = 360
  highs = np.array([[stats.drop_interval(stats.PairedCounts(n, 0, b, c))[1]
                     for c in range(0, 12)] for b in range(0, 12)])
  assert np.all(np.diff(highs, axis=0) > 0) and np.all(np.diff(highs, axis=1) < 0)


def test_position_against_budget_and_the_decisions():
  n = 5000
  within = stats.compare(stats.PairedCounts(n, 4900, 5, 6), 0.01)   # point -0.02 pp
  over = stats.compare(stats.PairedCounts(n, 4700, 150, 0), 0.01)    # point +3 pp
  undecided = stats.compare(stats.PairedCounts(n, 4900, 50, 10), 0.01)  # point +0.8 pp
  assert within.position == stats.WITHIN and within.high <= 0.01 and within.needed is None
  assert over.position == stats.OVER and over.low > 0.01
  assert undecided.position == stats.UNDECIDED and undecided.low < 0.01 < undecided.high
  for comparison, confident, point in ((within, True, True), (over, False, False),
                                       (undecided, False, True)):
    assert comparison.passes(settings_lib.CONFIDENT) is confident
    assert comparison.passes(settings_lib.POINT) is point
  with pytest.raises(ValueError, match="decision must be one of"):
    within.passes("strict")


def test_examples_needed_decides_at_that_size_and_not_much_below():
  counts = stats.PairedCounts(n=360, both=340, baseline_only=4, candidate_only=2)
  needed = stats.examples_needed(counts, 0.01)
  assert 1_000 < needed < 100_000

  def high_at(size):  # the same rates at another size
    return stats.tango_interval(4 / 360 * size, 2 / 360 * size, size)[1]

  assert high_at(needed) <= 0.01 < high_at(int(needed * 0.97))
  # A lower bound by hand: the Wald sd at the same rates, sqrt((b + c)/n - d^2) / sqrt(N),
  # needs 0.56 pp + 1.96 sd <= 1 pp, N >= 3,235; the score interval is wider than Wald here.
  rate, drop = 6 / 360, 2 / 360
  assert needed >= (Z975 * math.sqrt(rate - drop ** 2) / (0.01 - drop)) ** 2


def test_examples_needed_is_none_when_the_point_drop_is_the_budget():
  counts = stats.PairedCounts(n=100, both=90, baseline_only=2, candidate_only=1)
  assert stats.examples_needed(counts, 0.01) is None


def test_holm_adjusted_p_values_by_hand():
  # Sorted 0.001, 0.01, 0.02, 0.5 of 4: x4, x3, x2, x1 with a running maximum, capped at 1.
  adjusted = stats.holm_adjusted({"a": 0.01, "b": 0.5, "c": 0.001, "d": 0.02})
  assert adjusted == pytest.approx({"c": 0.004, "a": 0.03, "d": 0.04, "b": 0.5})
  assert stats.holm_adjusted({"a": 0.4, "b": 0.3}) == pytest.approx({"b": 0.6, "a": 0.6})


def test_p_over_is_small_only_for_a_drop_confidently_over_the_budget():
  # 30 examples of one class, 20 lost, none gained: drop 67 pp against a 10 pp budget. The
  # restricted MLE maximizes 20 log(p + 0.1) + 10 log(0.9 - 2p): 20 / (p + 0.1) = 20 / (0.9 -
  # 2p), p = 0.8 / 3; z = (20 - 0.5 - 3) / sqrt(30 (2p + 0.09)).
  z = 16.5 / math.sqrt(30 * (1.6 / 3 + 0.09))
  assert stats.p_over(stats.PairedCounts(30, 8, 20, 0), 0.1) == pytest.approx(
      scipy_stats.norm.sf(z), rel=1e-9)
  assert scipy_stats.norm.sf(z) < 1e-4
  assert stats.p_over(stats.PairedCounts(30, 26, 2, 0), 0.1) > 0.2
  # It agrees with the interval: the lower end is over the budget iff p <= 2.5 %.
  for b in range(0, 15):
    counts = stats.PairedCounts(30, 0, b, 1)
    assert (stats.p_over(counts, 0.1) <= 0.025) == (stats.drop_interval(counts)[0] > 0.1)


def test_paired_t_interval_on_mae_by_hand():
  # Differences of absolute errors: |c| - |b| = [1, 0, 2, 1] - mean 1, sd sqrt(2/3).
  base = np.array([1.0, -2.0, 0.5, 0.0])
  cand = np.array([-2.0, 2.0, 2.5, 1.0])
  paired = stats.PairedErrors.from_residuals(stats.MAE, base, cand)
  low, high = stats.drop_interval(paired)
  half = scipy_stats.t.ppf(0.975, 3) * math.sqrt(2 / 3) / 2
  assert paired.drop == pytest.approx(1.0)
  assert (low, high) == pytest.approx((1 - half, 1 + half))
  assert (low, high) == pytest.approx(tuple(scipy_stats.ttest_rel(np.abs(cand), np.abs(base))
                                            .confidence_interval(0.95)))


def test_rmse_interval_is_the_delta_method_on_the_squared_errors():
  rng = np.random.default_rng(3)
  base = rng.normal(size=400)
  cand = 1.1 * base + rng.normal(scale=0.3, size=400)
  paired = stats.PairedErrors.from_residuals(stats.RMSE, base, cand)
  rmse_b, rmse_c = math.sqrt(np.mean(base ** 2)), math.sqrt(np.mean(cand ** 2))
  assert paired.drop == pytest.approx(rmse_c - rmse_b)
  influence = cand ** 2 / (2 * rmse_c) - base ** 2 / (2 * rmse_b)   # d sqrt(m) = dm / 2 sqrt(m)
  half = scipy_stats.t.ppf(0.975, 399) * np.std(influence, ddof=1) / math.sqrt(400)
  assert stats.drop_interval(paired) == pytest.approx((paired.drop - half, paired.drop + half))


def test_paired_errors_round_trip_and_describe():
  paired = stats.PairedErrors.from_residuals(stats.MAE, [0.5, 1.0, 0.0], [1.0, 1.0, 0.5])
  assert stats.PairedErrors.from_dict(paired.to_dict()) == paired
  text = stats.compare(paired, 0.1).describe()
  assert text.startswith("mae increase +0.3333 (95% CI ") and text.endswith("n=3)")
  with pytest.raises(ValueError, match="at least 2 examples"):
    stats.drop_interval(stats.PairedErrors.from_residuals(stats.MAE, [1.0], [2.0]))


def test_describe_and_to_dict_report_point_interval_and_n():
  comparison = stats.compare(stats.PairedCounts(360, 340, 4, 2), 0.01)
  text = comparison.describe()
  assert text.startswith("drop +0.56 pp (95% CI ") and text.endswith("n=360)")
  as_dict = comparison.to_dict()
  assert as_dict["n"] == 360 and as_dict["position"] == stats.UNDECIDED
  assert stats.PairedCounts.from_dict(as_dict["counts"]) == comparison.counts


def test_counts_from_outcome_arrays():
  base = np.array([1, 1, 0, 0, 1], bool)
  cand = np.array([1, 0, 1, 0, 1], bool)
  assert stats.PairedCounts.from_outcomes(base, cand) == stats.PairedCounts(5, 2, 1, 1)


@pytest.mark.parametrize("kwargs, field", [
    (dict(n=10, both=5, baseline_only=-1, candidate_only=0), "baseline_only"),
    (dict(n=10, both=5, baseline_only=4, candidate_only=4), "<= n"),
    (dict(n=10, both=5, baseline_only=1.5, candidate_only=0), "baseline_only"),
])
def test_bad_counts_are_refused_naming_the_field(kwargs, field):
  with pytest.raises(ValueError, match=field):
    stats.PairedCounts(**kwargs)


def test_bad_budget_confidence_and_metric_are_refused():
  counts = stats.PairedCounts(10, 8, 1, 1)
  with pytest.raises(ValueError, match="budget"):
    stats.compare(counts, 1.5)
  with pytest.raises(ValueError, match="confidence"):
    stats.drop_interval(counts, confidence=1.0)
  with pytest.raises(ValueError, match="metric must be one of"):
    stats.PairedErrors.from_residuals("mse", [1.0, 2.0], [1.0, 2.0])
