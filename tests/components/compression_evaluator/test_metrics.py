"""The gate's batched TFMA metric (`metrics.PairedAccuracy`) against plain numpy on real
models' predictions, and its configuration errors."""
import json

import numpy as np
import pytest
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.proto import config_pb2

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import stats
from tfx_bonsai.components.compression_evaluator import executor
from tfx_bonsai.components.compression_evaluator import extractors
from tfx_bonsai.components.compression_evaluator import metrics
from tfx_bonsai.pipeline.models import digits_trainer

MODELS = ("candidate", "dense", "production")


@pytest.fixture(scope="module")
def predictions(digits_arrays, small_dense_model):
  """Real softmax outputs of three models on the digits: (labels, {model: scores})."""
  images, labels = digits_arrays
  trained = model_io.load_keras_model(small_dense_model.uri, compile=False)
  weak = digits_trainer.build_seed_cnn(width=0.25)
  weak.fit(images[:96], labels[:96], epochs=1, batch_size=32, verbose=0)
  weaker = digits_trainer.build_seed_cnn(width=0.25)  # untrained
  scores = {name: model.predict(images, verbose=0)
            for name, model in zip(MODELS, (weak, trained, weaker))}
  return labels, scores


def _computation(head, model_names):
  (computation,) = metrics.PairedAccuracy(head=head).computations(
      model_names=list(model_names), output_names=[""], sub_keys=[None])
  return computation


def _batches(labels, scores, model_names, sizes):
  """Batched extracts as the prediction step leaves them, cut at `sizes`."""
  cuts = np.cumsum(sizes)[:-1]
  for index in np.split(np.arange(len(labels)), cuts):
    if len(model_names) == 1:
      yield {tfma_constants.LABELS_KEY: labels[index, None],
             tfma_constants.PREDICTIONS_KEY: scores[model_names[0]][index]}
    else:
      yield {tfma_constants.LABELS_KEY: {m: labels[index, None] for m in model_names},
             tfma_constants.PREDICTIONS_KEY: {m: scores[m][index] for m in model_names}}


def _evaluate(computation, batches, shards=3):
  """Runs the preprocessor and combiner as TFMA does, over `shards` accumulators merged."""
  (preprocessor,) = computation.preprocessors
  combiner = computation.combiner
  accumulators = [combiner.create_accumulator() for _ in range(shards)]
  for i, batch in enumerate(batches):
    for combiner_input in preprocessor.process(batch):
      accumulators[i % shards] = combiner.add_input(accumulators[i % shards], combiner_input)
  merged = combiner.merge_accumulators(
      [combiner.merge_accumulators(accumulators[:1]), *accumulators[1:]])
  output = combiner.extract_output(merged)
  by_model = {}
  for key, value in output.items():
    by_model.setdefault(key.model_name, {})[key.name] = value
  return by_model


def test_accuracies_and_paired_counts_match_numpy_across_batches_and_merges(predictions):
  labels, scores = predictions
  right = {m: np.argmax(scores[m], axis=1) == labels for m in MODELS}
  assert 0 < right["candidate"].mean() < right["dense"].mean()  # the models differ
  sizes = [1, 7, 300, 2, len(labels) - 310]
  by_model = _evaluate(_computation(heads.MULTICLASS, MODELS), _batches(labels, scores, MODELS,
                                                                        sizes))

  for m in MODELS:
    assert by_model[m][metrics.EXAMPLE_COUNT] == len(labels)
    assert by_model[m][executor.ACCURACY_METRIC] == pytest.approx(right[m].mean(), abs=1e-12)
  outcomes = metrics.patterns_from_metrics(by_model["candidate"])
  assert outcomes["models"] == list(MODELS)
  assert sum(n for _, n in outcomes["patterns"]) == len(labels)
  for baseline in ("dense", "production"):
    counts = executor.paired_counts(outcomes, baseline, "candidate")
    base, cand = right[baseline], right["candidate"]
    assert (counts.n, counts.both, counts.baseline_only, counts.candidate_only) == (
        len(labels), int(np.sum(base & cand)), int(np.sum(base & ~cand)),
        int(np.sum(~base & cand)))
  assert executor.paired_counts(outcomes, "dense", "candidate").discordant > 0
  # Per class (label): the same table on that class's examples.
  assert sorted(outcomes["classes"], key=int) == [str(k) for k in range(10)]
  for k in range(10):
    counts = executor.paired_counts(outcomes, "dense", "candidate", str(k))
    base, cand = right["dense"][labels == k], right["candidate"][labels == k]
    assert (counts.n, counts.both, counts.baseline_only, counts.candidate_only) == (
        int(np.sum(labels == k)), int(np.sum(base & cand)), int(np.sum(base & ~cand)),
        int(np.sum(~base & cand)))


def test_one_model_is_counted_without_patterns(predictions):
  labels, scores = predictions
  by_model = _evaluate(_computation(heads.MULTICLASS, [""]),
                       _batches(labels, scores, ["dense"], [100, len(labels) - 100]))
  assert set(by_model) == {""}
  assert by_model[""] == {metrics.EXAMPLE_COUNT: len(labels), executor.ACCURACY_METRIC:
                          pytest.approx(np.mean(np.argmax(scores["dense"], 1) == labels))}


@pytest.mark.parametrize("head", [heads.BINARY, heads.BINARY_LOGITS, heads.MULTICLASS_LOGITS])
def test_each_head_decides_as_the_per_example_rule(predictions, head):
  labels, scores = predictions
  if head == heads.MULTICLASS_LOGITS:
    models = {m: np.log(s + 1e-9) for m, s in scores.items()}
    binary_labels = labels
  else:  # one unit: the probability (or its logit) of "digit >= 5"
    models = {m: s[:, 5:].sum(axis=1, keepdims=True) for m, s in scores.items()}
    if head == heads.BINARY_LOGITS:
      models = {m: np.log(p + 1e-9) - np.log(1 - p + 1e-9) for m, p in models.items()}
    binary_labels = (labels >= 5).astype(np.int64)
  by_model = _evaluate(_computation(head, MODELS),
                       _batches(binary_labels, models, MODELS, [500, len(labels) - 500]))
  for m in MODELS:
    expected = np.mean([extractors.is_correct(p, y, head)
                        for p, y in zip(models[m], binary_labels)])
    assert by_model[m][metrics.ACCURACY_NAMES[head]] == pytest.approx(expected, abs=1e-12)


def test_configuration_errors_name_the_problem():
  with pytest.raises(metrics.PairedAccuracyError, match="classifier head.*'regression'"):
    metrics.PairedAccuracy(head=heads.REGRESSION).computations(model_names=["a"])
  with pytest.raises(metrics.PairedAccuracyError, match="unweighted"):
    metrics.PairedAccuracy().computations(model_names=["a"], example_weighted=True)
  with pytest.raises(metrics.PairedAccuracyError, match="top-k"):
    metrics.PairedAccuracy().computations(model_names=["a"],
                                          sub_keys=[metric_types.SubKey(top_k=2)])
  with pytest.raises(heads.HeadError, match="batched evaluation needs a classifier or regression"):
    executor.make_eval_config("label", False, "ranking", batched=True)
  with pytest.raises(metrics.PairedErrorError, match="metric must be one of"):
    metrics.PairedError(metric="mse").computations(model_names=["a"])
  config = executor.make_eval_config("label", False, batched=True)
  config.slicing_specs.add(feature_keys=["label"])
  with pytest.raises(ValueError, match="sliced overall only"):
    extractors.make_extractors(config, {}, None, batched=True)


def test_unbatched_or_unkeyed_extracts_are_refused(predictions):
  labels, scores = predictions
  (preprocessor,) = _computation(heads.MULTICLASS, ["candidate", "dense"]).preprocessors
  with pytest.raises(metrics.PairedAccuracyError, match="keyed by model name"):
    next(preprocessor.process({tfma_constants.LABELS_KEY: labels[:4, None],
                               tfma_constants.PREDICTIONS_KEY: scores["dense"][:4]}))
  with pytest.raises(metrics.PairedAccuracyError, match=r"no predictions for model\(s\) \['dense'\]"):
    next(preprocessor.process({tfma_constants.LABELS_KEY: {"candidate": labels[:4, None],
                                                           "dense": labels[:4, None]},
                               tfma_constants.PREDICTIONS_KEY: {"candidate": scores["dense"][:4]}}))
  with pytest.raises(metrics.PairedAccuracyError, match="query_key"):
    next(preprocessor.process([{}]))


def test_the_gate_config_names_the_batched_metric():
  config = executor.make_eval_config("label", True, heads.BINARY_LOGITS, batched=True)
  (spec,) = config.metrics_specs
  (metric,) = spec.metrics
  assert (metric.class_name, metric.module) == ("PairedAccuracy", metrics.__name__)
  assert list(spec.model_names) == ["candidate", "dense", "production"]
  assert config_pb2.SlicingSpec() in config.slicing_specs


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_paired_error_sums_match_numpy_across_batches_and_merges(predictions, metric):
  """Regression: each model's 'prediction' is its probability of the true class, the label 1."""
  labels, scores = predictions
  values = {m: scores[m][np.arange(len(labels)), labels][:, None] for m in MODELS}
  ones = np.ones(len(labels))
  (computation,) = metrics.PairedError(metric=metric).computations(
      model_names=list(MODELS), output_names=[""], sub_keys=[None])
  by_model = _evaluate(computation, _batches(ones, values, MODELS, [1, 500, len(labels) - 501]))
  residuals = {m: 1.0 - values[m][:, 0].astype(np.float64) for m in MODELS}
  name = metrics.ERROR_NAMES[metric]
  for m in MODELS:
    expected = (np.mean(np.abs(residuals[m])) if metric == "mae"
                else np.sqrt(np.mean(residuals[m] ** 2)))
    assert by_model[m][name] == pytest.approx(expected, rel=1e-9)
    assert by_model[m][metrics.EXAMPLE_COUNT] == len(labels)
  for baseline in ("dense", "production"):
    paired = metrics.paired_errors_from_metrics(by_model["candidate"], metric, baseline)
    direct = stats.PairedErrors.from_residuals(metric, residuals[baseline],
                                               residuals["candidate"])
    assert paired.n == direct.n
    for field in metrics.ERROR_SUMS:
      assert getattr(paired, field) == pytest.approx(getattr(direct, field), rel=1e-9)
  assert metrics.paired_errors_from_metrics(by_model["candidate"], metric, "other") is None


def test_the_gate_config_names_the_regression_metric():
  config = executor.make_eval_config("label", False, heads.REGRESSION, "rmse", batched=True)
  (metric,) = config.metrics_specs[0].metrics
  assert (metric.class_name, json.loads(metric.config)) == ("PairedError", {"metric": "rmse"})


def test_slices_of_the_slicing_specs_are_counted_like_classes(predictions):
  labels, scores = predictions
  right = {m: np.argmax(scores[m], axis=1) == labels for m in MODELS}
  size = np.where(labels >= 5, b"big", b"small")      # a bytes feature, as tf.Examples give
  parity = (labels % 2)[:, None]                       # an int feature, one value per example
  specs = [{"feature_keys": ["size"]}, {"feature_values": {"size": "big"}},
           {"feature_keys": ["parity"], "feature_values": {"size": "small"}}]
  (computation,) = metrics.PairedAccuracy(slicing_specs=specs).computations(
      model_names=list(MODELS), output_names=[""], sub_keys=[None])

  def batches():
    for batch, index in zip(_batches(labels, scores, MODELS, [700, len(labels) - 700]),
                            np.split(np.arange(len(labels)), [700])):
      yield dict(batch, **{tfma_constants.FEATURES_KEY: {"size": size[index],
                                                         "parity": parity[index]}})

  outcomes = metrics.patterns_from_metrics(_evaluate(computation, batches())["candidate"])
  expected = {"size=big": labels >= 5, "size=small": labels < 5,
              "parity=0,size=small": (labels < 5) & (labels % 2 == 0),
              "parity=1,size=small": (labels < 5) & (labels % 2 == 1)}
  assert sorted(outcomes["slices"]) == sorted(expected)
  for name, members in expected.items():
    counts = executor.paired_counts(outcomes, "dense", "candidate", slice_name=name)
    base, cand = right["dense"][members], right["candidate"][members]
    assert (counts.n, counts.baseline_only, counts.candidate_only) == (
        int(members.sum()), int(np.sum(base & ~cand)), int(np.sum(~base & cand)))
  # Slices do not change the overall counts.
  assert sum(n for _, n in outcomes["patterns"]) == len(labels)
  with pytest.raises(metrics.PairedAccuracyError, match="slicing feature 'colour' is not in"):
    bad = metrics.PairedAccuracy(slicing_specs=[{"feature_keys": ["colour"]}]).computations(
        model_names=list(MODELS), output_names=[""], sub_keys=[None])[0]
    next(bad.preprocessors[0].process(next(batches())))
