"""Keras models inside TFX Model artifacts: where they live, how they are read and written.

Layout follows the stock components: the SavedModel under `<uri>/Format-Serving`
(what Trainer writes and Evaluator/Pusher read) and a TFLite model as the file
`<uri>/Format-Serving/tflite` (where TFMA's `tf_lite` model type looks for it).
"""
import json
import os
from typing import Any, List, Mapping, Optional

import tensorflow as tf
from tfx.utils import path_utils

TFLITE_FILE_NAME = "tflite"
# Set to 1 to load models whose Lambda layers carry Python code (only from sources you trust).
UNSAFE_ENV = "BONSAI_ALLOW_UNSAFE_DESERIALIZATION"
_CODE_LAYERS = ("Lambda",)


class ModelError(ValueError):
  """A model that cannot be used, with the reason and what to do about it."""


def serving_dir(model_uri: str) -> str:
  return path_utils.serving_model_dir(model_uri)


def tflite_path(model_uri: str) -> str:
  return os.path.join(serving_dir(model_uri), TFLITE_FILE_NAME)


def read_tflite(model_uri: str, key: str) -> bytes:
  """The TFLite file of a Model artifact (TFLiteConverter's output); ModelError naming `key`."""
  path = tflite_path(model_uri)
  if not tf.io.gfile.exists(path):
    raise ModelError(f"{key}: no TFLite model at {path}; wire a TFLiteConverter output here")
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read()


def keras():
  """The Keras 2 module (tf_keras); TFMOT works with nothing else."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  return tf_keras


def code_layers(path: str) -> List[str]:
  """Names of the layers in a Keras SavedModel whose config carries Python code (Lambda).

  Read from keras_metadata.pb without loading (and so without deserializing) anything.
  """
  from tf_keras.protobuf import saved_metadata_pb2  # pylint: disable=g-import-not-at-top
  metadata_path = os.path.join(path, "keras_metadata.pb")
  if not tf.io.gfile.exists(metadata_path):
    return []
  metadata = saved_metadata_pb2.SavedMetadata()
  with tf.io.gfile.GFile(metadata_path, "rb") as f:
    metadata.ParseFromString(f.read())
  found = []
  for node in metadata.nodes:
    try:
      info = json.loads(node.metadata)
    except ValueError:
      continue
    if info.get("class_name") in _CODE_LAYERS:
      found.append(info.get("name", node.node_path))
  return found


def load_keras_model(model_uri: str, compile: bool = True):  # pylint: disable=redefined-builtin
  """Loads the Keras model of a Model artifact (its `Format-Serving` SavedModel).

  Raises ModelError naming the path when there is no SavedModel or it is not a Keras model,
  and, unless BONSAI_ALLOW_UNSAFE_DESERIALIZATION=1, when a Lambda layer would bring Python
  code from the model file into this process.
  """
  path = serving_dir(model_uri)
  if not tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
    raise ModelError(f"no SavedModel at {path} (expected saved_model.pb there): "
                     "the upstream Trainer must save its Keras model to fn_args.serving_model_dir")
  unsafe = code_layers(path)
  if unsafe and os.environ.get(UNSAFE_ENV) != "1":
    raise ModelError(
        f"the model at {path} has Lambda layer(s) {unsafe}: loading them would run Python code "
        "stored in the model file. Replace them with built-in or registered custom layers, or, "
        f"for a model from a source you trust, set {UNSAFE_ENV}=1")
  try:
    model = keras().models.load_model(path, compile=compile)
  except Exception as e:  # pylint: disable=broad-except
    raise ModelError(f"cannot load the Keras model at {path}: {type(e).__name__}: {e}") from e
  if not isinstance(model, keras().Model):
    raise ModelError(f"the SavedModel at {path} is not a Keras model (saved without Keras "
                     "metadata); save it with model.save() from a tf.keras (Keras 2) model")
  return model


def is_quantization_aware(model) -> bool:
  """True when `model` carries TFMOT quantization wrappers (quantization-aware training)."""
  return any(type(layer).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")
             for layer in model.layers)


def model_inputs(model, features: Mapping[str, Any]):
  """Picks the model's inputs out of a feature dict, by input name.

  Returns a single tensor for single-input models, else a dict keyed by input name.
  Raises ModelError naming the missing input and the available features.
  """
  names = list(model.input_names)
  missing = [n for n in names if n not in features]
  if missing:
    raise ModelError(f"model input(s) {missing} are not features of the examples; "
                     f"features are {sorted(features)}. Name the Keras Input layers after "
                     "the features they read (keras.Input(name=...)).")
  if len(names) == 1:
    return features[names[0]]
  return {n: features[n] for n in names}


def save_keras_model(model, path: str,
                     feature_spec: Optional[Mapping[str, Any]] = None) -> str:
  """Saves `model` as a SavedModel at `path` (a Model artifact's `serving_dir`); returns `path`.

  With `feature_spec` (tf.io feature spec of the model's inputs), the default serving
  signature takes serialized tf.Examples, as TFX's templates export (TFMA and TF
  Serving read it). Without it, the Keras call signature is exported.
  """
  signatures = None
  if feature_spec:
    spec = {name: feature_spec[name] for name in model.input_names}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_tf_examples(serialized):
      parsed = tf.io.parse_example(serialized, spec)
      return {"outputs": model(model_inputs(model, parsed), training=False)}

    signatures = {"serving_default": serve_tf_examples}
  model.save(path, save_format="tf", signatures=signatures, include_optimizer=False)
  return path


def dir_size(path: str) -> int:
  """Total bytes of the files below `path` (works on gs:// through tf.io.gfile)."""
  total = 0
  for root, _, files in tf.io.gfile.walk(path):
    for name in files:
      total += tf.io.gfile.stat(os.path.join(root, name)).length
  return total
