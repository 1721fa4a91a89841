"""`bonsai report`: an HTML page with PNG charts (sizes, accuracy, sparsity) for a finished run."""
import html
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

from tfx_bonsai.pipeline import summary as summary_lib  # noqa: E402
from tfx_bonsai.pipeline.config import BonsaiConfig  # noqa: E402


def load_summary(pipeline_root: str, run_id: str = "") -> Dict[str, Any]:
  directory = os.path.join(pipeline_root, summary_lib.SUMMARIES_DIR)
  if not os.path.isdir(directory):
    raise ValueError(f"no finished run under {pipeline_root} (no {summary_lib.SUMMARIES_DIR}/)")
  runs = sorted(f[:-5] for f in os.listdir(directory) if f.endswith(".json"))
  if run_id and run_id not in runs:
    raise ValueError(f"--run {run_id}: no such run; runs are {runs}")
  with open(os.path.join(directory, (run_id or runs[-1]) + ".json")) as f:
    return json.load(f)


def _bar(path: str, title: str, labels: List[str], values: List[float], unit: str,
         line: Optional[Tuple[float, str]] = None, log: bool = False, horizontal: bool = False):
  fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(labels)) if horizontal else 3.5))
  colors = ["#4c72b0"] * len(values)
  if horizontal:
    ax.barh(labels, values, color=colors)
    ax.invert_yaxis()
    if line:
      ax.axvline(line[0], color="#c44e52", linestyle="--", label=line[1])
    ax.set_xlabel(unit)
  else:
    bars = ax.bar(labels, values, color=colors)
    for bar, value in zip(bars, values):
      ax.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                  ha="center", va="bottom", fontsize=8)
    if line:
      ax.axhline(line[0], color="#c44e52", linestyle="--", label=line[1])
    ax.set_ylabel(unit)
  if log:
    (ax.set_xscale if horizontal else ax.set_yscale)("log")
  if line:
    ax.legend(loc="best", fontsize=8)
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def charts(summary: Dict[str, Any], directory: str) -> List[str]:
  """Draws the run's charts as PNG files in `directory`; returns their file names."""
  made = []
  prefix = f"{summary.get('run_id')}-"
  measured = (summary.get("verdict") or {}).get("measured", {})
  sizes = [("dense SavedModel", summary.get("dense_savedmodel_bytes")),
           ("dense float TFLite", measured.get("dense_tflite_bytes")),
           ("candidate TFLite", summary.get("candidate_tflite_bytes")),
           ("candidate gzip", summary.get("candidate_tflite_gzip_bytes"))]
  sizes = [(k, v / 1e6) for k, v in sizes if v]
  if sizes:
    _bar(os.path.join(directory, prefix + "sizes.png"), "Model size (log scale)", [k for k, _ in sizes],
         [v for _, v in sizes], "MB", log=True)
    made.append(prefix + "sizes.png")
  accuracies = [(k, measured.get(f"{k}_accuracy")) for k in ("dense", "candidate", "production")]
  accuracies = [(k, v) for k, v in accuracies if v is not None]
  if accuracies:
    budget = summary.get("max_accuracy_drop")
    line = ((measured["dense_accuracy"] - budget, f"dense - budget ({budget})")
            if budget is not None and "dense_accuracy" in measured else None)
    _bar(os.path.join(directory, prefix + "accuracy.png"), "Accuracy on the eval split (TFMA)",
         [k for k, _ in accuracies], [v for _, v in accuracies], "accuracy", line=line)
    made.append(prefix + "accuracy.png")
  trials = (summary.get("search") or {}).get("trials") or []
  if trials:
    # The trade-off curve: compression (dense / trial weights after gzip) against the drop
    # on the selection split, with its paired 95% interval; one point per trial.
    fig, ax = plt.subplots(figsize=(7, 3.5))
    search = summary["search"]
    dense_bytes = search.get("dense_weights_gzip_bytes") or trials[0]["weights_gzip_bytes"]
    ratio = lambda t: dense_bytes / max(1, t["weights_gzip_bytes"])
    for accepted, marker, color in ((True, "o", "#2a7"), (False, "x", "#c44e52")):
      points = [t for t in trials if t["accepted"] == accepted]
      drops = [100 * t["accuracy_drop"] for t in points]
      errors = [[100 * (t["accuracy_drop"] - (t.get("drop_ci_low") or t["accuracy_drop"]))
                 for t in points],
                [100 * ((t.get("drop_ci_high") or t["accuracy_drop"]) - t["accuracy_drop"])
                 for t in points]]
      ax.errorbar([ratio(t) for t in points], drops, yerr=errors, fmt=marker, color=color,
                  capsize=3, label="accepted" if accepted else "over budget")
    for i, t in enumerate(trials, 1):
      ax.annotate(f"{i}: {t['level']:g}", (ratio(t), 100 * t["accuracy_drop"]),
                  textcoords="offset points", xytext=(4, 4), fontsize=7)
    budget = search.get("max_accuracy_drop")
    if budget is not None:
      ax.axhline(100 * budget, color="#c44e52", linestyle="--",
                 label=f"budget {100 * budget:g} pp ({search.get('accuracy_decision', 'point')})")
    ax.axhline(0, color="#4c72b0", linestyle=":", label="dense")
    ax.set_xscale("log")
    ax.set_xlabel("compression of the weights (gzip), x")
    ax.set_ylabel("accuracy drop, pp (95% CI)")
    ax.set_title("Sparsity search: " + (f"stopped: {search['stopped']}"
                                        if search.get("stopped") else "trials"), fontsize=9)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(directory, prefix + "search.png"), dpi=110)
    plt.close(fig)
    made.append(prefix + "search.png")
  report = (summary.get("sparsity_report") or {}).get("report", {})
  per_layer = report.get("per_layer") or {}
  if per_layer:
    target = (report.get("targets") or {}).get("min_sparsity")
    _bar(os.path.join(directory, prefix + "sparsity.png"), "Kernel sparsity per layer",
         list(per_layer), [float(v) for v in per_layer.values()], "fraction of zeros",
         line=(target, f"target {target}") if target is not None else None, horizontal=True)
    made.append(prefix + "sparsity.png")
  return made


def render(summary: Dict[str, Any], images: List[str]) -> str:
  verdict = summary.get("verdict") or {}
  blessed = summary.get("blessed")
  rows = "".join(
      f"<tr><td>{html.escape(str(c.get('name')))}</td><td>{c.get('measured')}</td>"
      f"<td>{c.get('threshold')}</td><td>{'ok' if c.get('passed') else 'FAILED'}</td></tr>"
      for c in verdict.get("checks", []))
  return f"""<!doctype html><html><head><meta charset="utf-8">
<title>tfx-bonsai run {html.escape(str(summary.get('run_id')))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}} td,th{{padding:.2em .8em;text-align:left}}
.ok{{color:#2a7}} .no{{color:#c33}} pre{{background:#f4f4f4;padding:1em}}</style></head><body>
<h1>tfx-bonsai run {html.escape(str(summary.get('run_id')))}</h1>
<h2 class="{'ok' if blessed else 'no'}">{'BLESSED' if blessed else 'NOT BLESSED'}</h2>
<p>{html.escape('; '.join(verdict.get('reasons', [])))}</p>
<p>Pushed: {html.escape(str(summary.get('pushed_destination') if summary.get('pushed') else 'nothing'))}</p>
<table><tr><th>check</th><th>measured</th><th>threshold</th><th></th></tr>{rows}</table>
{''.join(f'<p><img src="{name}" alt="{name}"></p>' for name in images)}
<h2>Summary</h2><pre>{html.escape(summary_lib.format_table(summary))}</pre>
</body></html>"""


def write(config: BonsaiConfig, run_id: str = "", output: str = "") -> str:
  """Writes the report of `run_id` (default: latest) and returns the HTML path."""
  summary = load_summary(config.pipeline_root, run_id)
  output = output or os.path.join(config.pipeline_root, summary_lib.SUMMARIES_DIR,
                                  f"{summary['run_id']}.html")
  directory = os.path.dirname(os.path.abspath(output))
  os.makedirs(directory, exist_ok=True)
  images = charts(summary, directory)
  with open(output, "w") as f:
    f.write(render(summary, images))
  return output
