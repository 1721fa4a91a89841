"""scikit-learn's digits (ships with scikit-learn), upsampled to 28x28, as tf.Examples.

Features: `image` (784 floats in [0, 1], row-major 28x28) and `label` (int64, 0-9).
"""
import os

import numpy as np
import tensorflow as tf

IMAGE_KEY = "image"
LABEL_KEY = "label"
IMAGE_SIZE = 28
NUM_CLASSES = 10
FILE_NAME = "digits.tfrecord"


def load_digits_28(repeat: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Returns (images [n, 784] float32 in [0, 1], labels [n] int64).

  The 8x8 images are upsampled bilinearly to 28x28. `repeat` > 1 tiles the set with
  a small deterministic pixel jitter, for benchmarks that need more examples.
  """
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  small = digits.images.astype(np.float32)[..., None] / 16.0
  images = tf.image.resize(small, (IMAGE_SIZE, IMAGE_SIZE), method="bilinear").numpy()
  images = np.clip(images.reshape(len(images), -1), 0.0, 1.0)
  labels = digits.target.astype(np.int64)
  if repeat > 1:
    rng = np.random.default_rng(0)
    jitter = [images] + [np.clip(images + rng.normal(0, 0.02, images.shape), 0, 1).astype(np.float32)
                         for _ in range(repeat - 1)]
    images, labels = np.concatenate(jitter), np.tile(labels, repeat)
  return images.astype(np.float32), labels


def to_example(image: np.ndarray, label: int) -> tf.train.Example:
  return tf.train.Example(features=tf.train.Features(feature={
      IMAGE_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=image.tolist())),
      LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
  }))


def export_tfrecord(directory: str, repeat: int = 1) -> str:
  """Writes the digits as one TFRecord file in `directory` (for ImportExampleGen).

  Writes to a temporary name and renames, so a reader never sees half a file.
  Returns the file's path. Does nothing when the file already exists.
  """
  path = os.path.join(directory, FILE_NAME)
  if tf.io.gfile.exists(path):
    return path
  tf.io.gfile.makedirs(directory)
  images, labels = load_digits_28(repeat)
  tmp = path + ".partial"
  with tf.io.TFRecordWriter(tmp) as writer:
    for image, label in zip(images, labels):
      writer.write(to_example(image, label).SerializeToString())
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path
