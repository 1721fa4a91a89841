"""Shared fixtures: the digits set as real TFX artifacts on disk, and small trained models."""
import os

import tfx_bonsai  # noqa: F401  (Keras 2 before TensorFlow)
import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.models import digits_trainer

TRAIN_FRACTION = 0.8


@pytest.fixture(scope="session")
def digits_arrays():
  return digits.load_digits_28()


def split_indices(count, train_fraction=TRAIN_FRACTION):
  """(train, eval) indices of the arrays, as write_examples_artifact splits them."""
  order = np.random.default_rng(0).permutation(count)
  cut = int(count * train_fraction)
  return order[:cut], order[cut:]


def write_examples_artifact(uri, images, labels, train_fraction=TRAIN_FRACTION):
  """An Examples artifact laid out as ExampleGen writes it (Split-*/ gzipped TFRecords)."""
  examples = standard_artifacts.Examples()
  examples.uri = uri
  examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
  examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
  for split, idx in zip(("train", "eval"), split_indices(len(labels), train_fraction)):
    split_dir = artifact_utils.get_split_uri([examples], split)
    tf.io.gfile.makedirs(split_dir)
    with tf.io.TFRecordWriter(os.path.join(split_dir, "data_tfrecord-00000-of-00001.gz"),
                              options="GZIP") as writer:
      for i in idx:
        writer.write(digits.to_example(images[i], labels[i]).SerializeToString())
  return examples


@pytest.fixture(scope="session")
def digits_examples(tmp_path_factory, digits_arrays):
  """Examples artifact: digits, train 1437 / eval 360."""
  images, labels = digits_arrays
  return write_examples_artifact(str(tmp_path_factory.mktemp("examples")), images, labels)


@pytest.fixture(scope="session")
def digits_schema(tmp_path_factory, digits_examples):
  """Schema artifact as SchemaGen(infer_feature_shape=True) writes it."""
  schema = standard_artifacts.Schema()
  schema.uri = str(tmp_path_factory.mktemp("schema"))
  io_utils.write_pbtxt_file(os.path.join(schema.uri, "schema.pbtxt"),
                            examples_lib.infer_schema(digits_examples, "train"))
  return schema


def train_model_artifact(uri, images, labels, schema, width=0.25, epochs=3):
  model = digits_trainer.build_seed_cnn(width=width)
  model.fit(images, labels, epochs=epochs, batch_size=32, verbose=0)
  artifact = standard_artifacts.Model()
  artifact.uri = uri
  model_io.save_keras_model(model, model_io.serving_dir(uri),
                            examples_lib.feature_spec(examples_lib.load_schema(schema)))
  return artifact


@pytest.fixture(scope="session")
def small_dense_model(tmp_path_factory, digits_arrays, digits_schema):
  """Model artifact: the seed CNN at width 0.25, trained 3 epochs on the train split only of
  `digits_examples` (so its eval split is held out)."""
  images, labels = digits_arrays
  train, _ = split_indices(len(labels))
  return train_model_artifact(str(tmp_path_factory.mktemp("dense_model")), images[train],
                              labels[train], digits_schema)
