"""Run the pipeline here: LocalDagRunner, SQLite MLMD under the pipeline root, Beam DirectRunner."""
import contextlib
import errno
import fcntl
import os
from typing import Any, Dict

from absl import logging
from tfx import v1 as tfx

from tfx_bonsai.pipeline import models
from tfx_bonsai.pipeline import summary as summary_lib
from tfx_bonsai.pipeline.config import BonsaiConfig
from tfx_bonsai.pipeline.pipeline import create_pipeline

LOCK_FILE = ".bonsai.lock"


class RunError(RuntimeError):
  """A run that could not start or did not finish, with the reason."""


@contextlib.contextmanager
def exclusive(pipeline_root: str):
  """Holds the pipeline root's lock: SQLite MLMD takes one writer, so runs are one at a time."""
  try:
    os.makedirs(pipeline_root, exist_ok=True)
    handle = open(os.path.join(pipeline_root, LOCK_FILE), "a+")
  except OSError as e:
    raise RunError(f"pipeline_root '{pipeline_root}' is not writable: {e.strerror}") from e
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    handle.close()
    if e.errno in (errno.EAGAIN, errno.EACCES):
      raise RunError(f"another run of this pipeline is using pipeline_root '{pipeline_root}'; "
                     "wait for it to finish (runs of one pipeline root are serialised)") from e
    raise
  try:
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    yield
  finally:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def metadata_config(config: BonsaiConfig):
  return tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)


def prepare_data(config: BonsaiConfig) -> None:
  if config.data.embedded:
    path = models.export_embedded(config.data.embedded, config.data.path)
    logging.info("embedded %s data at %s", config.data.embedded, path)


def run(config: BonsaiConfig) -> Dict[str, Any]:
  """Runs the pipeline to completion and returns the run's summary (also saved as JSON)."""
  if "://" in config.pipeline_root:
    raise RunError("runner.type 'local' needs a local pipeline_root (SQLite MLMD lives there); "
                   f"got '{config.pipeline_root}'")
  with exclusive(config.pipeline_root):
    prepare_data(config)
    connection = metadata_config(config)
    pipeline = create_pipeline(config, metadata_connection_config=connection)
    error = None
    try:
      tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as e:  # pylint: disable=broad-except
      error = e
    summary = summary_lib.collect(connection, config.pipeline_root)
    if error is not None:
      summary["error"] = f"{type(error).__name__}: {error}"
    summary_lib.save(summary, config.pipeline_root)
  if error is not None:
    raise RunError(f"the run failed: {type(error).__name__}: {error}") from error
  return summary
