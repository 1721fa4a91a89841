"""The paired accuracy interval against hand-computed cases, and the sample-size estimate."""
import math

import pytest
from scipy import stats as scipy_stats

from tfx_bonsai.components.common import stats


def test_interval_matches_hand_computed_case():
  # b=3 discordant pairs for the baseline, c=0 for the candidate, n=100. Clopper-Pearson
  # for 3 of 3: lower = 0.025 ** (1/3) = 0.29240, upper = 1. Drop = (3/100)(2 pi - 1).
  counts = stats.PairedCounts(n=100, both=90, baseline_only=3, candidate_only=0)
  low, high = stats.drop_interval(counts)
  assert counts.drop == pytest.approx(0.03)
  assert low == pytest.approx(0.03 * (2 * 0.025 ** (1 / 3) - 1), abs=1e-9)  # -0.012456
  assert low == pytest.approx(-0.012456, abs=1e-6)
  assert high == pytest.approx(0.03, abs=1e-12)


def test_interval_when_candidate_is_better_hand_computed():
  # b=0, c=2, n=50: pi in [0, 1 - 0.025 ** (1/2)] = [0, 0.841886]; drop = (2/50)(2 pi - 1).
  counts = stats.PairedCounts(n=50, both=45, baseline_only=0, candidate_only=2)
  low, high = stats.drop_interval(counts)
  assert counts.drop == pytest.approx(-0.04)
  assert low == pytest.approx(-0.04, abs=1e-12)
  assert high == pytest.approx(0.04 * (2 * (1 - math.sqrt(0.025)) - 1), abs=1e-9)  # 0.027351


def test_clopper_pearson_agrees_with_scipy_binomtest():
  for k, m in ((0, 5), (2, 7), (5, 9), (9, 9), (17, 40)):
    ci = scipy_stats.binomtest(k, m).proportion_ci(confidence_level=0.95, method="exact")
    assert stats.clopper_pearson(k, m) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_no_discordant_pair_is_a_zero_width_interval():
  counts = stats.PairedCounts(n=360, both=350, baseline_only=0, candidate_only=0)
  assert stats.drop_interval(counts) == (0.0, 0.0)
  assert stats.compare(counts, 0.01).position == stats.WITHIN


def test_position_against_budget():
  n = 360
  within = stats.compare(stats.PairedCounts(n, 340, 1, 6), 0.01)
  over = stats.compare(stats.PairedCounts(n, 300, 30, 0), 0.01)
  # Point drop 2/360 = 0.56 pp is within a 1 pp budget; the interval reaches far above it.
  undecided = stats.compare(stats.PairedCounts(n, 340, 4, 2), 0.01)
  assert within.position == stats.WITHIN and within.high <= 0.01 and within.needed is None
  assert over.position == stats.OVER and over.low > 0.01
  assert undecided.position == stats.UNDECIDED
  assert undecided.drop < 0.01 < undecided.high and undecided.low < 0.01
  assert undecided.needed > n


def test_examples_needed_decides_at_that_size_and_not_much_below():
  counts = stats.PairedCounts(n=360, both=340, baseline_only=4, candidate_only=2)
  needed = stats.examples_needed(counts, 0.01)
  assert 1_000 < needed < 100_000

  def high_at(size):
    b, c = 4 / 360 * size, 2 / 360 * size
    return stats._drop_interval(b, c, size, 0.95)[1]  # pylint: disable=protected-access

  assert high_at(needed) <= 0.01
  assert high_at(int(needed * 0.9)) > 0.01


def test_examples_needed_is_none_when_the_point_drop_is_the_budget():
  counts = stats.PairedCounts(n=100, both=90, baseline_only=2, candidate_only=1)
  assert stats.examples_needed(counts, 0.01) is None


def test_describe_and_to_dict_report_point_interval_and_n():
  comparison = stats.compare(stats.PairedCounts(360, 340, 4, 2), 0.01)
  text = comparison.describe()
  assert text.startswith("drop +0.56 pp (95% CI ") and text.endswith("n=360)")
  as_dict = comparison.to_dict()
  assert as_dict["n"] == 360 and as_dict["position"] == stats.UNDECIDED
  assert stats.PairedCounts.from_dict(as_dict["counts"]) == comparison.counts


@pytest.mark.parametrize("kwargs, field", [
    (dict(n=10, both=5, baseline_only=-1, candidate_only=0), "baseline_only"),
    (dict(n=10, both=5, baseline_only=4, candidate_only=4), "<= n"),
    (dict(n=10, both=5, baseline_only=1.5, candidate_only=0), "baseline_only"),
])
def test_bad_counts_are_refused_naming_the_field(kwargs, field):
  with pytest.raises(ValueError, match=field):
    stats.PairedCounts(**kwargs)


def test_bad_budget_and_confidence_are_refused():
  counts = stats.PairedCounts(10, 8, 1, 1)
  with pytest.raises(ValueError, match="budget"):
    stats.compare(counts, 1.5)
  with pytest.raises(ValueError, match="confidence"):
    stats.drop_interval(counts, confidence=1.0)
