"""Shared by PruneTrainer's search tests: the narrow seed CNN trained on the digits' train rows."""
import pytest
import tensorflow as tf

from tfx_bonsai.pipeline.models import digits_trainer

TRAIN, SELECTION = slice(0, 1437), slice(1437, None)


def _ds(x, y, batch=32):
  return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


@pytest.fixture(scope="module")
def setup(digits_arrays):
  """(trained model, train batches, selection batches), built once per test module: pruning
  shares the model's weights, so each module gets its own."""
  images, labels = digits_arrays
  tf.keras.utils.set_random_seed(0)
  model = digits_trainer.build_seed_cnn(width=0.25)
  model.fit(images[TRAIN], labels[TRAIN], epochs=3, batch_size=32, verbose=0)
  return model, _ds(images[TRAIN], labels[TRAIN]), _ds(images[SELECTION], labels[SELECTION])
