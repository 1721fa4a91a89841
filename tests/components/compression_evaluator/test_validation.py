"""The gate's verdict as TFMA's ValidationResult, read back with `tfma.load_validation_result`."""
import os

import tensorflow as tf
import tensorflow_model_analysis as tfma

from tfx_bonsai.components.common import stats
from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.components.compression_evaluator import validation


def test_a_conversion_failure_is_one_failure_with_its_message(tmp_path):
  verdict = gate.Verdict(blessed=False, checks=(),
                         reasons=("conversion failed: no mode agreed",))
  validation.write_validation_result(str(tmp_path), verdict)
  result = tfma.load_validation_result(str(tmp_path))
  assert not result.validation_ok
  [failure] = result.metric_validations_per_slice[0].failures
  assert failure.message == "conversion failed: no mode agreed"
  assert failure.metric_key.name == validation.GATE_FAILURE


def test_each_failed_check_is_a_failure_and_stale_files_are_replaced(tmp_path):
  # TFMA's writer may leave a sharded validations file; the loader reads exactly one.
  with tf.io.TFRecordWriter(str(tmp_path / "validations-00000-of-00001")) as writer:
    writer.write(b"")
  checks = (gate.Check(gate.COMPRESSION_RATIO, 4.0, 10.0, False, ">=", digits=1),
            gate.Check(gate.LATENCY_RATIO, 1.5, 1.2, False, "<="),
            gate.Check(gate.SPARSITY, 1.0, 1.0, True, ">="))
  verdict = gate.Verdict(blessed=False, checks=checks,
                         reasons=tuple(c.describe() for c in checks if not c.passed))
  validation.write_validation_result(str(tmp_path), verdict)
  assert sorted(os.listdir(tmp_path)) == ["validations"]
  result = tfma.load_validation_result(str(tmp_path))
  failures = result.metric_validations_per_slice[0].failures
  assert [f.message for f in failures] == ["compression_ratio 4.0 < 10.0",
                                           "latency_ratio 1.500 > 1.200"]
  assert failures[0].metric_threshold.value_threshold.lower_bound.value == 10.0
  assert failures[1].metric_threshold.value_threshold.upper_bound.value == 1.2
  assert failures[1].metric_value.double_value.value == 1.5


def test_a_confident_paired_check_reports_the_upper_bound_it_was_decided_on(tmp_path):
  # 360 examples, the candidate loses 6 and gains 2: point drop 1.11 pp, yet the interval's
  # upper end is over a 2 pp budget, so `confident` refuses; the failure's value must be that
  # upper end, not the point drop, or it would read as within its own threshold.
  comparison = stats.compare(stats.PairedCounts(n=360, both=340, baseline_only=6,
                                                candidate_only=2), budget=0.02)
  assert comparison.drop < 0.02 < comparison.high
  check = gate.Check(gate.ACCURACY_DROP, comparison.drop, 0.02, False, "<=",
                     paired=comparison, decision=gate.CONFIDENT)
  verdict = gate.Verdict(blessed=False, checks=(check,), reasons=(check.describe(),))
  validation.write_validation_result(str(tmp_path), verdict)
  [failure] = tfma.load_validation_result(str(tmp_path)).metric_validations_per_slice[0].failures
  assert failure.metric_value.double_value.value == comparison.high
  assert failure.metric_value.double_value.value > (
      failure.metric_threshold.value_threshold.upper_bound.value)
