"""Publish a model directory as `<base>/<version>` so that a crash never leaves half of it there.

The files are copied to a hidden sibling, `<base>/.<version>.partial-<started>-<random>`,
and only once every file is there is that directory renamed to `<base>/<version>`.
On a local or POSIX filesystem the rename is atomic: the version directory appears
complete or not at all. On object stores (gs://, s3://) a rename is a server-side copy
and delete per object, so the version prefix fills up during the rename only (after
the upload has fully succeeded); a crash in that short window can leave an incomplete
version, which is why consumers must also ignore dot-prefixed names.

All I/O goes through `tfx.dsl.io.fileio` and `tfx.utils.io_utils`, so the same code runs on
gs://. Nothing here knows about TFX artifacts.
"""
import os
import re
import time
import uuid
from typing import List, Optional

from absl import logging
import tensorflow as tf
from tfx.dsl.io import fileio
from tfx.utils import io_utils

PARTIAL_INFIX = ".partial-"
# A partial directory left by a push that died without cleaning up (SIGKILL, lost VM) is
# removed by a later push once it is this old; younger ones may belong to a running push.
STALE_PARTIAL_SECONDS = 24 * 3600

_PARTIAL = re.compile(r"^\.(\d+)\.partial-(\d+)-[0-9a-f]+$")
_VERSION = re.compile(r"^\d+$")
_IO_ERRORS = (OSError, tf.errors.OpError)


class PushError(RuntimeError):
  """A push that did not publish its model, naming the destination and why."""


def _names(base: str) -> List[str]:
  try:
    return [name.rstrip("/") for name in fileio.listdir(base)] if fileio.isdir(base) else []
  except _IO_ERRORS as e:
    raise PushError(f"push destination '{base}' cannot be listed: {_reason(e)}") from e


def _reason(error: BaseException) -> str:
  return f"{type(error).__name__}: {' '.join(str(error).split()) or 'no details'}"


def is_partial(name: str) -> bool:
  """True for the hidden directories a push copies into (consumers must skip them)."""
  return bool(_PARTIAL.match(name))


def versions(base: str) -> List[str]:
  """The published versions under `base` (numeric directory names), oldest first."""
  return sorted((n for n in _names(base) if _VERSION.match(n)), key=int)


def next_version(base: str, now: Optional[float] = None) -> str:
  """The Unix time in seconds, or one more than the highest version already at `base`
  (published or being pushed), whichever is larger: never an existing version, and
  always the latest one for a server that serves the highest version."""
  taken = [int(n) for n in versions(base)]
  taken += [int(m.group(1)) for m in map(_PARTIAL.match, _names(base)) if m]
  now = int(time.time() if now is None else now)
  return str(max([now] + [v + 1 for v in taken]))


def remove_stale_partials(base: str, now: Optional[float] = None,
                          max_age: Optional[float] = None) -> List[str]:
  """Removes partial directories of pushes that started more than `max_age` seconds
  (default STALE_PARTIAL_SECONDS) ago; returns their paths. A failure to remove one is
  logged, not raised."""
  now = time.time() if now is None else now
  max_age = STALE_PARTIAL_SECONDS if max_age is None else max_age
  removed = []
  for name in _names(base):
    match = _PARTIAL.match(name)
    if match and now - int(match.group(2)) > max_age:
      path = os.path.join(base, name)
      try:
        fileio.rmtree(path)
        removed.append(path)
        logging.info("Removed the partial copy of an interrupted push: %s", path)
      except _IO_ERRORS as e:
        logging.warning("Could not remove the stale partial push %s: %s", path, _reason(e))
  return removed


def _copy_tree(src: str, dst: str) -> None:
  """Copies every file and directory below `src` to `dst`, one file at a time."""
  src = src.rstrip("/")
  for directory, subdirs, files in fileio.walk(src):
    relative = directory.rstrip("/")[len(src):].lstrip("/")
    target = os.path.join(dst, relative) if relative else dst
    for name in subdirs:
      fileio.makedirs(os.path.join(target, name.rstrip("/")))
    for name in files:
      io_utils.copy_file(os.path.join(directory, name), os.path.join(target, name))


def push_dir(src: str, base: str, version: str) -> str:
  """Publishes the directory `src` as `<base>/<version>` and returns that path.

  Raises PushError, naming the destination, when `base` is not writable, a copy fails
  or `<base>/<version>` already exists; `<base>/<version>` is then left untouched and the
  partial copy is removed (unless the process dies first: see remove_stale_partials).
  """
  final = os.path.join(base, version)
  partial = os.path.join(base, f".{version}{PARTIAL_INFIX}{int(time.time())}-"
                               f"{uuid.uuid4().hex[:8]}")
  try:
    fileio.makedirs(base)
    fileio.mkdir(partial)
  except _IO_ERRORS as e:
    raise PushError(f"push destination '{base}' is not writable: {_reason(e)}") from e
  try:
    try:
      _copy_tree(src, partial)
    except _IO_ERRORS as e:
      raise PushError(f"push to '{base}' failed while copying {src}: {_reason(e)}; "
                      f"nothing was published") from e
    if fileio.exists(final):
      raise PushError(f"push destination '{final}' already exists; a version is never "
                      "overwritten")
    try:
      fileio.rename(partial, final, overwrite=False)
    except _IO_ERRORS as e:
      raise PushError(f"push to '{base}' could not publish version {version}: "
                      f"{_reason(e)}") from e
    logging.info("Published %s as %s", src, final)
    return final
  finally:
    if fileio.exists(partial):
      try:
        fileio.rmtree(partial)
      except _IO_ERRORS as e:
        logging.warning("Could not remove the partial push %s: %s", partial, _reason(e))
