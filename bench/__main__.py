"""`make bench`: run every benchmark, print tables, save bench/results/latest.json."""
import datetime
import json
import os
import platform
import sys

import components  # noqa: F401  (Keras 2 before TensorFlow)

from bench import compression

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")


def main(argv) -> int:
  seeds = tuple(range(int(argv[1]))) if len(argv) > 1 else (0, 1, 2)
  machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
  print(f"tfx-bonsai benchmarks, {datetime.date.today()}, {machine}", flush=True)
  rows = compression.run(seeds)
  os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
  with open(RESULTS, "w") as f:
    json.dump({"date": str(datetime.date.today()), "machine": machine, "rows": rows}, f, indent=2)
  print(f"saved {RESULTS}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
