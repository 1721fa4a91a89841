"""console.Capture (file descriptors to the log, --verbose tee), ComponentLines, the progress
bars and the report's number formatting, on small real inputs."""
import io
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from tfx_bonsai.components.common import progress
from tfx_bonsai.pipeline import console
from tfx_bonsai.components.common import report

_SCRIPT = """
import os, subprocess, sys
from tfx_bonsai.pipeline import console
with console.Capture(verbose={verbose}) as capture:
  os.write(2, b"before the log file\\n")
  log = capture.keep_in(sys.argv[1])
  print("python stdout")
  os.write(2, b"E0000 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\\n")
  subprocess.run(["sh", "-c", "echo from a child process >&2"], check=True)
  print("to the terminal", file=capture.out)
print("after the capture")
"""


def _run_capture(tmp_path, verbose):
  log = tmp_path / "run.log"
  done = subprocess.run([sys.executable, "-c", _SCRIPT.format(verbose=verbose), str(log)],
                        capture_output=True, text=True, timeout=60, check=True)
  return done, log.read_text()


def test_capture_sends_everything_to_the_log_and_only_our_lines_to_the_terminal(tmp_path):
  done, log = _run_capture(tmp_path, verbose=False)
  assert done.stdout == "to the terminal\nafter the capture\n"
  assert done.stderr == ""
  for line in ("before the log file", "python stdout", "failed call to cuInit",
               "from a child process"):
    assert line in log


def test_verbose_tees_to_the_terminal_without_the_cuda_probe(tmp_path):
  done, log = _run_capture(tmp_path, verbose=True)
  assert "before the log file" in done.stderr and "from a child process" in done.stderr
  assert "python stdout" in done.stderr  # fd 1 and 2 share the tee
  assert "failed call to cuInit" in log
  assert ("cuInit" in done.stderr) == console.has_nvidia_driver()
  assert done.stdout.endswith("after the capture\n")


def test_component_lines_name_state_seconds_and_figure():
  written = []
  lines = console.ComponentLines(written.append, lambda node: ("CACHED", f"figure of {node}"))
  with lines.attached():
    absl_logging.info("Component %s is running.", "PruneTrainer")
    absl_logging.info("Going to run a new execution 7")  # other log lines: nothing
    absl_logging.info("Component %s is finished.", "PruneTrainer")
    absl_logging.info("Component %s is running.", "Pusher")
    lines.failed()
  assert [l.split() for l in written] == [
      ["PruneTrainer", "..."], ["PruneTrainer", "CACHED", "0", "s", "figure", "of", "PruneTrainer"],
      ["Pusher", "..."], ["Pusher", "FAILED", "0", "s"]]
  absl_logging.info("Component %s is running.", "Trainer")  # detached: nothing more
  assert len(written) == 4


def test_a_figure_that_cannot_be_read_does_not_stop_the_run():
  written = []

  def broken(node):
    raise KeyError(node)
  lines = console.ComponentLines(written.append, broken)
  with lines.attached():
    absl_logging.info("Component %s is running.", "Trainer")
    absl_logging.info("Component %s is finished.", "Trainer")
  assert "no figure: KeyError" in written[-1]


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_keras_bar_shows_steps_epochs_and_the_postfix():
  terminal = _Terminal()
  progress.set_stream(terminal)
  try:
    model = tf.keras.Sequential([tf.keras.layers.Dense(2, input_shape=(3,))])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = np.zeros((8, 3), np.float32), np.zeros((8,), np.int64)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0,
              callbacks=[progress.KerasBar("prune to 0.9", lambda m: {"sparsity": "0.500"})])
  finally:
    progress.set_stream(None)
  shown = terminal.getvalue()
  assert "prune to 0.9" in shown and "/4" in shown  # 2 epochs x 2 steps
  assert "epoch=2/2" in shown and "sparsity=0.500" in shown


def test_bars_are_off_when_the_stream_is_not_a_terminal():
  stream = io.StringIO()
  progress.set_stream(stream)
  try:
    with progress.bar(5, "search", "trial", name="t"):
      progress.tick("t", 2)
  finally:
    progress.set_stream(None)
  assert stream.getvalue() == ""
  progress.tick("t", 1)  # closed: a no-op, not an error


def test_report_formats_checks_with_units_margins_and_intervals():
  summary = {"verdict": {"checks": [
      {"name": "accuracy_drop", "measured": -0.08902078866958618, "threshold": 0.01,
       "passed": True, "ci95": [-0.11, -0.06], "examples": 337},
      {"name": "compression_ratio", "measured": 8.1, "threshold": 10.0, "passed": False},
      {"name": "production_drop", "measured": 0.004, "threshold": 0.01, "passed": True,
       "drop_upper": 0.02, "drop_lower": -0.01},
      {"name": "sparsity", "measured": 1.0, "threshold": 1.0, "passed": True}]},
      "sparsity_report": {"report": {"checks": [
          {"name": "deployed_sparsity", "measured": 0.9, "threshold": 0.85, "tolerance": 0.01,
           "passed": True}]}}}
  rows = {r["name"]: r for r in report.check_rows(summary)}
  drop = rows["accuracy drop"]
  assert (drop["measured"], drop["threshold"], drop["margin"]) == ("-8.90 pp", "<= 1.00 pp",
                                                                   "+9.90 pp")
  assert drop["details"] == "ci95 [-11.00 pp, -6.00 pp]; examples 337"
  ratio = rows["compression ratio"]
  assert (ratio["measured"], ratio["threshold"], ratio["margin"], ratio["passed"]) == (
      "8.10x", ">= 10.0x", "-1.90x", False)
  assert rows["production drop"]["details"] == "drop [-1.00 pp, +2.00 pp]"
  deployed = rows["sparsity: deployed sparsity"]
  assert (deployed["measured"], deployed["margin"]) == ("90.00 %", "+6.00 pp")
  assert report.size(13103880) == "13.1 MB" and report.size(775217) == "775 kB"
  page = report.render(summary, [])
  assert "-0.0890" not in page and "1.0 / 1.0" not in page
