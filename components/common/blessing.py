"""Blessings the way TFX's Evaluator writes them, so the stock Pusher and
LatestBlessedModelStrategy accept ours unchanged."""
import json
import os
from typing import Any, Mapping, Optional

import tensorflow as tf
from tfx import types
from tfx.dsl.io import fileio
from tfx.types import artifact
from tfx.types import standard_artifacts
from tfx.utils import io_utils

BLESSED_FILE = "BLESSED"
NOT_BLESSED_FILE = "NOT_BLESSED"
BLESSED_KEY = "blessed"
CURRENT_MODEL_KEY = "current_model"
CURRENT_MODEL_ID_KEY = "current_model_id"
VERDICT_FILE = "verdict.json"


class SparsityBlessing(artifact.Artifact):
  """SparsityValidator's verdict: a ModelBlessing in all but its type name.

  Same BLESSED/NOT_BLESSED file and `blessed` property, but its own type, so that no
  production-model lookup (LatestBlessedModelStrategy) ever takes it for a blessing.
  """
  # On KFP v2 / Vertex, TFX's container entrypoint imports a custom type by its schema title,
  # which TFX's compiler requires to be `module.ClassName` (one dot): so the name is the class's
  # import path through the package root, which re-exports it.
  TYPE_NAME = "tfx_bonsai.SparsityBlessing"


class CompressionBlessing(standard_artifacts.ModelBlessing):
  """The gate's blessing of a deployable (TFLite) model: TFX's ModelBlessing under its own type.

  The dense lineage (Trainer -> TFX Evaluator) blesses with `ModelBlessing`; the deployable one
  (TFLiteConverter -> CompressionEvaluator) with this type. A LatestBlessedModelStrategy
  resolver finds blessings by type: locally its channel's type, on Vertex the schema title of
  its compiled query. So TFX Evaluator's baseline resolver never sees the gate's blessings, and
  the gate's never the Evaluator's (on Vertex, once `runners.kubeflow` has written the type into
  the compiled query: TFX's compiler always writes `tfx.ModelBlessing` there).
  """
  TYPE_NAME = "tfx_bonsai.CompressionBlessing"


# A subclass, and named as its base for TFX's channel type check (ChannelParameter.type_check
# accepts a type whose class name is the expected one): the stock Pusher takes it as a
# ModelBlessing, while MLMD and Vertex know it by TYPE_NAME.
CompressionBlessing.__name__ = standard_artifacts.ModelBlessing.__name__
# An artifact's JSON form names its class by module and __name__ (tfx.types.Artifact
# .to_json_dict); this alias makes that name resolve back to CompressionBlessing.
ModelBlessing = CompressionBlessing


def write_blessing(blessing: types.Artifact, blessed: bool,
                   model: Optional[types.Artifact] = None,
                   verdict: Optional[Mapping[str, Any]] = None) -> None:
  """Marks `blessing` BLESSED or NOT_BLESSED for `model`, with an optional verdict JSON."""
  fileio.makedirs(blessing.uri)
  if verdict is not None:
    io_utils.write_string_file(os.path.join(blessing.uri, VERDICT_FILE),
                               json.dumps(verdict, indent=2, sort_keys=True, default=float))
  io_utils.write_string_file(
      os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
  blessing.set_int_custom_property(BLESSED_KEY, 1 if blessed else 0)
  if model is not None:
    blessing.set_string_custom_property(CURRENT_MODEL_KEY, model.uri)
    blessing.set_int_custom_property(CURRENT_MODEL_ID_KEY, model.id)


def is_blessed(blessing: types.Artifact) -> bool:
  """True only when the artifact says blessed and its BLESSED file exists."""
  return (blessing.get_int_custom_property(BLESSED_KEY) == 1
          and tf.io.gfile.exists(os.path.join(blessing.uri, BLESSED_FILE)))


def read_verdict(blessing: types.Artifact) -> Optional[dict]:
  path = os.path.join(blessing.uri, VERDICT_FILE)
  if not tf.io.gfile.exists(path):
    return None
  return json.loads(io_utils.read_string_file(path))
