import numpy as np

from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.models import digits_trainer


def test_digits_are_28x28_in_unit_range(digits_arrays):
  images, labels = digits_arrays
  assert images.shape == (1797, 784)
  assert 0.0 <= images.min() and images.max() <= 1.0
  assert set(np.unique(labels)) == set(range(10))


def test_tiny_seed_cnn_beats_chance_by_a_wide_margin(digits_arrays):
  images, labels = digits_arrays
  rng = np.random.default_rng(0)
  order = rng.permutation(len(labels))
  train, test = order[:1437], order[1437:]
  model = digits_trainer.build_seed_cnn(width=0.25)
  model.fit(images[train], labels[train], epochs=3, batch_size=32, verbose=0)
  _, accuracy = model.evaluate(images[test], labels[test], verbose=0)
  assert accuracy > 0.8, accuracy  # chance is 0.1


def test_export_tfrecord_writes_every_example_once(tmp_path):
  path = digits.export_tfrecord(str(tmp_path))
  import tensorflow as tf
  records = list(tf.data.TFRecordDataset(path))
  assert len(records) == 1797
  first = tf.train.Example.FromString(records[0].numpy())
  assert len(first.features.feature[digits.IMAGE_KEY].float_list.value) == 784
  assert digits.export_tfrecord(str(tmp_path)) == path  # second call reuses the file
