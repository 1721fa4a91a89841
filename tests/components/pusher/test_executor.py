"""AtomicPushExecutor.Do on real artifacts: blessed and not, an interrupted copy (raised and
SIGKILLed), an unwritable destination, existing versions, a blessing for another model."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
from tfx.components.pusher import executor as stock_executor
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.pusher import atomic
from tfx_bonsai.components.pusher import executor
from tests.helpers import snapshot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODEL_ID = 7
# The model files, as TFLiteConverter lays them out plus a second file, so a copy can fail
# between the first and the last file.
FILES = {"tflite": os.urandom(256 * 1024), "assets/labels.txt": b"0\n1\n2\n"}


def make_model(uri, files=None, artifact_id=MODEL_ID):
  model = standard_artifacts.Model()
  model.uri = uri
  model.id = artifact_id
  for name, content in (files or FILES).items():
    io_utils.write_bytes_file(os.path.join(model_io.serving_dir(uri), name), content)
  return model


def make_blessing(uri, blessed, model):
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = uri
  blessing_lib.write_blessing(blessing, blessed, model, {"blessed": blessed})
  return blessing


def push(model, blessing, base, pushed_uri, executor_class=executor.AtomicPushExecutor):
  """Runs `executor_class().Do` as the Pusher component would; returns the PushedModel."""
  pushed = standard_artifacts.PushedModel()
  pushed.uri = pushed_uri
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))
  executor_class().Do(
      {standard_component_specs.MODEL_KEY: [model],
       standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
      {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination),
       standard_component_specs.CUSTOM_CONFIG_KEY: "null"})
  return pushed


@pytest.fixture
def model(tmp_path):
  return make_model(str(tmp_path / "model"))


@pytest.fixture
def blessed(tmp_path, model):
  return make_blessing(str(tmp_path / "blessing"), True, model)


@pytest.fixture
def base(tmp_path):
  return str(tmp_path / "serving")


@pytest.fixture
def first_push(model, blessed, base, tmp_path):
  """A version already in production before the push under test."""
  pushed = push(model, blessed, base, str(tmp_path / "pushed_first"))
  return pushed.get_string_custom_property("pushed_version")


def _expected_files():
  return {name: hashlib.sha256(content).hexdigest() for name, content in FILES.items()}


def test_blessed_model_is_published_complete(model, blessed, base, tmp_path):
  pushed = push(model, blessed, base, str(tmp_path / "pushed"))
  version = pushed.get_string_custom_property("pushed_version")
  assert pushed.get_int_custom_property("pushed") == 1
  assert pushed.get_string_custom_property("pushed_destination") == os.path.join(base, version)
  assert abs(int(version) - time.time()) < 60
  assert os.listdir(base) == [version]  # no partial directory left behind
  assert snapshot(os.path.join(base, version)) == _expected_files()
  assert snapshot(pushed.uri) == _expected_files()  # archived in the artifact, as stock does


def test_properties_match_the_stock_executor(model, blessed, tmp_path):
  ours = push(model, blessed, str(tmp_path / "ours"), str(tmp_path / "pushed_ours"))
  stock = push(model, blessed, str(tmp_path / "stock"), str(tmp_path / "pushed_stock"),
               stock_executor.Executor)
  assert set(ours.mlmd_artifact.custom_properties) == set(stock.mlmd_artifact.custom_properties)
  assert snapshot(os.path.join(str(tmp_path / "ours"), ours.get_string_custom_property(
      "pushed_version"))) == snapshot(stock.get_string_custom_property("pushed_destination"))


def test_not_blessed_pushes_nothing(model, base, tmp_path):
  not_blessed = make_blessing(str(tmp_path / "not_blessed"), False, model)
  pushed = push(model, not_blessed, base, str(tmp_path / "pushed"))
  assert pushed.get_int_custom_property("pushed") == 0
  assert not pushed.has_custom_property("pushed_destination")
  assert not os.path.exists(base)


def test_failed_copy_keeps_production_and_publishes_nothing(model, blessed, base, first_push,
                                                            tmp_path, monkeypatch):
  before = snapshot(base)
  real_copy = io_utils.copy_file
  calls = []

  def copy_failing_on_second_file(src, dst, overwrite=False):
    calls.append(src)
    if len(calls) == 2:
      with open(dst, "wb") as f:  # half of the file, then the disk fills up
        f.write(b"partial")
      raise OSError(28, "No space left on device")
    real_copy(src, dst, overwrite)

  monkeypatch.setattr(io_utils, "copy_file", copy_failing_on_second_file)
  with pytest.raises(atomic.PushError, match=f"push to '{base}' failed while copying .*"
                                             "No space left on device.*nothing was published"):
    push(model, blessed, base, str(tmp_path / "pushed"))
  assert len(calls) == 2
  assert os.listdir(base) == [first_push]  # the partial copy was removed
  assert snapshot(base) == before


_KILLED_PUSH = """
import sys, time
import tfx_bonsai  # Keras 2 before TensorFlow, as the pipeline imports it
from tfx.types import standard_artifacts, standard_component_specs as keys
from tfx.utils import io_utils, proto_utils
from tfx.proto import pusher_pb2
from tfx.dsl.io import fileio
from tfx_bonsai.components.pusher import executor

model_uri, blessing_uri, base, pushed_uri, signal_file = sys.argv[1:]
real_copy, calls = io_utils.copy_file, []

def copy_and_hang_halfway_through_second_file(src, dst, overwrite=False):
  calls.append(src)
  if len(calls) == 2:
    with fileio.open(dst, "wb") as f:
      f.write(fileio.open(src, "rb").read()[:3])
      f.flush()
      open(signal_file, "w").close()
      time.sleep(600)
  real_copy(src, dst, overwrite)

io_utils.copy_file = copy_and_hang_halfway_through_second_file
model, blessing, pushed = (standard_artifacts.Model(), standard_artifacts.ModelBlessing(),
                           standard_artifacts.PushedModel())
model.uri, blessing.uri, pushed.uri = model_uri, blessing_uri, pushed_uri
blessing.set_int_custom_property("blessed", 1)
destination = pusher_pb2.PushDestination(
    filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base))
executor.AtomicPushExecutor().Do(
    {keys.MODEL_KEY: [model], keys.MODEL_BLESSING_KEY: [blessing]},
    {keys.PUSHED_MODEL_KEY: [pushed]},
    {keys.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination),
     keys.CUSTOM_CONFIG_KEY: "null"})
"""


def test_killed_push_leaves_only_a_hidden_partial_that_a_later_push_removes(
    model, blessed, base, first_push, tmp_path, monkeypatch):
  before = snapshot(base)
  signal_file = str(tmp_path / "copying")
  child = subprocess.Popen(
      [sys.executable, "-c", _KILLED_PUSH, model.uri, blessed.uri, base,
       str(tmp_path / "pushed_killed"), signal_file],
      cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.time() + 120
  while not os.path.exists(signal_file):
    assert child.poll() is None, child.stdout.read().decode()[-3000:]
    assert time.time() < deadline, "the push never reached its second file"
    time.sleep(0.05)
  os.killpg(child.pid, signal.SIGKILL)
  child.wait()
  child.stdout.close()

  # No new version: production is byte-for-byte as it was; the half-written copy is hidden.
  names = sorted(os.listdir(base))
  assert [n for n in names if not n.startswith(".")] == [first_push]
  (partial,) = [n for n in names if n.startswith(".")]
  assert atomic.is_partial(partial)
  assert {k: v for k, v in snapshot(base).items() if not k.startswith(".")} == before
  assert len(snapshot(os.path.join(base, partial))) == 2  # tflite, and 3 bytes of labels.txt

  # The next push removes the dead push's partial copy once it counts as stale.
  monkeypatch.setattr(atomic, "STALE_PARTIAL_SECONDS", -1)
  pushed = push(model, blessed, base, str(tmp_path / "pushed_next"))
  version = pushed.get_string_custom_property("pushed_version")
  assert sorted(os.listdir(base)) == sorted([first_push, version])
  assert snapshot(os.path.join(base, version)) == _expected_files()


def test_unwritable_destination_is_named(model, blessed, tmp_path):
  # Tests run as root, which ignores permission bits: a destination below a regular
  # file cannot be created by anyone.
  blocker = tmp_path / "not_a_directory"
  blocker.write_text("")
  base = str(blocker / "serving")
  with pytest.raises(atomic.PushError, match=f"push destination '{base}' is not writable: "
                                             ".*is not a directory"):
    push(model, blessed, base, str(tmp_path / "pushed"))
  assert not os.path.exists(str(tmp_path / "pushed"))


def test_an_existing_version_is_never_overwritten(model, blessed, base, tmp_path):
  future = str(int(time.time()) + 1000)  # pushed by a host whose clock runs ahead
  io_utils.write_string_file(os.path.join(base, future, "tflite"), "someone else's model")
  before = snapshot(base)
  pushed = push(model, blessed, base, str(tmp_path / "pushed"))
  version = pushed.get_string_custom_property("pushed_version")
  assert version == str(int(future) + 1)  # above every version, so it is the one served
  assert {k: v for k, v in snapshot(base).items() if k.startswith(future + "/")} == before
  assert snapshot(os.path.join(base, version)) == _expected_files()


def test_blessing_of_another_model_is_refused(model, base, tmp_path):
  other = make_model(str(tmp_path / "other"), artifact_id=MODEL_ID + 1)
  blessing = make_blessing(str(tmp_path / "blessing_other"), True, other)
  with pytest.raises(ValueError, match=f"blesses the model at {other.uri}, not the model to "
                                       f"push \\({model.uri}\\)"):
    push(model, blessing, base, str(tmp_path / "pushed"))
  assert not os.path.exists(base)


@pytest.mark.parametrize("recorded_id", [MODEL_ID + 100, "projects/p/artifacts/abc"])
def test_blessing_ids_as_vertex_records_them_still_push(model, base, tmp_path, recorded_id):
  # On Kubeflow v2 / Vertex the blessing's current_model_id comes back rounded through the
  # metadata's doubles, or rewritten into the artifact's name: the model URI decides.
  blessing = make_blessing(str(tmp_path / "blessing_vertex"), True, model)
  if isinstance(recorded_id, str):
    blessing.set_string_custom_property(blessing_lib.CURRENT_MODEL_ID_KEY, recorded_id)
  else:
    blessing.set_int_custom_property(blessing_lib.CURRENT_MODEL_ID_KEY, recorded_id)
  pushed = push(model, blessing, base, str(tmp_path / "pushed"))
  assert pushed.get_int_custom_property("pushed") == 1
  assert snapshot(os.path.join(base, pushed.get_string_custom_property("pushed_version"))) == \
      _expected_files()
