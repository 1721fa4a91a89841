"""The local runner's own failure modes (no pipeline work runs in these tests)."""
import os

import pytest

from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.runners import local

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(root):
  return config_lib.load(os.path.join(REPO, "configs", "digits.yaml"), [
      f"pipeline_root={root}", f"data.path={os.path.dirname(root)}/data",
      f"push.destination={os.path.dirname(root)}/serving"])


def test_unwritable_pipeline_root_is_a_clear_error(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("a file where a directory should be")
  with pytest.raises(local.RunError, match=r"pipeline_root '.*file/root' is not writable"):
    local.run(_config(str(blocker / "root")))


def test_remote_pipeline_root_is_refused_for_local_runs(tmp_path):
  config = _config(str(tmp_path / "root"))
  config.pipeline_root = "gs://bucket/root"
  with pytest.raises(local.RunError, match="needs a local pipeline_root"):
    local.run(config)
