"""`make bench`: run the benchmarks, print their tables, save bench/results/latest.json.

`python -m bench [NAME ...] [--seeds N]`: the named benchmarks (default all, in the
order of BENCHMARKS). Rows of benchmarks not run are kept from the previous file.
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time

import tfx_bonsai  # noqa: F401  (Keras 2 before TensorFlow)

from bench import allocation
from bench import compression
from bench import compression_mnist
from bench import install
from bench import latency
from bench import overhead
from bench import recovery
from bench import throughput

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")
# Each module's run(seeds) prints its table and returns its rows.
BENCHMARKS = {"compression": compression, "compression-mnist": compression_mnist,
              "latency": latency, "throughput": throughput,
              "overhead": overhead, "allocation": allocation, "install": install,
              "recovery": recovery}


def parse_args(argv):
  """(benchmark names in run order, seeds or None: each benchmark's own default); a bare
  number N is read as --seeds N."""
  parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
  parser.add_argument("names", nargs="*", metavar="NAME",
                      help=f"benchmarks to run, of {list(BENCHMARKS)} (default: all)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="seeds of the compression (default 3) and allocation (default 1) "
                           "benchmarks (the others use seed 0)")
  args = parser.parse_args(argv)
  seeds = args.seeds
  names = []
  for name in args.names:
    if name.isdigit():
      seeds = int(name)
    elif name in BENCHMARKS:
      names.append(name)
    else:
      parser.error(f"unknown benchmark {name!r}; choose from {list(BENCHMARKS)}")
  if seeds is not None and seeds < 1:
    parser.error(f"--seeds must be >= 1, got {seeds}")
  return ([n for n in BENCHMARKS if n in names or not names],
          None if seeds is None else tuple(range(seeds)))


def kept_rows(names):
  """Rows of the previous results file from benchmarks not run now."""
  return [r for r in _previous().get("rows", []) if r.get("benchmark") not in names]


def kept_seconds(names):
  """The previous results file's seconds of benchmarks not run now."""
  return {k: v for k, v in _previous().get("seconds", {}).items() if k not in names}


def _previous():
  if not os.path.exists(RESULTS):
    return {}
  with open(RESULTS) as f:
    return json.load(f)


def main(argv) -> int:
  names, seeds = parse_args(argv[1:])
  machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
  print(f"tfx-bonsai benchmarks, {datetime.date.today()}, {machine}: {', '.join(names)}",
        flush=True)
  rows, seconds = [], {}
  for name in names:
    print(f"\n== {name}", flush=True)
    start = time.monotonic()
    rows += BENCHMARKS[name].run(seeds) if seeds else BENCHMARKS[name].run()
    seconds[name] = round(time.monotonic() - start, 1)
    print(f"({name}: {seconds[name]:.0f} s)", flush=True)
  kept, kept_time = kept_rows(names), kept_seconds(names)
  os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
  with open(RESULTS, "w") as f:
    json.dump({"date": str(datetime.date.today()), "machine": machine,
               "seconds": {**kept_time, **seconds},
               "rows": rows + kept}, f, indent=2)
  total = sum(seconds.values())
  print(f"\n{len(names)} benchmark(s) in {total:.0f} s ({total / 60:.1f} min); saved {RESULTS}"
        + (f" (kept {len(kept)} rows of other benchmarks)" if kept else ""))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
