"""What an operator sees: `bonsai run`'s default and --verbose output, its log file, and the
report rendered in a real browser (headless Chromium).

One real run of the `bonsai` command (a subprocess, as a user runs it) on a small digits
pipeline; the --verbose run after it is served from the cache.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from PIL import Image

from tfx_bonsai.pipeline import console

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "digits.yaml")
NODES = ("ImportExampleGen", "ImportSchemaGen", "Trainer", "PruneTrainer",
         "TFLiteConverter", "SparsityValidator", "latest_blessed_model_resolver",
         "CompressionEvaluator", "Pusher")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--hide-scrollbars")


def _overrides(root):
  return [f"pipeline_root={root}/pipeline", f"data.path={root}/data",
          f"push.destination={root}/serving", "trainer.custom_config={epochs: 3, width: 0.5}",
          "trainer.train_steps=135", "pruning.epochs=2", "gate.max_accuracy_drop=0.05"]


def _bonsai(*args, timeout=900):
  return subprocess.run([sys.executable, "-m", "tfx_bonsai.pipeline.cli", *args],
                        capture_output=True, text=True, timeout=timeout, cwd=REPO)


def _set(root):
  return [a for o in _overrides(root) for a in ("--set", o)]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return str(tmp_path_factory.mktemp("run_output"))


@pytest.fixture(scope="module")
def quiet(root):
  return _bonsai("run", "--config", CONFIG, *_set(root), "--json")


@pytest.fixture(scope="module")
def verbose(root, quiet):
  return _bonsai("run", "--config", CONFIG, *_set(root), "--verbose")


def _log_path(stdout):
  match = re.search(r"full log: (\S+\.log)", stdout)
  assert match, stdout
  return os.path.join(REPO, match.group(1))


def _before_json(stdout):
  return stdout[:stdout.index("\n{")] if "\n{" in stdout else stdout


def test_default_output_is_a_line_per_component_then_the_summary(quiet):
  assert quiet.returncode in (0, 3), quiet.stderr[-3000:]
  text = _before_json(quiet.stdout)
  lines = text.splitlines()
  assert len(lines) + len(quiet.stderr.splitlines()) <= 60, text + quiet.stderr
  for node in NODES:
    starts = [l for l in lines if re.match(rf"  {node} +\.\.\.$", l)]
    ends = [l for l in lines if re.match(rf"  {node} +(ran|CACHED) +\d+ s", l)]
    assert len(starts) == 1 and len(ends) == 1, (node, text)
  end = {l.split()[0]: l for l in lines if re.match(r"  \S+ +(ran|CACHED) ", l)}
  assert re.search(r"sparsity 0\.\d{3}, eval accuracy 0\.\d{3}$", end["PruneTrainer"])
  assert re.search(r"int8 TFLite [\d.]+ MB \([\d.]+ MB gzip\), agreement [\d.]+$",
                   end["TFLiteConverter"])
  assert re.search(r"splits train, selection, eval$", end["ImportExampleGen"])
  assert re.search(r"2 features, imported$", end["ImportSchemaGen"])  # configs/digits.yaml
  assert re.search(r"(BLESSED|NOT BLESSED), [\d.]+x smaller", end["CompressionEvaluator"])
  assert "compression ratio" in text and "verdict" in text
  # No logs, no TensorFlow start-up lines, no CUDA probe on the terminal.
  for noise in ("INFO:absl", "I0000", "cuInit", "cudart_stub", "Epoch 1/"):
    assert noise not in quiet.stdout + quiet.stderr, noise


def test_the_log_file_holds_the_full_logs(quiet):
  with open(_log_path(quiet.stdout), errors="replace") as f:
    log = f.read()
  for node in NODES:
    assert f"Component {node} is running." in log
  assert "prune epoch 2/2" in log  # PruneTrainer's own log lines
  assert "oneDNN" in log or "cudart_stub" in log or "port.cc" in log  # TensorFlow's C++ side
  assert len(log.splitlines()) > 1000


def test_json_is_the_saved_summary(quiet, root):
  summary = json.loads(quiet.stdout[quiet.stdout.index("\n{") + 1:])
  saved = os.path.join(root, "pipeline", console.RUNS_DIR, summary["run_id"] + ".json")
  with open(saved) as f:
    assert json.load(f) == summary
  assert os.path.join(REPO, summary["log"]) == _log_path(quiet.stdout)


def test_verbose_shows_the_logs_and_the_file_keeps_them(verbose):
  assert verbose.returncode in (0, 3), verbose.stderr[-3000:]
  assert "Component PruneTrainer is running." in verbose.stderr
  assert re.search(r"  PruneTrainer +CACHED", verbose.stdout), verbose.stdout
  with open(_log_path(verbose.stdout), errors="replace") as f:
    log = f.read()
  assert "Component PruneTrainer is running." in log
  assert "Component Pusher is finished." in log
  if not console.has_nvidia_driver():  # the probe's lines stay in the file, off the terminal
    assert "cuInit" not in verbose.stderr and "cudart_stub" not in verbose.stderr


def test_bad_config_is_one_clear_error_on_the_terminal(root):
  result = _bonsai("run", "--config", CONFIG, *_set(root), "--set", "pruning.target_sparsity=1.5")
  assert result.returncode == 2
  assert "pruning.target_sparsity" in result.stderr
  assert len((result.stdout + result.stderr).strip().splitlines()) <= 2, result.stderr


def test_unwritable_pipeline_root_is_one_clear_error(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("a file where a directory should be")
  result = _bonsai("run", "--config", CONFIG, *_set(str(blocker / "root")))
  assert result.returncode == 1
  assert re.fullmatch(r"bonsai run: pipeline_root '.*/file/root/pipeline' is not writable: .*\n",
                      result.stderr), result.stderr
  assert result.stdout == ""


# ---- the report, in a browser --------------------------------------------------------------

def _chromium() -> str:
  """Debian's chromium, installed with apt-get when missing (inside the project environment:
  the Debian 13 root filesystem, or the host in venv mode)."""
  found = shutil.which("chromium")
  if found:
    return found
  env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
  for command in (["apt-get", "update", "-qq"],
                  ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]):
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, (f"installing Debian's chromium for the browser test failed "
                                  f"({' '.join(command)}; needs root):\n{done.stderr[-2000:]}")
  found = shutil.which("chromium")
  assert found, "apt-get installed chromium but it is not on PATH"
  return found


def _browse(url, *args):
  with tempfile.TemporaryDirectory() as profile:
    return subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report_page(quiet, root, tmp_path_factory):
  result = _bonsai("report", "--config", CONFIG, *_set(root))
  assert result.returncode == 0, result.stderr[-2000:]
  path = result.stdout.strip().split("bonsai report: ")[-1]
  return os.path.join(REPO, path)


def test_report_is_one_self_contained_file(report_page):
  with open(report_page) as f:
    page = f.read()
  assert not re.search(r'(src|href)="(?!data:)', page)  # nothing to fetch
  images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
  assert len(images) >= 3  # sizes, accuracy, per-layer sparsity (search is off here)
  for image in images:
    assert base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n"
  assert re.search(r"<td class=num>[+-]?\d+\.\d{2} pp</td>", page)  # formatted, with a unit
  assert "margin" in page and "threshold" in page


def test_report_renders_in_headless_chromium(report_page, tmp_path):
  # Screenshot: the page is drawn, and the charts' colours are on it.
  shot = tmp_path / "report.png"
  done = _browse("file://" + report_page, f"--screenshot={shot}", "--window-size=1100,2600")
  assert shot.exists(), done.stderr[-2000:]
  pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
  assert pixels.std() > 20  # not a blank page
  bar_blue = np.all(np.abs(pixels - [0x4c, 0x72, 0xb0]) <= 8, axis=-1).sum()
  assert bar_blue > 2000, bar_blue  # the bar charts were decoded and drawn
  # DOM after load: every <img> decoded (complete, with a natural size), none broken.
  probe = tmp_path / "probe.html"
  with open(report_page) as f:
    probe.write_text(f.read().replace("</body>", """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).length;
  document.body.setAttribute('data-images', imgs.length + ' ' + broken);
});</script></body>"""))
  done = _browse("file://" + str(probe), "--dump-dom", "--virtual-time-budget=5000")
  match = re.search(r'data-images="(\d+) (\d+)"', done.stdout)
  assert match, done.stderr[-2000:]
  total, broken = int(match.group(1)), int(match.group(2))
  assert total >= 3 and broken == 0, (total, broken)


def test_the_gate_keeps_the_report_beside_its_blessing(quiet, root):
  """On Vertex / KFP this file is the report (TFX's v2 runner cannot emit system.HTML)."""
  blessings = os.path.join(root, "pipeline", "CompressionEvaluator", "blessing")
  assert os.listdir(blessings)
  for blessing in [os.path.join(blessings, d) for d in os.listdir(blessings)]:
    with open(os.path.join(blessing, "report.html")) as f:
      page = f.read()
    assert os.path.exists(os.path.join(blessing, "verdict.json"))
    assert ("NOT BLESSED" in page) == os.path.exists(os.path.join(blessing, "NOT_BLESSED"))
    for chart in ("sizes", "accuracy", "sparsity"):
      assert f'alt="{chart} chart" src="data:image/png;base64,' in page
    assert re.search(r"<td class=num>[+-]\d+\.\d{2} pp</td>", page)  # a margin, with its unit
