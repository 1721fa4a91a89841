"""The gate's noise-aware decisions: paired intervals, `point` vs `confident`, the "too few
examples" verdict, the production comparison, per-class harm, the absolute floor and the
dense model's own blessing.

Expected intervals are closed forms derived here (a perfect match, b = c = 0) or hand
derivations in the comments, never the implementation's own output.
"""
import json
import math

import numpy as np
import pytest

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import stats
from tfx_bonsai.components.compression_evaluator import gate

Z975 = 1.959963984540054


def perfect_match_bound(n):
  """The continuity-corrected score bound for b = c = 0: the root above 1/(2n) of
  (1/2 - n t)^2 = z^2 n t (1 - t)."""
  a, b = n * n + Z975 ** 2 * n, -(n + Z975 ** 2 * n)
  return (-b + math.sqrt(b * b - a)) / (2 * a)


def examples_to_confirm(budget):
  """The n at which b = c = 0 confirms `budget`: (1/2 - n t)^2 = z^2 n t (1 - t) at t = budget,
  a quadratic in n, its larger root."""
  a, b = budget ** 2, -(budget + Z975 ** 2 * budget * (1 - budget))
  return (-b + math.sqrt(b * b - a)) / (2 * a)


# 360 examples, the two models agree on every one: the bound is 1.32 pp, over a 1 pp budget.
PERFECT_360 = stats.PairedCounts(n=360, both=340, baseline_only=0, candidate_only=0)
# The same on 5,000 examples: 0.096 pp, within it.
PERFECT_5000 = stats.PairedCounts(n=5000, both=4800, baseline_only=0, candidate_only=0)
# The candidate breaks 20 of 360. At a drop of 1 pp the restricted MLE of P(candidate only) is
# p = 13/720 (20 / (p + 0.01) = 680 / (0.99 - 2p)); the lower end's statistic
# (20 - 0.5 - 3.6) / sqrt(360 (2p + 0.0099)) = 3.91 > 1.96: the whole interval is over 1 pp.
OVER = stats.PairedCounts(n=360, both=320, baseline_only=20, candidate_only=0)


def _measured(counts, production=None, classes=None):
  measured = {gate.CANDIDATE_ACCURACY: counts.candidate_accuracy,
              gate.DENSE_ACCURACY: counts.baseline_accuracy,
              gate.DENSE_PAIRED_COUNTS: counts.to_dict(),
              gate.DENSE_CLASS_PAIRED_COUNTS: {
                  label: c.to_dict() for label, c in (classes or {"0": counts}).items()},
              gate.DENSE_TFLITE_BYTES: 1000, gate.CANDIDATE_BYTES: 400,
              gate.CANDIDATE_GZIP_BYTES: 10}
  if production is not None:
    measured[gate.PRODUCTION_ACCURACY] = production.baseline_accuracy
    measured[gate.PRODUCTION_PAIRED_COUNTS] = production.to_dict()
  return measured


def _check(verdict, name):
  (check,) = [c for c in verdict.checks if c.name == name]
  return check


def test_defaults_are_confident_with_a_per_class_check():
  assert gate.GateConfig().accuracy_decision == gate.CONFIDENT
  assert gate.GateConfig().max_class_drop == 0.1


def test_a_perfect_match_on_360_examples_cannot_confirm_1pp():
  verdict = gate.decide(_measured(PERFECT_360), gate.GateConfig(max_accuracy_drop=0.01))
  check = _check(verdict, gate.ACCURACY_DROP)
  bound = perfect_match_bound(360)
  assert bound == pytest.approx(0.01316, abs=1e-5)
  assert check.measured == 0.0
  assert (check.paired.low, check.paired.high) == pytest.approx((-bound, bound), rel=1e-9)
  # About 475 examples would decide (examples_needed bisects to about 1 %).
  assert check.paired.needed == pytest.approx(examples_to_confirm(0.01), rel=0.02)
  assert 470 < examples_to_confirm(0.01) < 480
  assert not check.passed and not verdict.blessed
  (reason,) = verdict.reasons
  assert reason == (f"accuracy_drop: too few examples to decide at a 1.00 pp budget: drop "
                    f"+0.00 pp (95% CI -1.32..+1.32 pp, n=360); about "
                    f"{check.paired.needed:,} examples would decide")


def test_point_blesses_the_same_and_says_the_interval_straddles_the_budget():
  verdict = gate.decide(_measured(PERFECT_360),
                        gate.GateConfig(max_accuracy_drop=0.01, accuracy_decision=gate.POINT))
  assert verdict.blessed
  text = _check(verdict, gate.ACCURACY_DROP).describe()
  assert text.startswith("accuracy_drop drop +0.00 pp (95% CI -1.32..+1.32 pp, n=360) <= 1.00 pp "
                         "(point decision; the interval straddles the budget: about ")
  assert text.endswith(" ok")


@pytest.mark.parametrize("decision", [gate.POINT, gate.CONFIDENT])
def test_interval_within_budget_blesses_and_over_budget_refuses_in_both_modes(decision):
  config = gate.GateConfig(max_accuracy_drop=0.01, accuracy_decision=decision)
  within = gate.decide(_measured(PERFECT_5000), config)
  assert within.blessed
  assert _check(within, gate.ACCURACY_DROP).paired.high == pytest.approx(
      perfect_match_bound(5000), rel=1e-9)
  over = gate.decide(_measured(OVER), config)
  assert not over.blessed
  assert over.reasons[0].startswith("accuracy_drop drop +5.56 pp (95% CI +")
  assert over.reasons[0].endswith("n=360) > 1.00 pp")


def test_verdict_reports_point_drop_interval_and_n():
  verdict = gate.decide(_measured(PERFECT_360), gate.GateConfig())
  data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
  (check,) = [c for c in data["checks"] if c["name"] == gate.ACCURACY_DROP]
  bound = perfect_match_bound(360)
  assert check["n"] == 360 and check["decision"] == gate.CONFIDENT
  assert check["drop"] == 0.0
  assert (check["ci_low"], check["ci_high"]) == pytest.approx((-bound, bound), rel=1e-9)
  assert check["position"] == stats.UNDECIDED and check["examples_needed"] > 360


def test_production_comparison_is_paired_and_decided_the_same_way():
  config = gate.GateConfig(max_accuracy_drop=0.01)
  refused = gate.decide(_measured(PERFECT_5000, production=PERFECT_360), config)
  assert _check(refused, gate.ACCURACY_DROP).passed
  production = _check(refused, gate.PRODUCTION_DROP)
  assert not production.passed and production.paired.counts == PERFECT_360
  assert refused.reasons[0].startswith("production_drop: too few examples to decide")
  point = gate.decide(_measured(PERFECT_5000, production=PERFECT_360),
                      gate.GateConfig(max_accuracy_drop=0.01, accuracy_decision=gate.POINT))
  assert point.blessed


def test_confident_without_paired_counts_cannot_decide():
  measured = _measured(PERFECT_5000)
  del measured[gate.DENSE_PAIRED_COUNTS]
  verdict = gate.decide(measured, gate.GateConfig())
  assert not verdict.blessed
  assert verdict.reasons == ("metric dense_paired_counts could not be computed "
                             "(needed by accuracy_drop)",)
  assert gate.decide(measured, gate.GateConfig(accuracy_decision=gate.POINT)).blessed


@pytest.fixture(scope="module")
def class_three_lost(digits_arrays, small_dense_model):
  """Real predictions on the 1,797 digits: the trained dense model, and a candidate that is
  the same model with class 3's output bias lowered by 20 (it almost never answers 3)."""
  images, labels = digits_arrays
  dense = model_io.load_keras_model(small_dense_model.uri, compile=False)
  candidate = model_io.load_keras_model(small_dense_model.uri, compile=False)
  kernel, bias = candidate.layers[-1].get_weights()
  bias[3] -= 20.0
  candidate.layers[-1].set_weights([kernel, bias])
  dense_right = np.argmax(dense.predict(images, verbose=0), axis=1) == labels
  candidate_right = np.argmax(candidate.predict(images, verbose=0), axis=1) == labels
  return labels, dense_right, candidate_right


def _class_counts(labels, dense_right, candidate_right):
  return {str(k): stats.PairedCounts.from_outcomes(dense_right[labels == k],
                                                   candidate_right[labels == k])
          for k in np.unique(labels)}


def test_a_candidate_within_the_overall_budget_that_lost_one_class_is_refused(class_three_lost):
  labels, dense_right, candidate_right = class_three_lost
  overall = stats.PairedCounts.from_outcomes(dense_right, candidate_right)
  classes = _class_counts(labels, dense_right, candidate_right)
  lost = classes["3"]
  # Class 3 lost nearly all its right answers; overall that is ~10 %, within a 15 pp budget.
  assert lost.candidate_accuracy < 0.1 < 0.8 < lost.baseline_accuracy
  assert 0.05 < overall.drop < 0.12
  measured = _measured(overall, classes=classes)
  config = gate.GateConfig(max_accuracy_drop=0.15)
  verdict = gate.decide(measured, config)
  assert _check(verdict, gate.ACCURACY_DROP).passed
  class_check = _check(verdict, gate.CLASS_DROP)
  assert not class_check.passed and not verdict.blessed
  (reason,) = verdict.reasons
  assert reason.startswith("class_drop: class 3: drop +")
  assert reason.endswith("across 10 classes is confidently over its 10.00 pp budget")
  assert class_check.paired.counts == lost
  # Without the per-class check the overall accuracy alone would have blessed it.
  assert gate.decide(measured, config.replace(max_class_drop=0.0)).blessed


def test_per_class_losses_within_noise_pass_and_name_the_worst_class(class_three_lost):
  labels, dense_right, _ = class_three_lost
  # A candidate that differs from the dense model on one example of each class (right where
  # the dense model was wrong, or wrong where it was right on class 5 and 7).
  candidate_right = dense_right.copy()
  for k in range(10):
    candidate_right[np.flatnonzero(labels == k)[0]] ^= True
  classes = _class_counts(labels, dense_right, candidate_right)
  overall = stats.PairedCounts.from_outcomes(dense_right, candidate_right)
  verdict = gate.decide(_measured(overall, classes=classes),
                        gate.GateConfig(max_accuracy_drop=0.15))
  check = _check(verdict, gate.CLASS_DROP)
  assert check.passed and verdict.blessed, verdict.summary_line()
  assert check.describe().startswith(
      "class_drop no class or slice confidently over 10.00 pp (worst class ")
  worst = check.note.split()[2].rstrip(":")
  assert classes[worst].drop == max(c.drop for c in classes.values())


def test_holm_keeps_one_borderline_class_of_ten_from_refusing():
  # Class "a" alone: a raw one-sided p-value under 2.5 % refuses it; among ten classes Holm
  # multiplies the smallest p-value by ten, and the candidate passes.
  for b in range(1, 60):
    borderline = stats.PairedCounts(100, 100 - b, b, 0)
    if 0.0025 < stats.p_over(borderline, 0.1) < 0.025:
      break
  else:
    pytest.fail("no borderline count found")
  clean = stats.PairedCounts(100, 90, 0, 0)
  config = gate.GateConfig(max_accuracy_drop=0.5)
  alone = gate.decide(_measured(borderline, classes={"a": borderline}), config)
  assert not _check(alone, gate.CLASS_DROP).passed
  ten = {"a": borderline, **{str(k): clean for k in range(9)}}
  overall = stats.PairedCounts(1000, 910 - b, b, 0)
  among_ten = gate.decide(_measured(overall, classes=ten), config)
  assert _check(among_ten, gate.CLASS_DROP).passed


def test_a_slice_confidently_over_budget_is_refused_and_named():
  # Two classes within budget; the slice "device=old" (40 examples) lost 30 of them.
  fine = stats.PairedCounts(500, 480, 1, 1)
  slices = {"device=new": stats.PairedCounts(960, 940, 2, 2),
            "device=old": stats.PairedCounts(40, 5, 30, 0)}
  overall = stats.PairedCounts(1000, 960, 2, 2)
  measured = dict(_measured(overall, classes={"0": fine, "1": fine}),
                  **{gate.DENSE_SLICE_PAIRED_COUNTS: {k: c.to_dict() for k, c in slices.items()}})
  config = gate.GateConfig(max_accuracy_drop=0.05,
                           slicing_specs=[{"feature_keys": ["device"]}])
  verdict = gate.decide(measured, config)
  assert not verdict.blessed
  (reason,) = verdict.reasons
  assert reason.startswith("class_drop: slice device=old: drop +75.00 pp")
  assert "across 2 classes and 2 slices" in reason
  # Without slicing specs the slices are not looked at; asked for but missing, they are.
  assert gate.decide(measured, config.replace(slicing_specs=[])).blessed
  del measured[gate.DENSE_SLICE_PAIRED_COUNTS]
  assert gate.decide(measured, config).reasons == (
      "metric dense_slice_paired_counts could not be computed (needed by class_drop)",)


def test_without_per_class_counts_the_class_check_cannot_decide():
  measured = _measured(PERFECT_5000)
  del measured[gate.DENSE_CLASS_PAIRED_COUNTS]
  verdict = gate.decide(measured, gate.GateConfig())
  assert verdict.reasons == ("metric dense_class_paired_counts could not be computed "
                             "(needed by class_drop)",)


def test_min_accuracy_refuses_a_candidate_as_poor_as_its_dense_model():
  # Dense and candidate both at chance (10 classes): no drop, yet nothing worth shipping.
  chance = stats.PairedCounts(n=5000, both=400, baseline_only=50, candidate_only=50)
  assert gate.decide(_measured(chance), gate.GateConfig(max_accuracy_drop=0.05)).blessed
  verdict = gate.decide(_measured(chance),
                        gate.GateConfig(max_accuracy_drop=0.05, min_accuracy=0.9))
  assert not verdict.blessed
  assert verdict.reasons == ("min_accuracy 0.090 < 0.900",)


@pytest.mark.parametrize("blessed", [True, False])
def test_dense_models_own_blessing_is_a_precondition(blessed):
  measured = dict(_measured(PERFECT_5000), **{gate.DENSE_BLESSED: blessed})
  verdict = gate.decide(measured, gate.GateConfig())
  assert verdict.blessed is blessed
  if not blessed:
    assert verdict.reasons == ("dense model NOT blessed by its Evaluator",)


@pytest.mark.parametrize("fields, message", [
    ({"accuracy_decision": "strict"},
     "accuracy_decision must be one of ['point', 'confident'], got 'strict'"),
    ({"min_accuracy": 1.5}, "min_accuracy must be in [0, 1] (0 turns it off), got 1.5"),
    ({"max_class_drop": -0.1}, "max_class_drop must be in [0, 1] (0 turns it off), got -0.1"),
    ({"slicing_specs": [{"feature_key": ["a"]}]},
     "slicing_specs must be a list of TFMA SlicingSpecs, e.g. [{feature_keys: [color]}, "
     "{feature_values: {size: large}}] (the overall slice is always checked), got "
     "{'feature_key': ['a']}"),
])
def test_invalid_decision_fields_are_named(fields, message):
  with pytest.raises(ValueError) as error:
    gate.GateConfig(**fields).validate()
  assert str(error.value) == message
