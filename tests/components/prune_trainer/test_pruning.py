import numpy as np
import pytest
import tensorflow as tf

from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.pipeline.models import digits_trainer


def _dataset(images, labels, batch_size=32):
  return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


@pytest.fixture(scope="module")
def trained(digits_arrays):
  images, labels = digits_arrays
  model = digits_trainer.build_seed_cnn(width=0.25)
  model.fit(images[:1437], labels[:1437], epochs=2, batch_size=32, verbose=0)
  return model


def test_explicit_end_step_reproduces_the_seed():
  seed = pruning.plan_schedule(pruning.PruningConfig(frequency=100, end_step=180), 1437)
  assert seed.end_step == 180 and seed.frequency == 100
  with pytest.raises(pruning.PruningError, match="end_step must be > begin_step=10"):
    pruning.PruningConfig(begin_step=10, end_step=5).validate()


def test_seed_frequency_never_reaches_the_target_but_the_plan_does():
  # The seed: 1437 examples / 32 = 45 steps x 4 epochs, frequency 100.
  seed = pruning.plan_schedule(pruning.PruningConfig(frequency=100), 1437)
  assert (seed.steps_per_epoch, seed.total_steps) == (45, 180)
  assert seed.end_step == 100  # the last event the seed's frequency can reach
  auto = pruning.plan_schedule(pruning.PruningConfig(), 1437)
  assert auto.frequency == 11 and auto.end_step == 176 and auto.end_step < auto.total_steps
  assert (auto.end_step - auto.begin_step) % auto.frequency == 0


def test_plan_on_tiny_data_prunes_every_step():
  plan = pruning.plan_schedule(pruning.PruningConfig(epochs=1, batch_size=8), 40)
  assert plan.total_steps == 5 and plan.frequency == 1 and plan.end_step == 4


@pytest.mark.parametrize("change,message", [
    ({"target_sparsity": 1.0}, r"target_sparsity must be in \[0, 1\), got 1.0"),
    ({"target_sparsity": -0.1}, r"target_sparsity must be in \[0, 1\)"),
    ({"initial_sparsity": 0.95}, r"initial_sparsity must be in \[0, target_sparsity=0.9\]"),
    ({"schedule": "cubic"}, r"schedule must be one of \['polynomial', 'constant'\], got 'cubic'"),
    ({"epochs": 0}, r"epochs must be >= 1, got 0"),
    ({"batch_size": -4}, r"batch_size must be >= 1"),
    ({"learning_rate": 0.0}, r"learning_rate must be > 0"),
    ({"sparsity_m_by_n": "4:2"}, r"sparsity_m_by_n must be '' or 'M:N'"),
    ({"pruning_policy": "gpu"}, r"pruning_policy must be one of \['', 'xnnpack'\]"),
    ({"pruning_policy": "xnnpack", "sparsity_m_by_n": "2:4"}, r"cannot be combined"),
    ({"include_layers": ("dense[",)}, r"include_layers 'dense\[' is not a valid regular"),
])
def test_invalid_config_names_the_field(change, message):
  import dataclasses
  with pytest.raises(pruning.PruningError, match=message):
    dataclasses.replace(pruning.PruningConfig(), **change).validate()


def test_begin_step_after_the_fine_tune_is_refused():
  with pytest.raises(pruning.PruningError, match=r"begin_step must be < 179 .*180 steps"):
    pruning.plan_schedule(pruning.PruningConfig(begin_step=500), 1437)


def test_frequency_beyond_the_fine_tune_is_refused():
  with pytest.raises(pruning.PruningError, match=r"frequency must be <= 179"):
    pruning.plan_schedule(pruning.PruningConfig(frequency=500), 1437)


def test_select_layers_respects_include_and_exclude(trained):
  kind = lambda names: [type(trained.get_layer(n)).__name__ for n in names]
  every = pruning.select_layers(trained, pruning.PruningConfig())
  assert kind(every) == ["Conv2D", "BatchNormalization", "Conv2D", "Dense", "Dense"]
  dense_names = [n for n in every if n.startswith("dense")]
  only_dense = pruning.select_layers(trained, pruning.PruningConfig(include_layers=("dense.*",)))
  assert only_dense == dense_names
  no_convs = pruning.select_layers(trained, pruning.PruningConfig(exclude_layers=("conv2d.*",)))
  assert kind(no_convs) == ["BatchNormalization", "Dense", "Dense"]


def test_include_that_matches_nothing_prunable_is_refused(trained):
  with pytest.raises(pruning.PruningError, match="no prunable layer selected.*include_layers"):
    pruning.select_layers(trained, pruning.PruningConfig(include_layers=("nothing",)))


def test_unprunable_layer_is_named_with_what_to_do():
  keras = tf.keras

  class Scale(keras.layers.Layer):
    def build(self, shape):
      self.w = self.add_weight(name="w", shape=(shape[-1],))

    def call(self, x):
      return x * self.w

  inputs = keras.Input((4,), name="x")
  outputs = keras.layers.Dense(2)(Scale(name="scale")(inputs))
  model = keras.Model(inputs, outputs)
  with pytest.raises(pruning.PruningError, match=r"layer 'scale' \(Scale\) cannot be pruned.*exclude_layers"):
    pruning.select_layers(model, pruning.PruningConfig())
  assert pruning.select_layers(model, pruning.PruningConfig(exclude_layers=("scale",)))


def test_subclassed_model_is_refused():
  class Net(tf.keras.Model):
    def __init__(self):
      super().__init__()
      self.d = tf.keras.layers.Dense(2)

    def call(self, x):
      return self.d(x)

  net = Net()
  net(tf.zeros((1, 3)))
  with pytest.raises(pruning.PruningError, match="subclassed Keras model.*Functional"):
    pruning.check_model(net)


def test_prune_reaches_target_and_keeps_accuracy(trained, digits_arrays):
  images, labels = digits_arrays
  model = tf.keras.models.clone_model(trained)
  model.set_weights(trained.get_weights())
  model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
  _, dense_accuracy = model.evaluate(images[1437:], labels[1437:], verbose=0)
  config = pruning.PruningConfig(target_sparsity=0.8, epochs=2)
  result = pruning.prune(model, _dataset(images[:1437], labels[:1437]),
                         _dataset(images[1437:], labels[1437:]), 1437, config)
  assert result.sparsity >= 0.79
  assert not any("prune_low_magnitude" in l.name for l in result.model.layers)  # stripped
  assert len(result.model.get_weights()) == len(trained.get_weights())
  _, accuracy = result.model.evaluate(images[1437:], labels[1437:], verbose=0)
  assert accuracy >= dense_accuracy - 0.05, (accuracy, dense_accuracy)
  assert len(result.history["loss"]) == 2 and "val_accuracy" in result.history


def test_m_by_n_pruning_gives_two_of_four(trained, digits_arrays):
  images, labels = digits_arrays
  model = tf.keras.models.clone_model(trained)
  model.set_weights(trained.get_weights())
  dense = next(l.name for l in model.layers if isinstance(l, tf.keras.layers.Dense))
  config = pruning.PruningConfig(sparsity_m_by_n="2:4", epochs=1, include_layers=(dense,))
  result = pruning.prune(model, _dataset(images[:256], labels[:256]), None, 256, config)
  kernel = result.model.get_layer(dense).kernel.numpy()  # [in, out]; groups of 4 along in
  groups = np.abs(kernel.T.reshape(kernel.shape[1], -1, 4)) > 0
  assert groups.sum(axis=-1).max() <= 2
  assert result.sparsity == pytest.approx(0.5, abs=0.01)


def test_empty_train_split_is_named():
  with pytest.raises(pruning.PruningError, match="the train split is empty"):
    pruning.plan_schedule(pruning.PruningConfig(), 0)
