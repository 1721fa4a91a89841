"""Installing the locked stack: pip (the old way) vs uv (env-run's default), side by side.

Each installer builds a fresh venv from requirements.lock through `scripts/env-run --make-venv`
(the same commands `make demo` runs the first time, the editable install of this repo and the
`pip check` included), first with an empty download cache (a new machine), then again into
another fresh venv with the cache that run left (a re-sync after a lock change, or a second
checkout). The base interpreter is this environment's (Debian 13's python3 in the rootfs);
the caches and venvs live in a temporary directory that is removed afterwards.

Needs the network (PyPI, or the index pip and uv are configured for) and ~5 GB in $TMPDIR.
The debootstrap of the rootfs (Debian 12 hosts, ~1 min, the same for both) is not included.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_RUN = os.path.join(REPO, "scripts", "env-run")
INSTALLERS = ("pip", "uv")


def make_venv(installer: str, venv: str, cache: str) -> float:
  """Seconds for `env-run --make-venv` to build `venv` with `installer`, caches under `cache`."""
  env = dict(os.environ, BONSAI_INSTALLER=installer, PIP_CACHE_DIR=os.path.join(cache, "pip"),
             UV_CACHE_DIR=os.path.join(cache, "uv"))
  env.pop("VIRTUAL_ENV", None)
  start = time.monotonic()
  done = subprocess.run([ENV_RUN, "--make-venv", venv, sys._base_executable],  # pylint: disable=protected-access
                        env=env, capture_output=True, text=True, check=False)
  seconds = time.monotonic() - start
  if done.returncode != 0:
    raise RuntimeError(f"env-run --make-venv with {installer} failed:\n{done.stderr[-2000:]}")
  check = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                          "import tfx_bonsai, tfx, tensorflow_model_analysis"],
                         capture_output=True, text=True, check=False)
  if check.returncode != 0:
    raise RuntimeError(f"the venv {installer} built does not import the stack:\n{check.stderr[-2000:]}")
  return seconds


def row(installer: str, cold: float, warm: float, baseline_cold: float) -> Dict:
  return {"benchmark": "install", "config": installer, "cold_cache_seconds": round(cold, 1),
          "warm_cache_seconds": round(warm, 1),
          "speedup_vs_pip": round(baseline_cold / cold, 2) if cold else None}


def table(rows: List[Dict]) -> str:
  lines = [f"{'installer':<10} {'empty cache':>12} {'warm cache':>11} {'vs pip (empty)':>15}"]
  for r in rows:
    lines.append(f"{r['config']:<10} {r['cold_cache_seconds']:>10.1f} s {r['warm_cache_seconds']:>9.1f} s"
                 f" {r['speedup_vs_pip']:>14.2f}x")
  return "\n".join(lines)


def run(seeds=(0,)) -> List[Dict]:
  del seeds  # installing is not seeded
  times = {}
  for installer in INSTALLERS:
    tmp = tempfile.mkdtemp(prefix=f"bonsai-install-{installer}-")
    try:
      cache = os.path.join(tmp, "cache")
      cold = make_venv(installer, os.path.join(tmp, "venv-1"), cache)
      shutil.rmtree(os.path.join(tmp, "venv-1"))
      warm = make_venv(installer, os.path.join(tmp, "venv-2"), cache)
      times[installer] = (cold, warm)
      print(f"  {installer}: {cold:.0f} s with an empty cache, {warm:.0f} s warm", flush=True)
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
  rows = [row(name, *times[name], baseline_cold=times["pip"][0]) for name in INSTALLERS]
  print(table(rows))
  return rows
