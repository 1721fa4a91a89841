"""AtomicPushExecutor: the stock Pusher's executor with a push that is all or nothing.

Same blessing check (`CheckBlessing`), same model path (`GetModelPath`), same output
properties (`pushed`, `pushed_destination`, `pushed_version`) as
`tfx.components.pusher.executor.Executor`. What differs is how the files reach the
destination (see `atomic.py`): copied to a hidden `<base>/.<version>.partial-*` sibling,
then renamed to `<base>/<version>`; an existing version is never overwritten, and the
version is above every version already there.
"""
import time
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.pusher import atomic

_Versioning = pusher_pb2.Versioning


class AtomicPushExecutor(pusher_executor.Executor):
  """Pushes a blessed model to a filesystem destination atomically; see the module doc."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    _check_blessing_is_for_model(input_dict)
    model_path = self.GetModelPath(input_dict)

    push_destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
        exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], push_destination)
    destination_kind = push_destination.WhichOneof("destination")
    if destination_kind != "filesystem":
      raise NotImplementedError(f"Invalid push destination {destination_kind}")
    fs_config = push_destination.filesystem
    if fs_config.versioning == _Versioning.AUTO:
      fs_config.versioning = _Versioning.UNIX_TIMESTAMP
    if fs_config.versioning != _Versioning.UNIX_TIMESTAMP:
      raise NotImplementedError(f"Invalid Versioning {fs_config.versioning}")

    base = fs_config.base_directory
    now = time.time()
    atomic.remove_stale_partials(base, now)
    model_version = atomic.next_version(base, now)
    logging.info("Model version: %s", model_version)
    serving_path = atomic.push_dir(model_path, base, model_version)

    # Copy the model to the pushed_model artifact for archiving, as the stock Pusher does.
    io_utils.copy_dir(model_path, model_push.uri)
    self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=model_version)
    logging.info("Model pushed to %s (archived at %s).", serving_path, model_push.uri)


def _check_blessing_is_for_model(input_dict: Dict[str, List[types.Artifact]]) -> None:
  """Raises ValueError when the model blessing names another model than the one to push.

  Evaluators record the model they blessed; a mismatch is a wiring error, and pushing would
  publish a model nobody evaluated. The model's URI is compared, not `current_model_id`: on
  Kubeflow v2 / Vertex that id is a hash of the artifact name that loses its low digits in the
  metadata's doubles, or is rewritten into the artifact name, so it never equals `model.id`.
  """
  blessings = input_dict.get(standard_component_specs.MODEL_BLESSING_KEY)
  models = input_dict.get(standard_component_specs.MODEL_KEY)
  if not blessings or not models:
    return
  blessing = artifact_utils.get_single_instance(blessings)
  model = artifact_utils.get_single_instance(models)
  if not blessing.has_custom_property(blessing_lib.CURRENT_MODEL_KEY):
    return
  blessed_uri = blessing.get_string_custom_property(blessing_lib.CURRENT_MODEL_KEY)
  if blessed_uri and blessed_uri.rstrip("/") != model.uri.rstrip("/"):
    raise ValueError(f"model_blessing at {blessing.uri} blesses the model at {blessed_uri}, not "
                     f"the model to push ({model.uri}); wire the Pusher's model and "
                     "model_blessing from the same evaluated model")
