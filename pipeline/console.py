"""What `bonsai run` shows on the terminal: one line per component as it starts and as it ends,
progress bars, the summary. Everything else (absl/TFX/Beam logs, TensorFlow's C++ output) goes
to a log file in the run directory; `--verbose` shows it on the terminal too.

Nothing here imports TensorFlow: `Capture` must start before TensorFlow prints its start-up lines.
"""
import contextlib
import datetime
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Callable, IO, Iterator, List, Optional, Tuple

RUNS_DIR = "bonsai_runs"  # under the pipeline root: each run's summary, log and report

# Lines TensorFlow prints while probing for CUDA; noise on a host without an NVIDIA driver.
CUDA_PROBE_MARKERS = (b"cudart_stub.cc", b"cuda_platform.cc", b"cuda_executor.cc",
                      b"cuda_diagnostics.cc", b"failed call to cuInit")

# LocalDagRunner's messages around each node (tfx/orchestration/local/local_dag_runner.py).
_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."


def has_nvidia_driver() -> bool:
  return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")


def log_path(pipeline_root: str, now: Optional[datetime.datetime] = None) -> str:
  """A new log file's path in the run directory (made here)."""
  directory = os.path.join(pipeline_root, RUNS_DIR)
  os.makedirs(directory, exist_ok=True)
  stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%dT%H-%M-%S")
  return os.path.join(directory, f"{stamp}.log")


class Capture:
  """Sends file descriptors 1 and 2 (Python, TensorFlow's C++ side, Beam) away from the terminal.

  Output first goes to a temporary file; `keep_in(path)` copies it into the run's log file and
  sends the rest there. With `verbose` it is shown on the terminal as well, without the CUDA
  probe lines on a host with no NVIDIA driver. `out` and `err` write to the terminal.
  """

  def __init__(self, verbose: bool = False):
    self.verbose = verbose
    self.out: Optional[IO[str]] = None
    self.err: Optional[IO[str]] = None
    self.path = ""
    self._log: Optional[IO[bytes]] = None
    self._lock = threading.Lock()
    self._saved: Tuple[int, ...] = ()
    self._tee: Optional[threading.Thread] = None
    self._read_fd = -1

  def __enter__(self) -> "Capture":
    sys.stdout.flush()
    sys.stderr.flush()
    self._saved = os.dup(1), os.dup(2)
    self.out = os.fdopen(os.dup(1), "w", buffering=1)
    self.err = os.fdopen(os.dup(2), "w", buffering=1)
    self._log = tempfile.TemporaryFile(buffering=0)  # pylint: disable=consider-using-with
    if self.verbose:
      self._read_fd, write_fd = os.pipe()
      drop = () if has_nvidia_driver() else CUDA_PROBE_MARKERS
      self._tee = threading.Thread(target=self._copy, args=(drop,), daemon=True)
      self._tee.start()
      os.dup2(write_fd, 1)
      os.dup2(write_fd, 2)
      os.close(write_fd)
    else:
      os.dup2(self._log.fileno(), 1)
      os.dup2(self._log.fileno(), 2)
    return self

  def keep_in(self, path: str) -> str:
    """Moves the capture into the log file `path` (appending); returns `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = open(path, "ab", buffering=0)  # pylint: disable=consider-using-with
    with self._lock:
      self._log.seek(0)
      log.write(self._log.read())
      if not self.verbose:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
      self._log.close()
      self._log = log
    self.path = path
    return path

  def _copy(self, drop: Tuple[bytes, ...]) -> None:
    """The tee: the pipe to the log, and to the terminal without lines holding a `drop` marker."""
    pending = b""
    while True:
      chunk = os.read(self._read_fd, 65536)
      with self._lock:
        self._log.write(chunk)
      pending += chunk
      lines = pending.split(b"\n")
      pending = lines.pop()  # the unfinished line
      if not chunk and pending:
        lines.append(pending)
      shown = b"".join(line + b"\n" for line in lines if not any(m in line for m in drop))
      if shown:
        os.write(self._saved[1], shown)
      if not chunk:
        return

  def __exit__(self, *exc_info) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(self._saved[0], 1)
    os.dup2(self._saved[1], 2)
    if self._tee is not None:
      self._tee.join(timeout=10)  # ends when the last writer (ours, or a Beam worker's) closes
      os.close(self._read_fd)
    for fd in self._saved:
      os.close(fd)
    self.out.close()
    self.err.close()
    self._log.close()


def tail(path: str, lines: int = 15) -> List[str]:
  with open(path, "rb") as f:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - 65536))
    return f.read().decode("utf-8", "replace").splitlines()[-lines:]


class ComponentLines(logging.Handler):
  """Writes a line as each component starts and as it ends: name, CACHED or ran, seconds, and
  the component's key figure from `describe(node_id) -> (state, figure)` (from MLMD)."""

  def __init__(self, write: Callable[[str], None],
               describe: Callable[[str], Tuple[str, str]], width: int = 30):
    super().__init__(logging.INFO)
    self._write = write
    self._describe = describe
    self._width = width
    self.running: Optional[str] = None
    self._started = 0.0
    self.lines: List[str] = []

  def _line(self, text: str) -> None:
    self.lines.append(text)
    self._write(text)

  def emit(self, record: logging.LogRecord) -> None:
    if record.msg not in (_RUNNING, _FINISHED) or not record.args:
      return
    node = str(record.args[0])
    if record.msg == _RUNNING:
      self.running, self._started = node, time.monotonic()
      self._line(f"  {node.ljust(self._width)} ...")
      return
    seconds = time.monotonic() - self._started
    self.running = None
    try:
      state, figure = self._describe(node)
    except Exception as e:  # pylint: disable=broad-except  (a progress line never fails a run)
      state, figure = "ran", f"(no figure: {type(e).__name__}: {e})"
    self._line(f"  {node.ljust(self._width)} {state:<6} {seconds:5.0f} s  {figure}".rstrip())

  def failed(self) -> None:
    """The line for a component that raised (LocalDagRunner logs no end for it)."""
    if self.running is not None:
      seconds = time.monotonic() - self._started
      self._line(f"  {self.running.ljust(self._width)} FAILED {seconds:5.0f} s")
      self.running = None

  @contextlib.contextmanager
  def attached(self, logger_name: str = "absl") -> Iterator["ComponentLines"]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:  # the runner's messages are INFO
      logger.setLevel(logging.INFO)
    logger.addHandler(self)
    try:
      yield self
    finally:
      logger.removeHandler(self)
      logger.setLevel(level)
