"""Heads beyond softmax: how each is resolved, scored, fine-tuned, checked and gated."""
import numpy as np
import pytest

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.components.tflite_converter import conversion

keras = model_io.keras()


def _model(units, activation=None, reshape=False):
  inputs = keras.Input((4,), name="x")
  out = keras.layers.Dense(units, activation=activation)(keras.layers.Dense(8, "relu")(inputs))
  if reshape:
    out = keras.layers.Reshape((units,))(out)
  return keras.Model(inputs, out)


@pytest.mark.parametrize("units, activation, reshape, expected", [
    (3, "softmax", False, heads.MULTICLASS),
    (3, None, False, heads.MULTICLASS_LOGITS),
    (1, "sigmoid", True, heads.BINARY),   # TFX's taxi model: Dense(1, sigmoid) then Reshape
])
def test_auto_reads_the_output_activation(units, activation, reshape, expected):
  assert heads.resolve(heads.AUTO, _model(units, activation, reshape)) == expected


def test_one_linear_unit_needs_to_be_told():
  with pytest.raises(heads.HeadError, match="set head to 'binary_logits' .* or 'regression'"):
    heads.resolve(heads.AUTO, _model(1))
  assert heads.resolve(heads.AUTO, _model(1), "rmse") == heads.REGRESSION
  assert heads.resolve(heads.BINARY_LOGITS, _model(1)) == heads.BINARY_LOGITS


def test_bad_head_and_metric_are_named():
  with pytest.raises(heads.HeadError, match=r"head must be one of \['auto', 'multiclass'"):
    heads.validate("sigmoid")
  with pytest.raises(heads.HeadError, match=r"metric must be one of \['mae', 'rmse'\] for head "
                                            r"'regression', got 'accuracy'"):
    heads.validate(heads.REGRESSION, "accuracy")
  with pytest.raises(heads.HeadError, match="head 'binary' needs one output unit"):
    heads.resolve(heads.BINARY, _model(3, "softmax"))


def test_scores():
  labels = np.array([1, 0, 1, 1])
  assert heads.score(heads.BINARY, "", np.array([[0.9], [0.2], [0.4], [0.6]]), labels) == 0.75
  assert heads.score(heads.BINARY_LOGITS, "", np.array([[2.], [-1.], [-0.5], [0.1]]),
                     labels) == 0.75
  assert heads.score(heads.MULTICLASS_LOGITS, "", np.array([[-1., 3.], [0., -2.]]),
                     np.array([1, 1])) == 0.5
  outputs = np.array([[1.0], [2.0], [5.0]])
  targets = np.array([1.0, 3.0, 2.0])
  assert heads.score(heads.REGRESSION, "mae", outputs, targets) == pytest.approx(4 / 3)
  assert heads.score(heads.REGRESSION, "rmse", outputs, targets) == pytest.approx(np.sqrt(10 / 3))


def test_binary_agreement_compares_decisions_not_probabilities():
  model = _model(1, "sigmoid")
  rng = np.random.default_rng(0)
  inputs = {"x": rng.normal(size=(200, 4)).astype(np.float32)}
  model_bytes, result = conversion.convert_and_check(
      model, conversion.ConversionConfig(quantization="int8"), inputs, inputs)
  assert result.kind == "top1" and result.passed and result.examples == 200
  # A regression head on the same output is held to max_abs_error instead.
  as_regression = conversion.agreement(model, model_bytes, inputs, head=heads.REGRESSION)
  assert as_regression.kind == "max_abs_error"


def test_gate_for_regression_checks_the_metric_increase():
  measured = {gate.CANDIDATE_ERROR: 0.52, gate.DENSE_ERROR: 0.50, gate.PRODUCTION_ERROR: 0.55,
              gate.DENSE_TFLITE_BYTES: 1000, gate.CANDIDATE_GZIP_BYTES: 50}
  config = gate.GateConfig(metric="mae", max_metric_increase=0.03, min_compression_ratio=10,
                           accuracy_decision="point")
  verdict = gate.decide(measured, config)
  assert verdict.blessed, verdict.summary_line()
  assert [c.name for c in verdict.checks][:2] == [gate.METRIC_INCREASE, gate.PRODUCTION_INCREASE]
  verdict = gate.decide({**measured, gate.CANDIDATE_ERROR: 0.56}, config)
  assert not verdict.blessed
  assert "metric_increase 0.0600 > 0.0300" in verdict.summary_line()
  missing = gate.decide({**measured, gate.CANDIDATE_ERROR: None}, config)
  assert "metric candidate_error could not be computed" in missing.summary_line()
  with pytest.raises(ValueError, match=r"metric must be one of \['accuracy', 'mae', 'rmse'\]"):
    gate.GateConfig(metric="mse").validate()


def test_search_scores_regression_by_its_error_metric():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfx_bonsai.components.prune_trainer import pruning  # pylint: disable=g-import-not-at-top
  from tfx_bonsai.components.prune_trainer import search  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(512, 4)).astype(np.float32)
  y = (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32)).astype(np.float32)
  model = _model(1)
  model.compile("adam", "mse")
  model.fit(x, y, epochs=20, batch_size=32, verbose=0)
  train = tf.data.Dataset.from_tensor_slices((x[:384], y[:384])).batch(32)
  evaluation = tf.data.Dataset.from_tensor_slices((x[384:], y[384:])).batch(32)
  found = search.search(model, train, evaluation, 384, pruning.PruningConfig(batch_size=32),
                        search.SearchConfig(levels=(0.3, 0.6), max_accuracy_drop=0.2,
                                            epochs_per_trial=1),
                        loss="mse", head=heads.REGRESSION, metric=heads.MAE,
                        metrics=heads.keras_metrics(heads.REGRESSION, heads.MAE))
  dense_mae = heads.score(heads.REGRESSION, heads.MAE, model.predict(x[384:], verbose=0), y[384:])
  assert found.dense_accuracy == pytest.approx(dense_mae, rel=1e-4)
  for trial in found.trials:  # `accuracy` holds the MAE, `accuracy_drop` its increase
    assert trial.accuracy_drop == pytest.approx(trial.accuracy - dense_mae, abs=1e-5)
    # Accepted on the paired interval's upper end (the search's default, `confident`).
    assert trial.examples == 128 and trial.drop_ci_low < trial.accuracy_drop < trial.drop_ci_high
    assert trial.accepted == (trial.drop_ci_high <= 0.2 + 1e-9)


def test_paired_outcomes_take_the_heads_decision():
  from tfx_bonsai.components.compression_evaluator import extractors  # pylint: disable=g-import-not-at-top
  assert extractors.is_correct([0.3], 1, heads.BINARY_LOGITS)      # a logit: class 1 above 0
  assert not extractors.is_correct([0.3], 1, heads.BINARY)         # a probability: above 0.5
  assert extractors.is_correct([-0.2], 0, heads.BINARY_LOGITS)
  assert extractors.is_correct([0.3], 0)                           # issue 14's default: binary
  assert extractors.is_correct([-1.0, 2.0, 0.5], 1, heads.MULTICLASS_LOGITS)
  with pytest.raises(heads.HeadError, match="paired outcomes need a classifier head"):
    extractors.is_correct([0.3], 1, heads.REGRESSION)


def test_gate_keeps_the_error_checks_for_regression_whatever_the_accuracy_decision():
  # Paired residuals: the candidate's are the dense model's plus a little, 0.02 more MAE.
  dense = np.linspace(-1.0, 1.0, 400)
  candidate = dense + np.where(dense >= 0, 0.02, -0.02)
  paired = {"metric": "mae", "n": 400, "baseline_sum": float(np.abs(dense).sum()),
            "baseline_sum_sq": float((dense ** 2).sum()),
            "candidate_sum": float(np.abs(candidate).sum()),
            "candidate_sum_sq": float((candidate ** 2).sum()),
            "cross_sum": float((np.abs(dense) * np.abs(candidate)).sum())}
  measured = {gate.CANDIDATE_ERROR: float(np.abs(candidate).mean()),
              gate.DENSE_ERROR: float(np.abs(dense).mean()), gate.DENSE_PAIRED_ERRORS: paired,
              gate.DENSE_TFLITE_BYTES: 1000, gate.CANDIDATE_GZIP_BYTES: 50}
  config = gate.GateConfig(metric="mae", max_metric_increase=0.03, min_compression_ratio=10,
                           accuracy_decision="confident", min_accuracy=0.9)
  verdict = gate.decide(measured, config)
  assert verdict.blessed, verdict.summary_line()
  assert [c.name for c in verdict.checks] == [gate.METRIC_INCREASE, gate.COMPRESSION_RATIO]
  # Every example's error grew by exactly 0.02: the interval is that point.
  increase = verdict.checks[0]
  assert (increase.paired.low, increase.paired.high) == pytest.approx((0.02, 0.02), abs=1e-6)
  assert not gate.decide(measured, config.replace(max_metric_increase=0.01)).blessed
  # Without the paired errors `confident` cannot decide.
  del measured[gate.DENSE_PAIRED_ERRORS]
  assert gate.DENSE_PAIRED_ERRORS in gate.decide(measured, config).summary_line()
  # A classifier head with the same settings is decided on paired outcomes, which it lacks.
  accuracy = gate.decide({gate.CANDIDATE_ACCURACY: 0.95, gate.DENSE_ACCURACY: 0.95,
                          gate.DENSE_TFLITE_BYTES: 1000, gate.CANDIDATE_GZIP_BYTES: 50},
                         config.replace(metric="accuracy"))
  assert not accuracy.blessed
  assert gate.DENSE_PAIRED_COUNTS in accuracy.summary_line()


def test_search_scores_a_logit_on_its_side_of_zero():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfx_bonsai.components.prune_trainer import search  # pylint: disable=g-import-not-at-top
  model = _model(1)
  last = model.layers[-1]
  last.set_weights([np.zeros_like(last.get_weights()[0]), np.full((1,), 0.3, np.float32)])
  data = tf.data.Dataset.from_tensor_slices(
      (np.ones((8, 4), np.float32), np.ones((8,), np.int64))).batch(4)
  assert search.correct(model, data, heads.BINARY_LOGITS).all()   # logit 0.3 > 0: class 1
  assert not search.correct(model, data, heads.BINARY).any()      # probability 0.3 < 0.5
  with pytest.raises(ValueError, match="regression head has no right or wrong"):
    search.correct(model, data, heads.REGRESSION)
