"""The gate's noise-aware accuracy decisions: paired intervals, `point` vs `confident`, the
"too few examples" verdict, the production comparison, the absolute floor and the dense
model's own blessing."""
import json

import pytest

from tfx_bonsai.components.common import stats
from tfx_bonsai.components.compression_evaluator import gate

# 360 examples, dense right on 4 the candidate misses, candidate right on 2 dense misses:
# point drop 2/360 = 0.56 pp, within a 1 pp budget; its 95% interval is -0.92..+1.52 pp.
UNDECIDED = stats.PairedCounts(n=360, both=340, baseline_only=4, candidate_only=2)
# The candidate fixes 6 and breaks 1: the whole interval is below the budget.
WITHIN = stats.PairedCounts(n=360, both=340, baseline_only=1, candidate_only=6)
# The candidate breaks 20: the whole interval is above the budget.
OVER = stats.PairedCounts(n=360, both=320, baseline_only=20, candidate_only=0)


def _measured(counts, production=None):
  measured = {gate.CANDIDATE_ACCURACY: counts.candidate_accuracy,
              gate.DENSE_ACCURACY: counts.baseline_accuracy,
              gate.DENSE_PAIRED_COUNTS: counts.to_dict(),
              gate.DENSE_TFLITE_BYTES: 1000, gate.CANDIDATE_BYTES: 400,
              gate.CANDIDATE_GZIP_BYTES: 10}
  if production is not None:
    measured[gate.PRODUCTION_ACCURACY] = production.baseline_accuracy
    measured[gate.PRODUCTION_PAIRED_COUNTS] = production.to_dict()
  return measured


def _check(verdict, name):
  (check,) = [c for c in verdict.checks if c.name == name]
  return check


def test_default_decision_is_confident():
  assert gate.GateConfig().accuracy_decision == gate.CONFIDENT


def test_confident_refuses_a_point_drop_within_budget_whose_interval_is_not():
  verdict = gate.decide(_measured(UNDECIDED), gate.GateConfig(max_accuracy_drop=0.01))
  check = _check(verdict, gate.ACCURACY_DROP)
  assert check.measured == pytest.approx(2 / 360) and check.measured < 0.01
  assert (check.paired.low, check.paired.high) == pytest.approx((-0.0092, 0.0152), abs=1e-4)
  assert check.paired.needed == pytest.approx(2700, rel=0.02)
  assert not check.passed and not verdict.blessed
  (reason,) = verdict.reasons
  assert reason.startswith("accuracy_drop: too few examples to decide at a 1.00 pp budget: "
                           "drop +0.56 pp (95% CI ")
  assert "n=360" in reason
  assert f"about {check.paired.needed:,} examples would decide" in reason
  assert check.paired.needed > 360


def test_point_blesses_the_same_drop_and_says_the_interval_straddles_the_budget():
  verdict = gate.decide(_measured(UNDECIDED),
                        gate.GateConfig(max_accuracy_drop=0.01, accuracy_decision=gate.POINT))
  assert verdict.blessed
  text = _check(verdict, gate.ACCURACY_DROP).describe()
  assert text.startswith("accuracy_drop drop +0.56 pp (95% CI ")
  assert "<= 1.00 pp (point decision; the interval straddles the budget: about " in text
  assert text.endswith(" ok")


@pytest.mark.parametrize("decision", [gate.POINT, gate.CONFIDENT])
def test_interval_within_budget_blesses_and_over_budget_refuses_in_both_modes(decision):
  config = gate.GateConfig(max_accuracy_drop=0.01, accuracy_decision=decision)
  assert gate.decide(_measured(WITHIN), config).blessed
  over = gate.decide(_measured(OVER), config)
  assert not over.blessed
  assert over.reasons[0].startswith("accuracy_drop drop +5.56 pp (95% CI +")
  assert over.reasons[0].endswith("n=360) > 1.00 pp")


def test_verdict_reports_point_drop_interval_and_n():
  verdict = gate.decide(_measured(UNDECIDED), gate.GateConfig())
  data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
  (check,) = [c for c in data["checks"] if c["name"] == gate.ACCURACY_DROP]
  low, high = stats.drop_interval(UNDECIDED)
  assert check["n"] == 360 and check["decision"] == gate.CONFIDENT
  assert check["drop"] == pytest.approx(2 / 360)
  assert (check["ci_low"], check["ci_high"]) == pytest.approx((low, high))
  assert check["position"] == stats.UNDECIDED and check["examples_needed"] > 360


def test_production_comparison_is_paired_and_decided_the_same_way():
  config = gate.GateConfig(max_accuracy_drop=0.01)
  refused = gate.decide(_measured(WITHIN, production=UNDECIDED), config)
  assert _check(refused, gate.ACCURACY_DROP).passed
  production = _check(refused, gate.PRODUCTION_DROP)
  assert not production.passed and production.paired.counts == UNDECIDED
  assert refused.reasons[0].startswith("production_drop: too few examples to decide")
  point = gate.decide(_measured(WITHIN, production=UNDECIDED),
                      gate.GateConfig(max_accuracy_drop=0.01, accuracy_decision=gate.POINT))
  assert point.blessed


def test_confident_without_paired_counts_cannot_decide():
  measured = _measured(WITHIN)
  del measured[gate.DENSE_PAIRED_COUNTS]
  verdict = gate.decide(measured, gate.GateConfig())
  assert not verdict.blessed
  assert verdict.reasons == ("metric dense_paired_counts could not be computed "
                             "(needed by accuracy_drop)",)
  assert gate.decide(measured, gate.GateConfig(accuracy_decision=gate.POINT)).blessed


def test_min_accuracy_refuses_a_candidate_as_poor_as_its_dense_model():
  # Dense and candidate both at chance (10 classes): no drop, yet nothing worth shipping.
  chance = stats.PairedCounts(n=360, both=30, baseline_only=6, candidate_only=6)
  assert gate.decide(_measured(chance), gate.GateConfig(max_accuracy_drop=0.05)).blessed
  verdict = gate.decide(_measured(chance),
                        gate.GateConfig(max_accuracy_drop=0.05, min_accuracy=0.9))
  assert not verdict.blessed
  assert verdict.reasons == ("min_accuracy 0.100 < 0.900",)


@pytest.mark.parametrize("blessed", [True, False])
def test_dense_models_own_blessing_is_a_precondition(blessed):
  measured = dict(_measured(WITHIN), **{gate.DENSE_BLESSED: blessed})
  verdict = gate.decide(measured, gate.GateConfig())
  assert verdict.blessed is blessed
  if not blessed:
    assert verdict.reasons == ("dense model NOT blessed by its Evaluator",)


@pytest.mark.parametrize("fields, message", [
    ({"accuracy_decision": "strict"},
     "accuracy_decision must be one of ['point', 'confident'], got 'strict'"),
    ({"min_accuracy": 1.5}, "min_accuracy must be in [0, 1] (0 turns it off), got 1.5"),
])
def test_invalid_decision_fields_are_named(fields, message):
  with pytest.raises(ValueError) as error:
    gate.GateConfig(**fields).validate()
  assert str(error.value) == message
