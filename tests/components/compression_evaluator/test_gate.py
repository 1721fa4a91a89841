"""The pure gate: every check at its boundary, missing metrics, and config validation."""
import json
import math

import pytest

from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.pipeline import config as config_lib

CONFIG = gate.GateConfig(max_accuracy_drop=0.01, min_compression_ratio=10.0,
                         accuracy_decision=gate.POINT, max_class_drop=0.0)


def _point(**fields):
  """A GateConfig deciding on point drops: these tests give accuracies, not paired counts
  (so no per-class counts either: test_gate_paired.py covers class_drop)."""
  return gate.GateConfig(accuracy_decision=gate.POINT, max_class_drop=0.0, **fields)


def _measured(**overrides):
  measured = {gate.CANDIDATE_ACCURACY: 0.95, gate.DENSE_ACCURACY: 0.95,
              gate.DENSE_TFLITE_BYTES: 1000, gate.CANDIDATE_BYTES: 400,
              gate.CANDIDATE_GZIP_BYTES: 100}
  measured.update(overrides)
  return measured


def _check(verdict, name):
  found = [c for c in verdict.checks if c.name == name]
  assert len(found) == 1, [c.name for c in verdict.checks]
  return found[0]


def test_all_checks_passing_blesses():
  verdict = gate.decide(_measured(), CONFIG)
  assert verdict.blessed
  assert verdict.reasons == ()
  assert [c.name for c in verdict.checks] == [gate.ACCURACY_DROP, gate.COMPRESSION_RATIO]
  assert verdict.summary_line() == (
      "BLESSED: accuracy_drop 0.000 <= 0.010 ok; compression_ratio 10.0 >= 10.0 ok")


@pytest.mark.parametrize("candidate, blessed", [(0.94, True), (0.9399, False)])
def test_accuracy_drop_boundary(candidate, blessed):
  verdict = gate.decide(_measured(**{gate.CANDIDATE_ACCURACY: candidate}), CONFIG)
  check = _check(verdict, gate.ACCURACY_DROP)
  assert check.passed is blessed and verdict.blessed is blessed
  assert check.measured == pytest.approx(0.95 - candidate)
  assert check.threshold == 0.01
  if not blessed:
    assert verdict.reasons == ("accuracy_drop 0.010 > 0.010",)


def test_candidate_better_than_dense_passes():
  verdict = gate.decide(_measured(**{gate.CANDIDATE_ACCURACY: 0.97}), CONFIG)
  assert verdict.blessed
  assert _check(verdict, gate.ACCURACY_DROP).measured == pytest.approx(-0.02)


@pytest.mark.parametrize("candidate, blessed", [(0.891, True), (0.8909, False)])
def test_relative_accuracy_drop_boundary(candidate, blessed):
  config = _point(max_accuracy_drop=0.5, max_relative_accuracy_drop=0.01)
  verdict = gate.decide(
      _measured(**{gate.DENSE_ACCURACY: 0.9, gate.CANDIDATE_ACCURACY: candidate}), config)
  check = _check(verdict, gate.RELATIVE_ACCURACY_DROP)
  assert check.passed is blessed and verdict.blessed is blessed
  assert check.measured == pytest.approx((0.9 - candidate) / 0.9)


def test_relative_accuracy_drop_is_off_at_zero():
  verdict = gate.decide(_measured(), _point(max_relative_accuracy_drop=0.0))
  assert gate.RELATIVE_ACCURACY_DROP not in [c.name for c in verdict.checks]


def test_relative_accuracy_drop_with_zero_dense_accuracy_fails():
  config = _point(max_accuracy_drop=1.0, max_relative_accuracy_drop=0.5)
  verdict = gate.decide(
      _measured(**{gate.DENSE_ACCURACY: 0.0, gate.CANDIDATE_ACCURACY: 0.0}), config)
  assert not verdict.blessed
  assert "could not be computed" in verdict.reasons[0]


@pytest.mark.parametrize("ratio_bytes, blessed", [(100, True), (101, False)])
def test_compression_ratio_boundary(ratio_bytes, blessed):
  verdict = gate.decide(_measured(**{gate.CANDIDATE_GZIP_BYTES: ratio_bytes}), CONFIG)
  check = _check(verdict, gate.COMPRESSION_RATIO)
  assert check.passed is blessed and verdict.blessed is blessed
  assert check.measured == pytest.approx(1000 / ratio_bytes)
  if not blessed:
    assert verdict.reasons == ("compression_ratio 9.9 < 10.0",)


def test_compression_ratio_counts_gzip_bytes_not_raw_bytes():
  verdict = gate.decide(_measured(**{gate.CANDIDATE_BYTES: 10_000,
                                     gate.CANDIDATE_GZIP_BYTES: 50}), CONFIG)
  assert _check(verdict, gate.COMPRESSION_RATIO).measured == pytest.approx(20.0)


def test_summary_line_lists_failures_then_passes():
  verdict = gate.decide(_measured(**{gate.CANDIDATE_ACCURACY: 0.947,
                                     gate.DENSE_TFLITE_BYTES: 810}), CONFIG)
  assert verdict.summary_line() == (
      "NOT BLESSED: compression_ratio 8.1 < 10.0; accuracy_drop 0.003 <= 0.010 ok")


def test_production_check_only_when_production_present():
  without = gate.decide(_measured(), CONFIG)
  assert gate.PRODUCTION_DROP not in [c.name for c in without.checks]
  better = gate.decide(_measured(**{gate.PRODUCTION_ACCURACY: 0.99}), CONFIG)
  assert not better.blessed
  assert _check(better, gate.PRODUCTION_DROP).measured == pytest.approx(0.04)
  assert better.reasons == ("production_drop 0.040 > 0.010",)
  at_bound = gate.decide(_measured(**{gate.PRODUCTION_ACCURACY: 0.96}), CONFIG)
  assert at_bound.blessed and _check(at_bound, gate.PRODUCTION_DROP).passed


@pytest.mark.parametrize("key", [gate.CANDIDATE_ACCURACY, gate.DENSE_ACCURACY,
                                 gate.PRODUCTION_ACCURACY, gate.DENSE_TFLITE_BYTES,
                                 gate.CANDIDATE_GZIP_BYTES])
@pytest.mark.parametrize("value", [None, float("nan"), "absent"])
def test_missing_or_nan_metric_is_not_blessed_with_the_reason(key, value):
  measured = _measured(**{gate.PRODUCTION_ACCURACY: 0.95})
  if value == "absent" and key != gate.PRODUCTION_ACCURACY:
    del measured[key]
  else:
    measured[key] = None if value == "absent" else value
  verdict = gate.decide(measured, CONFIG)
  assert not verdict.blessed
  assert any(f"metric {key} could not be computed" in r for r in verdict.reasons), verdict.reasons
  assert f"metric {key} could not be computed" in verdict.summary_line()


def test_each_missing_metric_is_named_once_with_the_checks_needing_it():
  config = _point(max_relative_accuracy_drop=0.05)
  verdict = gate.decide(_measured(**{gate.CANDIDATE_ACCURACY: None, gate.DENSE_ACCURACY: None,
                                     gate.PRODUCTION_ACCURACY: 0.9}), config)
  assert verdict.reasons == (
      "metric candidate_accuracy could not be computed (needed by accuracy_drop, "
      "relative_accuracy_drop, production_drop)",
      "metric dense_accuracy could not be computed (needed by accuracy_drop, "
      "relative_accuracy_drop)")
  assert all(c.measured is None and not c.passed for c in verdict.checks
             if c.name != gate.COMPRESSION_RATIO)


def test_zero_candidate_size_is_not_a_pass():
  verdict = gate.decide(_measured(**{gate.CANDIDATE_GZIP_BYTES: 0}), CONFIG)
  assert not verdict.blessed
  assert "metric candidate_gzip_bytes (got 0) could not be computed" in verdict.reasons[0]


@pytest.mark.parametrize("passed", [True, False, None])
def test_sparsity_check(passed):
  verdict = gate.decide(_measured(**{gate.SPARSITY_PASSED: passed}), CONFIG)
  names = [c.name for c in verdict.checks]
  if passed is None:
    assert gate.SPARSITY not in names and verdict.blessed
  else:
    assert _check(verdict, gate.SPARSITY).passed is passed
    assert verdict.blessed is passed
  if passed is False:
    assert verdict.reasons == ("sparsity NOT_BLESSED by SparsityValidator",)


def test_errors_make_it_not_blessed_and_come_first():
  verdict = gate.decide(_measured(**{gate.CANDIDATE_ACCURACY: None}), CONFIG,
                        errors=["evaluation failed: RuntimeError: boom"])
  assert not verdict.blessed
  assert verdict.reasons[0] == "evaluation failed: RuntimeError: boom"
  assert "metric candidate_accuracy could not be computed" in verdict.reasons[1]


def test_verdict_to_dict_is_json_with_every_check():
  verdict = gate.decide(_measured(**{gate.CANDIDATE_ACCURACY: float("nan"),
                                     gate.SPARSITY_PASSED: True}), CONFIG)
  data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
  assert data["blessed"] is False
  assert {c["name"] for c in data["checks"]} == {gate.ACCURACY_DROP, gate.COMPRESSION_RATIO,
                                                 gate.SPARSITY}
  assert all(set(c) == {"name", "measured", "threshold", "passed"} for c in data["checks"])
  assert data["summary"] == verdict.summary_line()
  assert data["measured"][gate.CANDIDATE_ACCURACY] is None


@pytest.mark.parametrize("fields, message", [
    ({"min_compression_ratio": 1.0}, "min_compression_ratio must be > 1, got 1.0"),
    ({"min_compression_ratio": math.inf}, "min_compression_ratio must be > 1, got inf"),
    ({"max_accuracy_drop": -0.1}, "max_accuracy_drop must be in [0, 1], got -0.1"),
    ({"max_accuracy_drop": float("nan")}, "max_accuracy_drop must be in [0, 1], got nan"),
    ({"max_relative_accuracy_drop": 1.0},
     "max_relative_accuracy_drop must be in [0, 1) (0 turns it off), got 1.0"),
    ({"max_accuracy_drop": "0.01"}, "max_accuracy_drop must be a number, got '0.01'"),
])
def test_invalid_config_names_the_field(fields, message):
  with pytest.raises(ValueError) as error:
    gate.GateConfig(**fields).validate()
  assert str(error.value) == message
  with pytest.raises(ValueError):
    gate.decide(_measured(), _point(**fields))


@pytest.mark.parametrize("ratio, blessed", [(0.5, True), (0.5001, False)])
def test_latency_ratio_boundary(ratio, blessed):
  config = _point(max_latency_ratio=0.5)
  verdict = gate.decide(_measured(**{gate.LATENCY_RATIO: ratio}), config)
  check = _check(verdict, gate.LATENCY_RATIO)
  assert check.passed is blessed and verdict.blessed is blessed
  assert check.measured == ratio and check.threshold == 0.5
  if not blessed:
    assert verdict.reasons == ("latency_ratio 0.50 > 0.50",)


def test_latency_ratio_is_off_at_zero():
  verdict = gate.decide(_measured(**{gate.LATENCY_RATIO: 5.0}), CONFIG)
  assert verdict.blessed
  assert gate.LATENCY_RATIO not in [c.name for c in verdict.checks]


@pytest.mark.parametrize("value", ["absent", None, float("nan"), 0.0])
def test_missing_latency_ratio_is_not_blessed_when_checked(value):
  measured = _measured() if value == "absent" else _measured(**{gate.LATENCY_RATIO: value})
  verdict = gate.decide(measured, _point(max_latency_ratio=0.5))
  assert not verdict.blessed
  assert "metric latency_ratio" in verdict.reasons[0]
  assert "could not be computed (needed by latency_ratio)" in verdict.reasons[0]


@pytest.mark.parametrize("value", [-0.1, math.inf])
def test_invalid_max_latency_ratio_names_the_field(value):
  with pytest.raises(ValueError) as error:
    _point(max_latency_ratio=value).validate()
  assert str(error.value) == f"max_latency_ratio must be >= 0 (0 turns it off), got {value!r}"


def test_pipeline_config_rejects_a_negative_max_latency_ratio():
  base = {"pipeline_root": "runs/x/pipeline", "push": {"destination": "runs/x/serving"},
          "data": {"path": "runs/x/data", "embedded": "digits"}}
  config = config_lib.load(base=base, overrides=["gate.max_latency_ratio=0.6"])
  assert config.gate.max_latency_ratio == 0.6
  with pytest.raises(config_lib.ConfigError,
                     match=r"gate.max_latency_ratio: must be >= 0 \(0 turns it off\), got -1.0"):
    config_lib.load(base=base, overrides=["gate.max_latency_ratio=-1"])
