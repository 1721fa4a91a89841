"""TFX Trainer module for the embedded default: the seed tutorial's CNN on 28x28 digits.

Use it as `Trainer(run_fn="tfx_bonsai.pipeline.models.digits_trainer.run_fn", ...)`; it is
importable from the installed package (and so from the pipeline image).
"""
from absl import logging
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.utils import io_utils
from tfx_bsl.public.tfxio import TensorFlowDatasetOptions
from tensorflow_metadata.proto.v0 import schema_pb2

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.pipeline.models import digits


def build_seed_cnn(width: float = 1.0):
  """The seed's CNN (conv 5x5x32, conv 5x5x64, dense 1024) on a flat 784-float `image`.

  `width` scales every layer's width (tests use small widths for speed).
  """
  keras = model_io.keras()
  layers = keras.layers
  inputs = keras.Input(shape=(digits.IMAGE_SIZE * digits.IMAGE_SIZE,), name=digits.IMAGE_KEY)
  x = layers.Reshape((digits.IMAGE_SIZE, digits.IMAGE_SIZE, 1))(inputs)
  x = layers.Conv2D(max(1, int(32 * width)), 5, padding="same", activation="relu")(x)
  x = layers.MaxPooling2D((2, 2), (2, 2), padding="same")(x)
  x = layers.BatchNormalization()(x)
  x = layers.Conv2D(max(1, int(64 * width)), 5, padding="same", activation="relu")(x)
  x = layers.MaxPooling2D((2, 2), (2, 2), padding="same")(x)
  x = layers.Flatten()(x)
  x = layers.Dense(max(1, int(1024 * width)), activation="relu")(x)
  x = layers.Dropout(0.4)(x)
  outputs = layers.Dense(digits.NUM_CLASSES, activation="softmax")(x)
  model = keras.Model(inputs, outputs, name="seed_cnn")
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
  return model


def run_fn(fn_args: FnArgs) -> None:
  """Trains the seed CNN and saves it with a tf.Example serving signature.

  custom_config: `epochs` (default 4), `batch_size` (32), `width` (1.0),
  `validate_every_epoch` (false: the eval split is scored once, after the last epoch, each
  example once, in at most eval_steps batches; true: after every epoch, eval_steps batches
  of the repeated split, as before issue 16 - only the last score is ever read).
  """
  config = fn_args.custom_config or {}
  epochs = int(config.get("epochs", 4))
  batch_size = int(config.get("batch_size", 32))
  eval_steps = fn_args.eval_steps or 12
  schema = io_utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())

  def dataset(pattern, shuffle, num_epochs=None):
    return fn_args.data_accessor.tf_dataset_factory(
        pattern, TensorFlowDatasetOptions(batch_size=batch_size, label_key=digits.LABEL_KEY,
                                          shuffle=shuffle, num_epochs=num_epochs), schema)

  train_steps = fn_args.train_steps or 45
  model = build_seed_cnn(float(config.get("width", 1.0)))
  if config.get("validate_every_epoch", False):
    validation = dict(validation_data=dataset(fn_args.eval_files, False).repeat(),
                      validation_steps=eval_steps)
  else:
    validation = dict(validation_data=dataset(fn_args.eval_files, False, 1).take(eval_steps),
                      validation_freq=[epochs])
  history = model.fit(dataset(fn_args.train_files, True).repeat(), epochs=epochs,
                      steps_per_epoch=max(1, train_steps // epochs), verbose=2, **validation)
  logging.info("digits trainer: final eval accuracy %.4f", history.history["val_accuracy"][-1])
  model_io.save_keras_model(model, fn_args.serving_model_dir, examples_lib.feature_spec(schema))
