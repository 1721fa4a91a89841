"""The gate's verdict as TFMA's `ValidationResult`, where `tfma.load_validation_result` reads it.

TFX's Evaluator writes its checks as one ValidationResult record in the TFRecord file
`validations` of its evaluation; the gate writes its own there the same way (replacing the
empty one TFMA writes for an eval config without thresholds), so TFX tooling and notebooks
see why a candidate was refused: `validation_ok`, and one failure per reason with its message.
"""
import math
import os

import tensorflow as tf
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.proto import metrics_for_slice_pb2
from tensorflow_model_analysis.proto import validation_result_pb2

from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.components.compression_evaluator import spec

VALIDATIONS_FILE = tfma_constants.VALIDATIONS_KEY   # "validations", TFMA's file name
GATE_FAILURE = "compression_gate"   # the metric name of a reason no single check names


def _failure(reason: str, check) -> validation_result_pb2.ValidationFailure:
  failure = validation_result_pb2.ValidationFailure(message=reason)
  failure.metric_key.name = check.name if check is not None else GATE_FAILURE
  failure.metric_key.model_name = spec.CANDIDATE_MODEL_NAME
  if check is not None and check.measured is not None and math.isfinite(check.measured):
    # A `confident` paired check decided on its interval's upper end: that is the value held
    # against the threshold (the point drop is in the message).
    decided_on = (check.paired.high if check.paired is not None and check.decision == gate.CONFIDENT
                  else check.measured)
    failure.metric_value.double_value.value = float(decided_on)
    bound = config_pb2.GenericValueThreshold()
    (bound.upper_bound if check.op == "<=" else bound.lower_bound).value = float(check.threshold)
    failure.metric_threshold.value_threshold.CopyFrom(bound)
  return failure


def validation_result(verdict: gate.Verdict) -> validation_result_pb2.ValidationResult:
  """`validation_ok` = blessed; one failure (on the overall slice) per reason, in order."""
  result = validation_result_pb2.ValidationResult(validation_ok=verdict.blessed)
  if verdict.reasons:
    failed = {c.describe(): c for c in verdict.checks if not c.passed}
    for_slice = result.metric_validations_per_slice.add()
    for_slice.slice_key.CopyFrom(metrics_for_slice_pb2.SliceKey())
    for reason in verdict.reasons:
      for_slice.failures.append(_failure(reason, failed.get(reason)))
  return result


def write_validation_result(output_uri: str, verdict: gate.Verdict) -> str:
  """Writes `validations` (one ValidationResult record) in `output_uri`; returns its path.

  Any other `validations*` file there is removed first: TFMA's loader reads exactly one.
  """
  tf.io.gfile.makedirs(output_uri)
  for stale in tf.io.gfile.glob(os.path.join(output_uri, VALIDATIONS_FILE + "*")):
    tf.io.gfile.remove(stale)
  path = os.path.join(output_uri, VALIDATIONS_FILE)
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(validation_result(verdict).SerializeToString())
  return path
