"""The run report: one self-contained HTML page (charts embedded as PNG data URIs).

The page holds the verdict, each gate check with its measured value, threshold and margin
(and whatever else the gate recorded for it, e.g. a confidence interval), the run's figures
with units, and up to four charts: sizes (dense -> pruned -> quantized -> gzip), accuracy
against the budget, per-layer sparsity against the target, and the sparsity search's
trade-off. `render` takes a run summary dict (`bonsai report`'s, or the part the gate knows,
which CompressionEvaluator writes beside its blessing). Needs matplotlib (the [report] extra).
"""
import base64
import html
import io
import json
import math
from typing import Any, Dict, List, Optional, Tuple

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top

REPORT_FILE = "report.html"  # the name beside a blessing
_BLUE, _RED, _GREEN, _GREY = "#4c72b0", "#c44e52", "#2a9d5c", "#8c8c8c"

# How each gate check reads: its unit and, when the verdict does not say, its comparison.
CHECK_UNITS = {"accuracy_drop": "pp", "production_drop": "pp", "class_drop": "pp",
               "relative_accuracy_drop": "%", "compression_ratio": "x", "latency_ratio": "x",
               "min_accuracy": "%"}
CHECK_OPS = {"compression_ratio": ">=", "min_accuracy": ">="}
_CHECK_FIELDS = ("name", "measured", "threshold", "passed", "op")


# ---- numbers with units ------------------------------------------------------------------

def size(n: Optional[float]) -> str:
  """Bytes as `13.1 MB`, `775 kB` or `912 B`."""
  if n is None:
    return "n/a"
  for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
    if abs(n) >= scale:
      return f"{n / scale:.3g} {unit}" if n / scale < 100 else f"{n / scale:.0f} {unit}"
  return f"{int(n)} B"


def percent(x: Optional[float], digits: int = 1) -> str:
  """A fraction as a percentage: 0.9911 -> `99.1 %`."""
  return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def in_unit(x: Any, unit: str, signed: bool = False) -> str:
  """A gate figure in its check's unit: pp and % from fractions, x as a ratio."""
  if isinstance(x, bool) or not isinstance(x, (int, float)):
    return str(x)
  if isinstance(x, float) and math.isnan(x):
    return "n/a"
  sign = "+" if signed else ""
  if unit == "pp":
    return f"{100 * x:{sign}.2f} pp"
  if unit == "%":
    return f"{100 * x:{sign}.2f} %"
  if unit == "x":
    return f"{x:{sign}.2f}x" if abs(x) < 10 else f"{x:{sign}.1f}x"
  if isinstance(x, int):
    return f"{x:{sign},}"
  return f"{x:{sign}.4g}"


def _interval(value) -> Optional[Tuple[float, float]]:
  if (isinstance(value, (list, tuple)) and len(value) == 2
      and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
    return float(value[0]), float(value[1])
  return None


def check_details(check: Dict[str, Any], unit: str) -> List[str]:
  """The fields of a check beyond name/measured/threshold/passed, each as `label value`.

  Intervals (a [low, high] pair, or keys ending _low/_high, _lower/_upper) are shown in the
  check's unit, e.g. `ci95 [-1.20 pp, +0.40 pp]`; other numbers as they are.
  """
  extra = {k: v for k, v in check.items() if k not in _CHECK_FIELDS}
  out = []
  for low_suffix, high_suffix in (("_low", "_high"), ("_lower", "_upper")):
    for key in [k for k in extra if k.endswith(low_suffix)]:
      stem = key[:-len(low_suffix)]
      if stem + high_suffix in extra:
        out.append(f"{stem.replace('_', ' ')} [{in_unit(extra.pop(key), unit, True)}, "
                   f"{in_unit(extra.pop(stem + high_suffix), unit, True)}]")
  for key, value in extra.items():
    pair = _interval(value)
    label = key.replace("_", " ")
    if pair is not None:
      out.append(f"{label} [{in_unit(pair[0], unit, True)}, {in_unit(pair[1], unit, True)}]")
    elif isinstance(value, dict):
      out.append(f"{label}: " + ", ".join(f"{k} {in_unit(v, '')}" for k, v in value.items()))
    elif value is not None:
      number = isinstance(value, (int, float)) and not isinstance(value, bool)
      shown = (in_unit(value, unit) if number and any(w in key for w in ("drop", "bound", "margin"))
               else in_unit(value, ""))
      out.append(f"{label} {shown}")
  return out


def check_rows(summary: Dict[str, Any]) -> List[Dict[str, str]]:
  """One row per gate check: value, threshold, margin (how far inside or outside), details."""
  verdict = summary.get("verdict") or {}
  sparsity_report = (summary.get("sparsity_report") or {}).get("report") or {}
  rows = []
  for check in verdict.get("checks", []):
    name = str(check.get("name"))
    if name == "sparsity" and sparsity_report.get("checks"):
      for sub in sparsity_report["checks"]:  # the SparsityValidator's own figures
        measured, threshold = sub.get("measured"), sub.get("threshold")
        tolerance = sub.get("tolerance") or 0.0
        rows.append(dict(
            name=f"sparsity: {sub.get('name', '').replace('_', ' ')}",
            measured=percent(measured, 2), threshold=f">= {percent(threshold, 2)}"
            + (f" (tolerance {100 * tolerance:.1f} pp)" if tolerance else ""),
            margin=("n/a" if measured is None or threshold is None
                    else f"{100 * (measured - threshold + tolerance):+.2f} pp"),
            passed=bool(sub.get("passed")), details=""))
      continue
    unit = CHECK_UNITS.get(name, "")
    op = check.get("op") or CHECK_OPS.get(name, "<=")
    measured, threshold = check.get("measured"), check.get("threshold")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                  for v in (measured, threshold))
    if name == "sparsity":
      shown, bar, margin = ("passed" if check.get("passed") else "NOT BLESSED"), "blessed", ""
    elif numeric:
      margin_value = threshold - measured if op == "<=" else measured - threshold
      shown = in_unit(measured, unit, signed=unit == "pp")
      bar = f"{op} {in_unit(threshold, unit)}"
      margin = in_unit(margin_value, unit, signed=True)
    else:
      shown, bar, margin = in_unit(measured, unit), f"{op} {in_unit(threshold, unit)}", "n/a"
    rows.append(dict(name=name.replace("_", " "), measured=shown, threshold=bar, margin=margin,
                     passed=bool(check.get("passed")),
                     details="; ".join(check_details(check, unit))))
  return rows


def figures(summary: Dict[str, Any]) -> List[Tuple[str, str]]:
  """(label, value with unit) for the run's figures."""
  measured = (summary.get("verdict") or {}).get("measured") or {}
  search = summary.get("search") or {}
  rows = [
      ("run", str(summary.get("run_id"))),
      ("dense SavedModel", size(summary.get("dense_savedmodel_bytes"))),
      ("dense float TFLite", size(measured.get("dense_tflite_bytes"))),
      ("pruned float weights, gzip", size(summary.get("pruned_weights_gzip_bytes"))),
      ("candidate TFLite", f"{size(summary.get('candidate_tflite_bytes'))} "
                           f"({summary.get('candidate_quantization')}"
                           + (", sparse encoding)" if summary.get("candidate_sparse_weights")
                              else ")")),
      ("candidate TFLite, gzip", size(summary.get("candidate_tflite_gzip_bytes"))),
      ("compression ratio", in_unit(summary.get("compression_ratio"), "x")
       + " (dense float TFLite / candidate gzip)"),
      ("kernel sparsity", f"{percent(summary.get('global_sparsity'), 2)} Keras, "
                          f"{percent(summary.get('deployed_sparsity'), 2)} in the TFLite file"),
      ("TFLite agreement with Keras", percent(summary.get("candidate_agreement"), 2)
       + (f" ({summary['candidate_agreement_kind']})" if summary.get("candidate_agreement_kind")
          else "")),
      ("accuracy: dense", percent(measured.get("dense_accuracy"), 2)),
      ("accuracy: candidate", percent(measured.get("candidate_accuracy"), 2)),
      ("accuracy: production", percent(measured.get("production_accuracy"), 2)),
  ]
  if measured.get("latency_ratio") is not None:
    rows.append(("latency ratio", in_unit(measured["latency_ratio"], "x")
                 + " (candidate / dense float, batch 1, 1 thread)"))
  if search.get("trials"):
    kept = [t for t in search["trials"] if t["accepted"]]
    rows.append(("sparsity search", f"{len(search['trials'])} trials; " + (
        f"kept sparsity {percent(max(t['sparsity'] for t in kept), 2)}" if kept
        else "none within budget")))
  if summary.get("log"):
    rows.append(("full log", str(summary["log"])))
  return rows


# ---- charts ------------------------------------------------------------------------------

def _png(fig) -> str:
  buffer = io.BytesIO()
  fig.tight_layout()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  return base64.b64encode(buffer.getvalue()).decode("ascii")


def _size_chart(summary) -> Optional[str]:
  measured = (summary.get("verdict") or {}).get("measured") or {}
  steps = [("dense\n(float TFLite)", measured.get("dense_tflite_bytes")),
           ("pruned\n(float weights, gzip)", summary.get("pruned_weights_gzip_bytes")),
           (f"quantized\n({summary.get('candidate_quantization')} TFLite)",
            summary.get("candidate_tflite_bytes")),
           ("gzip\n(deployed download)", summary.get("candidate_tflite_gzip_bytes"))]
  steps = [(label, value) for label, value in steps if value]
  if not steps:
    return None
  fig, ax = plt.subplots(figsize=(7.5, 3.6))
  bars = ax.bar([s[0] for s in steps], [s[1] / 1e6 for s in steps],
                color=[_GREY] + [_BLUE] * (len(steps) - 1))
  for bar, (_, value) in zip(bars, steps):
    ax.annotate(size(value), (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center", va="bottom", fontsize=9)
  ax.set_yscale("log")
  ax.set_ylim(top=max(s[1] for s in steps) / 1e6 * 2)  # room for the labels
  ax.set_ylabel("MB (log scale)")
  ax.set_title("Model size, step by step")
  ax.tick_params(axis="x", labelsize=8)
  return _png(fig)


def _accuracy_chart(summary) -> Optional[str]:
  measured = (summary.get("verdict") or {}).get("measured") or {}
  models = [(k, measured.get(f"{k}_accuracy")) for k in ("dense", "candidate", "production")]
  models = [(k, v) for k, v in models if v is not None]
  if not models:
    return None
  fig, ax = plt.subplots(figsize=(7.5, 3.4))
  values = [100 * v for _, v in models]
  bars = ax.bar([k for k, _ in models], values, color=[_GREY, _BLUE, _GREEN][:len(models)])
  for bar, value in zip(bars, values):
    ax.annotate(f"{value:.2f} %", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center", va="bottom", fontsize=9)
  budget = summary.get("max_accuracy_drop")
  floor, title = None, "Accuracy against the budget"
  if budget is not None and measured.get("dense_accuracy") is not None:
    floor = 100 * (measured["dense_accuracy"] - budget)
    ax.axhline(floor, color=_RED, linestyle="--", linewidth=1.5)
    title += f" (red: dense - {100 * budget:.2f} pp)"
  low = min(values + ([floor] if floor is not None else []))
  ax.set_ylim(max(0.0, low - 5), min(100.0, max(values) + 3))
  ax.set_ylabel("accuracy on the eval split (%)")
  ax.set_title(title)
  return _png(fig)


def _sparsity_chart(summary) -> Optional[str]:
  report = (summary.get("sparsity_report") or {}).get("report") or {}
  per_layer = report.get("per_layer") or summary.get("layer_sparsity") or {}
  if not per_layer:
    return None
  names, values = list(per_layer), [100 * float(v) for v in per_layer.values()]
  fig, ax = plt.subplots(figsize=(7.5, max(2.4, 0.4 * len(names) + 1)))
  ax.barh(names, values, color=_BLUE)
  ax.invert_yaxis()
  for y, value in enumerate(values):
    ax.annotate(f"{value:.1f} %", (value, y), xytext=(3, 0), textcoords="offset points",
                va="center", fontsize=8)
  target = (report.get("targets") or {}).get("min_sparsity")
  title = "Sparsity per layer"
  if target is not None:
    ax.axvline(100 * target, color=_RED, linestyle="--", linewidth=1.5)
    title += f" (red: target {100 * target:.0f} %)"
  ax.set_xlim(0, 110)
  ax.set_xlabel("zeros in the kernel (%)")
  ax.set_title(title)
  return _png(fig)


def _search_chart(summary) -> Optional[str]:
  """The trade-off curve: compression of the weights (dense / trial, gzip) against the drop on
  the selection split with its paired 95% interval, one point per trial, and why it stopped."""
  search = summary.get("search") or {}
  trials = search.get("trials") or []
  if not trials:
    return None
  fig, ax = plt.subplots(figsize=(7.5, 3.6))
  dense_bytes = search.get("dense_weights_gzip_bytes") or trials[0]["weights_gzip_bytes"]
  ratio = lambda t: dense_bytes / max(1, t["weights_gzip_bytes"])
  for accepted, marker, color in ((True, "o", _GREEN), (False, "x", _RED)):
    points = [t for t in trials if t["accepted"] == accepted]
    if not points:
      continue
    drops = [100 * t["accuracy_drop"] for t in points]
    low = [100 * (t["accuracy_drop"] - (t.get("drop_ci_low") if t.get("drop_ci_low") is not None
                                        else t["accuracy_drop"])) for t in points]
    high = [100 * ((t.get("drop_ci_high") if t.get("drop_ci_high") is not None
                    else t["accuracy_drop"]) - t["accuracy_drop"]) for t in points]
    ax.errorbar([ratio(t) for t in points], drops, yerr=[low, high], fmt=marker, color=color,
                capsize=3, label="within budget" if accepted else "over budget")
  for i, t in enumerate(trials, 1):
    ax.annotate(f"#{i}: {t['level']:g}", (ratio(t), 100 * t["accuracy_drop"]),
                textcoords="offset points", xytext=(4, 4), fontsize=7)
  budget = search.get("max_accuracy_drop")
  if budget is not None:
    ax.axhline(100 * budget, color=_RED, linestyle="--",
               label=f"budget {100 * budget:.2f} pp ({search.get('accuracy_decision', 'point')})")
  ax.axhline(0, color=_GREY, linestyle=":", linewidth=1)
  ax.set_xscale("log")
  ax.set_xlabel("compression of the weights (gzip), x")
  ax.set_ylabel("accuracy drop, pp (95% CI)")
  ax.set_title("Sparsity search (#n: trial, level)" + (
      f"; stopped: {search['stopped']}" if search.get("stopped") else ""), fontsize=9)
  ax.legend(loc="best", fontsize=8)
  return _png(fig)


def _sensitivity_chart(summary) -> Optional[str]:
  """Each layer pruned alone on the selection split: its loss increase against its sparsity,
  and the sparsity the allocation gave it (allocation "sensitivity")."""
  measured = summary.get("sensitivity") or {}
  layers = measured.get("layers") or {}
  if not layers:
    return None
  fig, ax = plt.subplots(figsize=(7.5, 3.6))
  given = summary.get("layer_sparsity") or {}
  for name, layer in layers.items():
    line, = ax.plot([100 * s for s in layer["sparsities"]],
                    [max(1e-4, d) for d in layer["loss_increase"]], marker=".", linewidth=1,
                    label=f"{name} ({layer['weights']:,} w)")
    if name in given:
      ax.axvline(100 * given[name], color=line.get_color(), linestyle=":", linewidth=1)
  ax.set_yscale("log")
  ax.set_xlabel("sparsity of the layer alone (%); dotted: the sparsity allocated")
  ax.set_ylabel("loss increase (selection split)")
  ax.set_title(f"Layer sensitivity on {measured.get('examples')} selection examples", fontsize=9)
  ax.legend(loc="upper left", fontsize=6, ncol=2)
  return _png(fig)


CHARTS = (("sizes", "Model size from the dense model to the deployed download.", _size_chart),
          ("accuracy", "Accuracy of each model on the gate's eval split; the dashed line is "
                       "the lowest accuracy the budget allows.", _accuracy_chart),
          ("sparsity", "Fraction of zero weights per pruned layer, against the target.",
           _sparsity_chart),
          ("search", "Each search trial: the compression it reached and the accuracy it cost, "
                     "with the paired 95% interval; the dashed line is the budget.",
           _search_chart),
          ("sensitivity", "Each layer pruned alone (magnitude, no fine-tuning) on the selection "
                          "split: the loss increase it causes; the allocation gives the "
                          "sparsity to the layers whose curves stay low.", _sensitivity_chart))


def charts(summary: Dict[str, Any]) -> List[Tuple[str, str, str]]:
  """(name, caption, base64 PNG) for each chart the run has data for."""
  made = []
  for name, caption, draw in CHARTS:
    png = draw(summary)
    if png:
      made.append((name, caption, png))
  return made


# ---- the page ----------------------------------------------------------------------------

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:62em;color:#222;
padding:0 1em} table{border-collapse:collapse;margin:.5em 0 1.5em} td,th{padding:.3em .8em;
text-align:left;border-bottom:1px solid #ddd;vertical-align:top} th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ok{color:#1e7a45} .no{color:#b3262e} .verdict{font-size:1.6em;font-weight:bold}
figure{margin:1.5em 0} figcaption{color:#555;font-size:.9em} img{max-width:100%}
.reason{color:#b3262e}"""


def render(summary: Dict[str, Any], images: List[Tuple[str, str, str]]) -> str:
  """The HTML page (no external resources)."""
  verdict = summary.get("verdict") or {}
  blessed = bool(summary.get("blessed"))
  run_id = html.escape(str(summary.get("run_id")))
  checks = "".join(
      f"<tr><td>{html.escape(r['name'])}</td><td class=num>{html.escape(r['measured'])}</td>"
      f"<td class=num>{html.escape(r['threshold'])}</td>"
      f"<td class=num>{html.escape(r['margin'])}</td>"
      f"<td class={'ok' if r['passed'] else 'no'}>{'pass' if r['passed'] else 'FAIL'}</td>"
      f"<td>{html.escape(r['details'])}</td></tr>"
      for r in check_rows(summary))
  known = {"blessed", "checks", "reasons", "measured", "summary"}
  extra = "".join(
      f"<li>{html.escape(k.replace('_', ' '))}: "
      + html.escape(json.dumps(v, default=str) if isinstance(v, (dict, list)) else in_unit(v, ""))
      + "</li>" for k, v in verdict.items() if k not in known)
  reasons = "".join(f"<li class=reason>{html.escape(r)}</li>" for r in verdict.get("reasons", []))
  pushed = (summary.get("pushed_destination") if summary.get("pushed") else "nothing pushed")
  table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                  for k, v in figures(summary))
  images_html = "".join(
      f'<figure><img alt="{name} chart" src="data:image/png;base64,{png}">'
      f"<figcaption>{html.escape(caption)}</figcaption></figure>" for name, caption, png in images)
  return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tfx-bonsai run {run_id}</title>
<style>{_STYLE}</style></head><body>
<h1>tfx-bonsai run {run_id}</h1>
<p class="verdict {'ok' if blessed else 'no'}">{'BLESSED' if blessed else 'NOT BLESSED'}</p>
<ul>{reasons}</ul>
<p>Pushed: {html.escape(str(pushed))}</p>
<h2>Gate checks</h2>
<table><tr><th>check</th><th>measured</th><th>threshold</th><th>margin</th><th></th>
<th>details</th></tr>
{checks}</table>
{f'<h3>Verdict details</h3><ul>{extra}</ul>' if extra else ''}
<h2>Charts</h2>
{images_html}
<h2>Figures</h2>
<table>{table}</table>
</body></html>
"""
