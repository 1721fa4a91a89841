"""Keras models inside TFX Model artifacts: where they live, how they are read and written.

Layout follows the stock components: the SavedModel under `<uri>/Format-Serving`
(what Trainer writes and Evaluator/Pusher read) and a TFLite model as the file
`<uri>/Format-Serving/tflite` (where TFMA's `tf_lite` model type looks for it).
"""
import json
import os
from typing import Any, Callable, List, Mapping, Optional

import numpy as np
import tensorflow as tf
from tfx.utils import path_utils

TFLITE_FILE_NAME = "tflite"
# Model artifact properties PruneTrainer writes and SparsityValidator reads: the overall level
# the pruning aimed at (target_sparsity, or the search's accepted level), whether the search
# chose it, and the sparsity right after pruning (before any collaborative stage).
TARGET_SPARSITY_PROPERTY = "target_sparsity"
SEARCHED_PROPERTY = "searched"
PRUNED_SPARSITY_PROPERTY = "pruned_sparsity"
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


def has_keras_metadata(model_uri: str) -> bool:
  """True when the artifact's SavedModel was written by Keras (`model.save`), not `tf.saved_model.save`."""
  return tf.io.gfile.exists(os.path.join(serving_dir(model_uri), "keras_metadata.pb"))


def import_model_fn(model_fn: str, module_file: Optional[str] = None) -> Callable[[], Any]:
  """The Trainer module's model-building function.

  `model_fn` is a function name in `module_file` when that is given, else an importable
  dotted path (`my_pkg.trainer_module.build_keras_model`). Raises ModelError naming it.
  """
  from tfx.utils import import_utils  # pylint: disable=g-import-not-at-top
  try:
    if module_file:
      return import_utils.import_func_from_source(module_file, model_fn)
    module, _, name = model_fn.rpartition(".")
    if not module:
      raise ValueError("not a dotted path")
    return import_utils.import_func_from_module(module, name)
  except Exception as e:  # pylint: disable=broad-except
    where = f"in module_file {module_file}" if module_file else "as an importable 'module.function'"
    raise ModelError(f"model_fn '{model_fn}' cannot be found {where}: "
                     f"{type(e).__name__}: {e}") from e


def rebuild_keras_model(model_uri: str, build: Callable[[], Any], name: str = "model_fn"):
  """Builds the model with `build()` and restores the trained variables of the artifact's SavedModel.

  For Trainer modules that export with `tf.saved_model.save(model, ...)`: the SavedModel's
  variables are a checkpoint whose root is the Keras model, so a model of the same
  architecture (same layers in the same order) reads them back. Raises ModelError when
  `build` returns no Keras model or one whose variables do not match.
  """
  path = serving_dir(model_uri)
  model = build()
  if not isinstance(model, keras().Model):
    raise ModelError(f"{name} returned {type(model).__name__}, not a tf.keras (Keras 2) Model")
  try:
    status = tf.train.Checkpoint(root=model).read(os.path.join(path, "variables", "variables"))
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    message = " ".join(str(e).split())[:400]
    raise ModelError(
        f"{name} builds a model whose variables do not match the SavedModel at {path}: "
        f"{message}. It must build the architecture the Trainer trained (same layers, in the "
        "same order, with the same shapes)") from e
  return model


def load_trainer_model(model_uri: str, model_fn: str = "", module_file: Optional[str] = None,
                       compile: bool = True):  # pylint: disable=redefined-builtin
  """The Trainer's Keras model: loaded when saved with `model.save`, else rebuilt with `model_fn`.

  Raises ModelError saying what to add when the SavedModel has no Keras metadata and no
  `model_fn` is given.
  """
  path = serving_dir(model_uri)
  exists = tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))
  if model_fn and exists and not has_keras_metadata(model_uri):
    return rebuild_keras_model(model_uri, import_model_fn(model_fn, module_file),
                               f"model_fn '{model_fn}'")
  if exists and not has_keras_metadata(model_uri):
    raise ModelError(
        f"the SavedModel at {path} was exported with tf.saved_model.save (it has no "
        "keras_metadata.pb), so no Keras model can be loaded from it. Set model_fn to the "
        "Trainer module's model-building function (an importable 'module.function', or its "
        "name in module_file) that returns the same, uncompiled or compiled, Keras model: "
        "it is rebuilt and the trained variables are restored into it. Or save with "
        "model.save(fn_args.serving_model_dir, signatures=...) in run_fn")
  return load_keras_model(model_uri, compile=compile)


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


def save_with_serving_of(model, dense_uri: str, path: str) -> str:
  """Saves `model` at `path` with the signatures of the dense model's SavedModel, run on `model`'s weights.

  For a Trainer model exported with `tf.saved_model.save(model, dir, signatures=...)`: the
  dense SavedModel is loaded, `model`'s variables are written into it (same architecture:
  the checkpoint of one is read by the other, every value consumed), and `model` is saved
  by Keras with those signatures, so whatever served the dense model (raw tf.Examples ->
  tf.Transform -> model) serves this one. Raises ModelError when the variables do not map.
  """
  import tempfile  # pylint: disable=g-import-not-at-top
  dense = tf.saved_model.load(serving_dir(dense_uri))
  with tempfile.TemporaryDirectory() as tmp:
    prefix = tf.train.Checkpoint(root=model).write(os.path.join(tmp, "weights"))
    try:
      tf.train.Checkpoint(root=dense).read(prefix).expect_partial()  # no optimizer state
      targets = list(getattr(dense, "variables", []))
      if len(targets) != len(model.variables) or not all(
          np.array_equal(t.numpy(), v.numpy()) for t, v in zip(targets, model.variables)):
        raise ValueError(f"{len(model.variables)} variables, the SavedModel's model has "
                         f"{len(targets)}, or their values did not all arrive")
    except (AssertionError, ValueError) as e:
      raise ModelError(
          f"the model's variables do not map onto the dense SavedModel at {serving_dir(dense_uri)} "
          f"({' '.join(str(e).split())[:300]}); cannot keep its serving signatures") from e
  model._bonsai_dense_serving = dense  # pylint: disable=protected-access  (tracks the signatures' state)
  model.save(path, save_format="tf", signatures=dict(dense.signatures), include_optimizer=False)
  return path


def dir_size(path: str) -> int:
  """Total bytes of the files below `path` (works on gs:// through tf.io.gfile)."""
  total = 0
  for root, _, files in tf.io.gfile.walk(path):
    for name in files:
      total += tf.io.gfile.stat(os.path.join(root, name)).length
  return total
