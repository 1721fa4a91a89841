"""Allocation by measured layer sensitivity: each layer pruned alone on the selection data,
the sparsity given to the layers that tolerate it."""
import json
import os

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from tfx_bonsai.components.prune_trainer import executor as executor_lib
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search
from tfx_bonsai.components.prune_trainer import sensitivity
from tfx_bonsai.components.prune_trainer import spec

TRAIN, SELECTION = slice(0, 1200), slice(1200, 1500)


def _ds(x, y, batch=64):
  return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


@pytest.fixture(scope="module")
def bottleneck(digits_arrays):
  """784 -> 'wide' 128 -> 'bottleneck' 6 -> 'head' 10: the wide layer is redundant, the
  six-unit bottleneck fragile; trained on the first 1,200 digits."""
  images, labels = digits_arrays
  tf.keras.utils.set_random_seed(0)
  keras = tf.keras
  inputs = keras.Input((784,), name="image")
  x = keras.layers.Dense(128, activation="relu", name="wide")(inputs)
  x = keras.layers.Dense(6, activation="relu", name="bottleneck")(x)
  model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="head")(x))
  model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
  model.fit(images[TRAIN], labels[TRAIN], epochs=8, batch_size=32, verbose=0)
  return model, images, labels


def _copy(model):
  """Pruning shares weights with the model it wraps: each test prunes its own copy."""
  clone = tf.keras.models.clone_model(model)
  clone.set_weights(model.get_weights())
  clone.compile(loss="sparse_categorical_crossentropy")
  return clone


def _curve(increases):
  return sensitivity.LayerSensitivity(100, list(sensitivity.SPARSITIES), list(increases), [0.0] * 8)


def test_allocation_gives_the_sparsity_to_tolerant_layers_and_meets_the_level():
  measured = sensitivity.Sensitivity(
      {"fragile": _curve([0.1, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
       "tolerant": _curve([0.0, 0.0, 0.0, 0.01, 0.05, 0.2, 0.5, 3.0]),
       "big": sensitivity.LayerSensitivity(800, list(sensitivity.SPARSITIES),
                                           [0.0, 0.0, 0.02, 0.05, 0.1, 0.3, 1.0, 4.0], [0.0] * 8)},
      dense_loss=0.1, dense_metric=0.9, metric="accuracy", examples=300, seconds=0.0)
  for level in (0.3, 0.6, 0.9):
    targets = measured.allocate(level, max_layer_sparsity=0.99)
    assert targets["fragile"] < targets["tolerant"]
    overall = (100 * targets["fragile"] + 100 * targets["tolerant"] + 800 * targets["big"]) / 1000
    assert overall == pytest.approx(level, abs=1e-4)
  # Layers that measured no increase share a low level evenly; the fragile one stays dense.
  low = measured.allocate(0.3, 0.99)
  assert low["fragile"] < 0.01 and low["tolerant"] == pytest.approx(low["big"], abs=1e-3)
  # Higher, the shared threshold passes the big layer's 0.02 at 70 % before the tolerant one's.
  high = measured.allocate(0.9, 0.99)
  assert high["fragile"] < high["big"] < high["tolerant"]
  capped = measured.allocate(0.995, max_layer_sparsity=0.99)
  assert all(s == pytest.approx(0.99) for s in capped.values())
  with pytest.raises(sensitivity.SensitivityError, match=r"target must be in \[0, 1\)"):
    measured.allocate(1.0, 0.99)


def test_measured_on_the_selection_data_the_bottleneck_is_fragile(bottleneck):
  model, images, labels = bottleneck
  before = [w.copy() for w in model.get_weights()]
  selection = _ds(images[SELECTION], labels[SELECTION])
  measured = pruning.measure_sensitivity(model, ["wide", "bottleneck", "head"], selection)
  assert [w.tolist() for w in model.get_weights()] == [w.tolist() for w in before]  # restored
  # Scored on the 300 selection examples, not the training ones.
  assert measured.examples == 300
  assert measured.dense_metric == pytest.approx(search.accuracy(model, selection))
  assert measured.dense_metric != pytest.approx(search.accuracy(
      model, _ds(images[TRAIN], labels[TRAIN])))
  wide, narrow = measured.layers["wide"], measured.layers["bottleneck"]
  assert (wide.weights, narrow.weights) == (784 * 128, 128 * 6)
  at_90 = sensitivity.SPARSITIES.index(0.9)
  assert narrow.loss_increase[at_90] > 3 * max(wide.loss_increase[at_90], 0.01)
  assert wide.metric_drop[-1] > 0.5        # a layer pruned to nothing breaks the model
  targets = measured.allocate(0.8, pruning.MAX_LAYER_SPARSITY)
  assert targets["bottleneck"] < targets["wide"]
  counts = {n: l.weights for n, l in measured.layers.items()}
  overall = sum(counts[n] * targets[n] for n in counts) / sum(counts.values())
  assert overall == pytest.approx(0.8, abs=1e-3)
  report = json.loads(json.dumps(measured.report()))
  assert report["layers"]["bottleneck"]["sparsities"] == list(sensitivity.SPARSITIES)


def test_prune_with_sensitivity_meets_the_target_and_spares_the_bottleneck(bottleneck):
  model, images, labels = bottleneck
  config = pruning.PruningConfig(target_sparsity=0.8, epochs=1, allocation="sensitivity")
  with pytest.raises(pruning.PruningError, match="allocation 'sensitivity' measures each layer"):
    pruning.prune(model, _ds(images[TRAIN], labels[TRAIN], 32), None, 1200, config)
  result = pruning.prune(_copy(model), _ds(images[TRAIN], labels[TRAIN], 32),
                         _ds(images[SELECTION], labels[SELECTION]), 1200, config)
  assert result.sparsity == pytest.approx(0.8, abs=0.01)
  assert result.layer_sparsity["bottleneck"] < result.layer_sparsity["wide"]
  assert result.sensitivity.examples == 300


def test_search_measures_once_and_allocates_every_trial_by_sensitivity(bottleneck):
  model, images, labels = bottleneck
  config = search.SearchConfig(levels=(0.5, 0.8), max_accuracy_drop=1.0, max_trials=2,
                               epochs_per_trial=1)
  found = search.search(_copy(model), _ds(images[TRAIN], labels[TRAIN], 32),
                        _ds(images[SELECTION], labels[SELECTION]), 1200,
                        pruning.PruningConfig(allocation="sensitivity"), config)
  assert [t.level for t in found.trials] == [0.5, 0.8]
  for trial in found.trials:
    assert trial.sparsity == pytest.approx(trial.level, abs=0.01)
    assert trial.layer_sparsity["bottleneck"] < trial.layer_sparsity["wide"]
  report = found.report()
  assert report["allocation"] == "sensitivity"
  assert report["sensitivity"]["examples"] == 300
  assert set(report["sensitivity"]["layers"]) == {"wide", "bottleneck", "head"}


def test_uniform_in_the_search_prunes_every_layer_to_the_level(bottleneck):
  model, images, labels = bottleneck
  found = search.search(_copy(model), _ds(images[TRAIN], labels[TRAIN], 32),
                        _ds(images[SELECTION], labels[SELECTION]), 1200,
                        pruning.PruningConfig(allocation="uniform"),
                        search.SearchConfig(levels=(0.6,), max_accuracy_drop=1.0, max_trials=1,
                                            epochs_per_trial=1))
  assert found.report()["allocation"] == "uniform" and found.report()["sensitivity"] is None
  for sparsity in found.trials[0].layer_sparsity.values():
    assert sparsity == pytest.approx(0.6, abs=0.01)


def test_bad_allocation_is_refused_naming_the_allowed_values():
  with pytest.raises(pruning.PruningError, match=(
      r"allocation must be one of \['', 'uniform', 'global_magnitude', 'sensitivity'\], "
      r"got 'fisher'")):
    pruning.PruningConfig(allocation="fisher").validate()
  with pytest.raises(pruning.PruningError, match="'sensitivity' sets a sparsity per layer"):
    pruning.PruningConfig(allocation="sensitivity", sparsity_m_by_n="2:4").validate()


def test_executor_records_the_sensitivity_of_the_eval_split(tmp_path, small_dense_model,
                                                           digits_examples, digits_schema):
  pruned, run = standard_artifacts.Model(), standard_artifacts.ModelRun()
  pruned.uri, run.uri = str(tmp_path / "pruned"), str(tmp_path / "run")
  executor_lib.Executor().Do(
      {spec.EXAMPLES_KEY: [digits_examples], spec.MODEL_KEY: [small_dense_model],
       spec.SCHEMA_KEY: [digits_schema]}, {spec.PRUNED_MODEL_KEY: [pruned], spec.MODEL_RUN_KEY: [run]},
      {spec.LABEL_KEY: "label", spec.TRAIN_SPLIT_KEY: "train", spec.EVAL_SPLIT_KEY: "eval",
       spec.EPOCHS_KEY: 1, spec.TARGET_SPARSITY_KEY: 0.8, spec.ALLOCATION_KEY: "sensitivity"})
  assert pruned.get_float_custom_property(spec.SPARSITY_PROPERTY) == pytest.approx(0.8, abs=0.01)
  report = json.load(open(os.path.join(pruned.uri, executor_lib.REPORT_FILE)))
  assert report["allocation"] == "sensitivity"
  assert report["sensitivity"]["examples"] == report["eval_examples"] == 360
  assert set(report["sensitivity"]["layers"]) == set(report["layer_sparsity"])
  assert len(set(round(s, 3) for s in report["layer_sparsity"].values())) > 1   # not uniform
