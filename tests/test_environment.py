"""The environment itself: pinned stack, Keras 2, env-run's decision, the Dockerfile."""
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_RUN = os.path.join(REPO, "scripts", "env-run")


def test_pinned_stack_and_keras2():
  import tensorflow as tf
  import tensorflow_model_optimization as tfmot
  import tfx
  import kfp
  assert tfx.__version__ == "1.21.0"
  assert tf.__version__ == "2.21.0"
  assert kfp.__version__.startswith("2.17.")
  assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
  assert tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__
  assert tfmot.sparsity.keras.prune_low_magnitude is not None


@pytest.mark.parametrize("glibc,python,mode", [
    ("2.36", "3.11", "rootfs"),   # Debian 12
    ("2.35", "3.10", "rootfs"),   # Ubuntu 22.04
    ("2.39", "3.12", "rootfs"),   # Ubuntu 24.04: Python 3.12 is not tested
    ("2.41", "3.13", "venv"),     # Debian 13
    ("2.41", "3.14", "rootfs"),   # Python too new for the stack
    ("2.40", "3.10", "rootfs"),   # Python too old
    ("2.39", "3.11", "rootfs"),
])
def test_env_run_chooses_venv_only_where_the_wheels_install(glibc, python, mode):
  out = subprocess.run(["bash", ENV_RUN, "--mode-for", glibc, python],
                       capture_output=True, text=True, check=True).stdout.strip()
  assert out == mode


def test_env_run_rejects_unknown_forced_mode():
  run = subprocess.run(["bash", ENV_RUN, "--mode"], capture_output=True, text=True,
                       env={**os.environ, "BONSAI_ENV": "docker"})
  assert run.returncode != 0
  assert "BONSAI_ENV must be 'venv' or 'rootfs'" in run.stderr


def test_env_run_rejects_unknown_installer_before_creating_anything(tmp_path):
  venv = tmp_path / "venv"
  run = subprocess.run(["bash", ENV_RUN, "--make-venv", str(venv), sys.executable],
                       capture_output=True, text=True,
                       env={**os.environ, "BONSAI_INSTALLER": "conda"})
  assert run.returncode != 0
  assert "BONSAI_INSTALLER must be 'uv' or 'pip', got 'conda'" in run.stderr
  assert not venv.exists()


def _dockerfile_instructions():
  text = open(os.path.join(REPO, "Dockerfile")).read().replace("\\\n", " ")
  lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
  return [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]


def test_dockerfile_is_debian13_and_installs_from_the_lock():
  instructions = _dockerfile_instructions()
  froms = [args for op, args in instructions if op == "FROM"]
  assert froms[0].startswith("debian:trixie") and froms[0].endswith(" AS runtime")
  copies = [args for op, args in instructions if op == "COPY"]
  assert any(args.startswith("requirements.lock ") for args in copies)
  runs = " ".join(args for op, args in instructions if op == "RUN")
  assert re.search(r"pip install [^&]*--no-deps -r \S*requirements\.lock", runs)
  assert re.search(r"pip install [^&]*--no-deps [^&]*\.", runs)  # the project itself
  env = " ".join(args for op, args in instructions if op == "ENV")
  assert "TF_USE_LEGACY_KERAS=1" in env


def test_lock_pins_every_package_exactly():
  lines = [l.strip() for l in open(os.path.join(REPO, "requirements.lock"))
           if l.strip() and not l.startswith("#")]
  assert len(lines) > 100
  assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", l) for l in lines), \
      [l for l in lines if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", l)]
  pins = dict(l.split("==") for l in lines)
  assert pins["tfx"] == "1.21.0" and pins["tensorflow"] == "2.21.0"
  assert pins["tensorflow-model-optimization"] == "0.8.1" and pins["tf_keras"] == "2.21.0"
