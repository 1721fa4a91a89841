import os

import numpy as np
import pytest

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


@pytest.mark.parametrize("every_epoch, evaluations", [(False, 1), (True, 2)])
def test_run_fn_scores_the_eval_split_once_unless_asked_every_epoch(
    tmp_path, monkeypatch, digits_examples, digits_schema, every_epoch, evaluations):
  from tfx.components.trainer import fn_args_utils
  from tfx.components.util import tfxio_utils
  from tfx.types import artifact_utils
  from tfx.utils import io_utils
  from tfx_bonsai.components.common import model_io
  keras = model_io.keras()
  scored = []
  evaluate = keras.Model.evaluate

  def counting(self, x=None, *args, **kwargs):
    steps = kwargs.get("steps")
    batches = x if steps is None else x.take(steps)
    scored.append(sum(int(label.shape[0]) for _, label in batches))
    return evaluate(self, x, *args, **kwargs)

  monkeypatch.setattr(keras.Model, "evaluate", counting)

  def files(split):
    return [io_utils.all_files_pattern(artifact_utils.get_split_uri([digits_examples], split))]

  serving = str(tmp_path / "serving")
  digits_trainer.run_fn(fn_args_utils.FnArgs(
      train_files=files("train"), eval_files=files("eval"), train_steps=4, eval_steps=20,
      schema_path=os.path.join(digits_schema.uri, "schema.pbtxt"), serving_model_dir=serving,
      custom_config={"epochs": 2, "width": 0.1, "validate_every_epoch": every_epoch},
      data_accessor=fn_args_utils.DataAccessor(
          tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
              [digits_examples], []),
          record_batch_factory=None, data_view_decode_fn=None)))
  assert len(scored) == evaluations
  # Once: each of the 360 eval examples once (20 steps of 32 would wrap around the split).
  assert scored[-1] == (20 * 32 if every_epoch else 360)
  assert os.path.exists(os.path.join(serving, "saved_model.pb"))
