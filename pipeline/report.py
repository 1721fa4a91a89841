"""`bonsai report`: the run report (components/common/report.py) for a finished local run."""
import json
import os
from typing import Any, Dict

from tfx_bonsai.components.common import report as report_lib
from tfx_bonsai.pipeline import summary as summary_lib
from tfx_bonsai.pipeline.config import BonsaiConfig


def load_summary(pipeline_root: str, run_id: str = "") -> Dict[str, Any]:
  directory = os.path.join(pipeline_root, summary_lib.SUMMARIES_DIR)
  if not os.path.isdir(directory):
    raise ValueError(f"no finished run under {pipeline_root} (no {summary_lib.SUMMARIES_DIR}/)")
  runs = sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".json"))
  if run_id and run_id not in runs:
    raise ValueError(f"--run {run_id}: no such run; runs are {runs}")
  if not runs:
    raise ValueError(f"no finished run under {pipeline_root} ({directory} has no summaries)")
  with open(os.path.join(directory, (run_id or runs[-1]) + ".json")) as f:
    return json.load(f)


def write(config: BonsaiConfig, run_id: str = "", output: str = "") -> str:
  """Writes the report of `run_id` (default: latest) and returns the HTML path."""
  summary = load_summary(config.pipeline_root, run_id)
  output = output or os.path.join(config.pipeline_root, summary_lib.SUMMARIES_DIR,
                                  f"{summary['run_id']}.html")
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w") as f:
    f.write(report_lib.render(summary, report_lib.charts(summary)))
  return output
