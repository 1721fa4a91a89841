"""What keeps a pruned model alive: distillation from the dense model, BatchNorm statistics
re-estimated after pruning, a cosine learning rate and a pruning end before the last steps."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.pipeline.models import digits_trainer


@pytest.fixture(scope="module")
def trained(digits_arrays):
  images, labels = digits_arrays
  tf.keras.utils.set_random_seed(0)
  model = digits_trainer.build_seed_cnn(width=0.25)
  model.fit(images[:1437], labels[:1437], epochs=2, batch_size=32, verbose=0)
  return model


def test_pruning_end_fixes_the_mask_for_the_last_steps():
  full = pruning.plan_schedule(pruning.PruningConfig(), 1437)
  early = pruning.plan_schedule(pruning.PruningConfig(pruning_end=0.75), 1437)
  assert early.total_steps == full.total_steps == 180
  assert early.end_step <= 0.75 * 180 < full.end_step
  assert (early.end_step - early.begin_step) % early.frequency == 0
  with pytest.raises(pruning.PruningError, match=r"pruning_end must be in \(0, 1\], got 0.0"):
    pruning.PruningConfig(pruning_end=0.0).validate()


def test_batchnorm_statistics_become_the_mean_of_the_batches():
  keras = model_io.keras()
  inputs = keras.Input((3,))
  dense = keras.layers.Dense(3, kernel_initializer="identity", use_bias=False)
  norm = keras.layers.BatchNormalization(momentum=0.99)
  model = keras.Model(inputs, norm(dense(inputs)))
  rng = np.random.default_rng(0)
  batches = [rng.normal(loc=[1.0, -2.0, 5.0], scale=[1.0, 3.0, 0.5], size=(16, 3)).astype(np.float32)
             for _ in range(4)]
  data = tf.data.Dataset.from_tensor_slices((np.concatenate(batches), np.zeros(64))).batch(16)
  assert pruning.recalibrate_batchnorm(model, data.repeat(), 4) == 4
  np.testing.assert_allclose(norm.moving_mean.numpy(), np.mean([b.mean(0) for b in batches], 0),
                             rtol=1e-5)
  np.testing.assert_allclose(norm.moving_variance.numpy(),
                             np.mean([b.var(0) for b in batches], 0), rtol=1e-4)
  assert norm.momentum == 0.99
  np.testing.assert_array_equal(dense.kernel.numpy(), np.eye(3))


def test_distillation_loss_is_the_softened_kl_or_mse():
  teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
  student = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], np.float32)
  expected = np.mean(np.sum(teacher * np.log(teacher / student), axis=1))
  assert float(pruning.distillation_loss(heads.MULTICLASS, teacher, student, 1.0)) == (
      pytest.approx(expected, rel=1e-5))
  soft_t, soft_s = teacher ** 0.5, student ** 0.5       # temperature 2 on probabilities
  soft_t, soft_s = soft_t / soft_t.sum(1, keepdims=True), soft_s / soft_s.sum(1, keepdims=True)
  assert float(pruning.distillation_loss(heads.MULTICLASS, teacher, student, 2.0)) == (
      pytest.approx(4 * np.mean(np.sum(soft_t * np.log(soft_t / soft_s), 1)), rel=1e-5))
  assert float(pruning.distillation_loss(heads.MULTICLASS, teacher, teacher)) == pytest.approx(0.0, abs=1e-6)
  assert float(pruning.distillation_loss(heads.REGRESSION, np.array([[1.0], [2.0]]),
                                         np.array([[2.0], [0.0]]))) == pytest.approx(2.5)


def test_distillation_follows_the_teacher_through_the_pruning_wrappers(trained, digits_arrays):
  """Labels shuffled: only the teacher knows the digits, so only a distilled student does."""
  images, labels = digits_arrays
  shuffled = np.random.default_rng(1).permutation(labels[:1437])
  held_out = tf.data.Dataset.from_tensor_slices((images[1437:], labels[1437:])).batch(128)
  teacher = trained.evaluate(held_out, verbose=0)[1]
  accuracy = {}
  for distillation in (1.0, 0.0):
    tf.keras.utils.set_random_seed(0)
    train = tf.data.Dataset.from_tensor_slices((images[:1437], shuffled)).shuffle(
        1437, seed=0).batch(32)
    config = pruning.PruningConfig(target_sparsity=0.5, initial_sparsity=0.2, epochs=2,
                                   distillation=distillation)
    copy = tf.keras.models.clone_model(trained)
    copy.set_weights(trained.get_weights())
    result = pruning.prune(copy, train, held_out, 1437, config)
    assert result.sparsity == pytest.approx(0.5, abs=0.02)
    accuracy[distillation] = result.history["val_accuracy"][-1]
  assert accuracy[1.0] > 0.7 * teacher and accuracy[0.0] < 0.3 * teacher, (teacher, accuracy)


def test_prune_with_every_recovery_means_reaches_the_target(trained, digits_arrays):
  images, labels = digits_arrays
  train = tf.data.Dataset.from_tensor_slices((images[:1437], labels[:1437])).batch(32)
  config = dataclasses.replace(
      pruning.PruningConfig(target_sparsity=0.8, epochs=2), distillation=0.5,
      batchnorm_batches=4, learning_rate_schedule="cosine", pruning_end=0.7)
  copy = tf.keras.models.clone_model(trained)
  copy.set_weights(trained.get_weights())
  result = pruning.prune(copy, train, None, 1437, config)
  assert result.sparsity == pytest.approx(0.8, abs=0.02)
  assert result.schedule.end_step <= 0.7 * result.schedule.total_steps
