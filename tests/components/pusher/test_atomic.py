"""atomic.py on small directories: version choice, stale partial copies, publish."""
import os

import pytest
from tfx.utils import io_utils

from tfx_bonsai.components.pusher import atomic

NOW = 1_700_000_000


def _touch(path):
  io_utils.write_string_file(path, "x")


def test_next_version_is_the_time_or_above_every_existing_version(tmp_path):
  base = str(tmp_path)
  assert atomic.next_version(base, NOW) == str(NOW)
  _touch(os.path.join(base, str(NOW - 5), "tflite"))
  assert atomic.next_version(base, NOW) == str(NOW)
  _touch(os.path.join(base, str(NOW), "tflite"))
  assert atomic.next_version(base, NOW) == str(NOW + 1)
  # A push in progress holds its version too.
  _touch(os.path.join(base, f".{NOW + 1}.partial-{NOW}-0a1b2c3d", "tflite"))
  assert atomic.next_version(base, NOW) == str(NOW + 2)
  _touch(os.path.join(base, "README", "x"))  # not a version
  assert atomic.versions(base) == [str(NOW - 5), str(NOW)]


def test_only_stale_partials_are_removed(tmp_path):
  base = str(tmp_path)
  old = f".{NOW - 90000}.partial-{NOW - 90000}-00000000"
  young = f".{NOW - 60}.partial-{NOW - 60}-11111111"
  for name in (old, young, str(NOW - 100000), ".hidden"):
    _touch(os.path.join(base, name, "tflite"))
  removed = atomic.remove_stale_partials(base, NOW)
  assert removed == [os.path.join(base, old)]
  assert sorted(os.listdir(base)) == sorted([young, str(NOW - 100000), ".hidden"])
  assert atomic.is_partial(young) and not atomic.is_partial(".hidden")


def test_push_dir_publishes_every_file_and_refuses_an_existing_version(tmp_path):
  src = str(tmp_path / "model")
  for name in ("saved_model.pb", "variables/variables.index", "assets/vocab.txt"):
    _touch(os.path.join(src, name))
  os.makedirs(os.path.join(src, "empty"))
  base = str(tmp_path / "serving")
  final = atomic.push_dir(src, base, "12")
  assert final == os.path.join(base, "12")
  assert sorted(os.path.relpath(os.path.join(r, n), final)
                for r, _, names in os.walk(final) for n in names) == [
                    "assets/vocab.txt", "saved_model.pb", "variables/variables.index"]
  assert os.path.isdir(os.path.join(final, "empty"))
  with pytest.raises(atomic.PushError, match=f"'{final}' already exists"):
    atomic.push_dir(src, base, "12")
  assert os.listdir(base) == ["12"]
