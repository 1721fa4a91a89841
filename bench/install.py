"""Installing the locked stack: pip (the old way) vs uv (env-run's default), side by side.

Each installer builds a fresh venv from requirements.lock through `scripts/env-run --make-venv`
(the same commands `make demo` runs the first time, the editable install of this repo and the
`pip check` included) with an empty download cache, as on a new machine; then the venv's first
import of what a pipeline run imports is timed (uv leaves bytecode compilation to it, pip
compiles everything at install time), so the total is what a cold `make demo` pays before the
pipeline starts. The base interpreter is this environment's (Debian 13's python3 in the rootfs);
the caches and venvs live in a temporary directory that is removed afterwards.

Needs the network (PyPI, or the index pip and uv are configured for) and ~5 GB in $TMPDIR.
The debootstrap of the rootfs (Debian 12 hosts, ~1 min, the same for both) is not included.
"""
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_RUN = os.path.join(REPO, "scripts", "env-run")
INSTALLERS = ("pip", "uv")
# What a pipeline run imports first (the demo's components and their stack).
FIRST_IMPORT = ("import tfx_bonsai.components.prune_trainer.executor, "
                "tfx_bonsai.components.compression_evaluator.executor, tfx_bonsai.pipeline.cli")


def make_venv(installer: str, venv: str, cache: str) -> Tuple[float, float]:
  """Seconds for `env-run --make-venv` to build `venv` with `installer` (caches under `cache`),
  and then for the venv's first import of the stack (uv leaves bytecode to it, pip does not)."""
  env = dict(os.environ, BONSAI_INSTALLER=installer, PIP_CACHE_DIR=os.path.join(cache, "pip"),
             UV_CACHE_DIR=os.path.join(cache, "uv"))
  env.pop("VIRTUAL_ENV", None)
  start = time.monotonic()
  done = subprocess.run([ENV_RUN, "--make-venv", venv, sys._base_executable],  # pylint: disable=protected-access
                        env=env, capture_output=True, text=True, check=False)
  seconds = time.monotonic() - start
  if done.returncode != 0:
    raise RuntimeError(f"env-run --make-venv with {installer} failed:\n{done.stderr[-2000:]}")
  start = time.monotonic()
  check = subprocess.run([os.path.join(venv, "bin", "python"), "-c", FIRST_IMPORT],
                         capture_output=True, text=True, check=False)
  first_import = time.monotonic() - start
  if check.returncode != 0:
    raise RuntimeError(f"the venv {installer} built does not import the stack:\n{check.stderr[-2000:]}")
  return seconds, first_import


def row(installer: str, cold: float, first_import: float, baseline_total: float) -> Dict:
  """`cold`: install seconds with an empty cache; `first_import` after it; the speed-up
  compares install + first import with pip's."""
  return {"benchmark": "install", "config": installer, "cold_cache_seconds": round(cold, 1),
          "first_import_seconds": round(first_import, 1),
          "cold_total_seconds": round(cold + first_import, 1),
          "speedup_vs_pip": round(baseline_total / (cold + first_import), 2)}


def table(rows: List[Dict]) -> str:
  lines = [f"{'installer':<10} {'install (empty cache)':>22} {'+ first import':>15}"
           f" {'= total':>9} {'vs pip':>7}"]
  for r in rows:
    lines.append(f"{r['config']:<10} {r['cold_cache_seconds']:>20.1f} s"
                 f" {r['first_import_seconds']:>13.1f} s {r['cold_total_seconds']:>7.1f} s"
                 f" {r['speedup_vs_pip']:>6.2f}x")
  return "\n".join(lines)


def run(seeds=(0,)) -> List[Dict]:
  del seeds  # installing is not seeded
  times = {}
  for installer in INSTALLERS:
    tmp = tempfile.mkdtemp(prefix=f"bonsai-install-{installer}-")
    try:
      cache = os.path.join(tmp, "cache")
      times[installer] = make_venv(installer, os.path.join(tmp, "venv"), cache)
      print(f"  {installer}: {times[installer][0]:.0f} s with an empty cache,"
            f" + {times[installer][1]:.0f} s first import", flush=True)
    finally:
      # rm: several times faster than shutil.rmtree on the ~100k files.
      subprocess.run(["rm", "-rf", tmp], check=False)
  pip_total = sum(times["pip"])
  rows = [row(name, *times[name], baseline_total=pip_total) for name in INSTALLERS]
  print(table(rows))
  return rows
