"""The SparsityValidator's HTML report: verdict, checks, per-layer chart (PNG), tensor tables.

The chart needs matplotlib, the optional `[report]` extra; without it the page has the
same tables and a line saying the chart is missing.
"""
import base64
import html
import io
from typing import Any, Dict, List, Optional

from absl import logging

from tfx_bonsai.components.sparsity_validator import sparsity

NO_CHART_CLASS = "no-chart"
_said_no_matplotlib = False


def _chart_png(report: sparsity.Report) -> Optional[bytes]:
  """Horizontal bars of each layer's kernel sparsity, with the target lines; None without
  matplotlib (the optional `[report]` extra), said once in the log."""
  global _said_no_matplotlib
  try:
    import matplotlib  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
    from matplotlib import figure  # pylint: disable=g-import-not-at-top
  except ImportError:
    if not _said_no_matplotlib:
      logging.warning("SparsityValidator: matplotlib is not installed, so the report has no "
                      "chart (pip install 'tfx-bonsai[report]' adds it)")
      _said_no_matplotlib = True
    return None
  layers = list(report.per_layer)
  fig = figure.Figure(figsize=(7, 1.2 + 0.35 * max(1, len(layers))))
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  values = [report.per_layer[name] for name in layers]
  passed = {c["name"].split("/", 1)[1]: c["passed"] for c in report.checks
            if c["name"].startswith("layer_sparsity/")}
  colors = [{True: "#3a7d44", False: "#b33f40"}.get(passed.get(name), "#7f8c99")
            for name in layers]
  ax.barh(range(len(layers)), values, color=colors)
  ax.set_yticks(range(len(layers)), layers)
  ax.invert_yaxis()
  ax.axvline(report.targets["min_sparsity"], color="black", linestyle="--",
             label=f"global target {report.targets['min_sparsity']:.2f}")
  label = "layer target"
  for i, name in enumerate(layers):
    if name in report.targets["per_layer"]:
      ax.plot([report.targets["per_layer"][name]] * 2, [i - 0.4, i + 0.4], color="#1f4e99",
              linewidth=2, label=label)
      label = None
  ax.set_xlim(0, 1)
  ax.set_xlabel("kernel sparsity (fraction of zeros)")
  ax.legend(loc="lower right", fontsize="small")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  return buffer.getvalue()


def render_html(report: sparsity.Report, table: List[Dict[str, Any]],
                tflite_table: Optional[List[Dict[str, Any]]] = None) -> str:
  """A self-contained HTML page: verdict, per-layer chart (inline PNG), per-tensor table."""
  esc = html.escape
  verdict = "PASSED" if report.passed else "FAILED"
  scope = "all tensors" if report.targets["include_all_tensors"] else "prunable kernels"
  reasons = "".join(f"<li>{esc(r)}</li>" for r in report.reasons)
  rows = "".join(
      f"<tr class='{esc(r['kind'])}'><td>{esc(r['name'])}</td><td>{esc(r['layer'])}</td>"
      f"<td>{esc(r['kind'])}</td><td>{esc('x'.join(map(str, r['shape'])))}</td>"
      f"<td>{r['total']}</td><td>{r['zeros']}</td><td>{100 * r['sparsity']:.2f}%</td></tr>"
      for r in table)
  chart = ""
  png = _chart_png(report) if report.per_layer else None
  if png is not None:
    chart = ("<h2>Kernel sparsity per layer</h2><img alt='kernel sparsity per layer' "
             f"src=\"data:image/png;base64,{base64.b64encode(png).decode()}\">")
  elif report.per_layer:
    chart = f"<p class='{NO_CHART_CLASS}'>No chart: matplotlib is not installed.</p>"
  checks = "".join(
      f"<tr><td>{esc(c['name'])}</td><td>{c['measured']:.4f}</td><td>{c['threshold']:.4f}</td>"
      f"<td>{c['tolerance']:.4f}</td><td>{'pass' if c['passed'] else 'FAIL'}</td></tr>"
      for c in report.checks)
  target = report.targets["min_sparsity"]
  deployed = ""
  if tflite_table is not None:
    deployed_rows = "".join(
        f"<tr><td>{esc(r['name'])}</td><td>{esc(r['encoding'])}</td>"
        f"<td>{esc('x'.join(map(str, r['shape'])))}</td><td>{r['total']}</td><td>{r['zeros']}</td>"
        f"<td>{100 * r['sparsity']:.2f}%</td></tr>" for r in tflite_table)
    deployed = (f"<h2>Deployed TFLite kernels: {report.deployed_sparsity:.4f}</h2>"
                "<table><tr><th>tensor</th><th>encoding</th><th>shape</th><th>total</th>"
                f"<th>zeros</th><th>pruned</th></tr>{deployed_rows}</table>")
  return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sparsity report: {verdict}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 8px; }}
td:nth-child(n+5) {{ text-align: right; }}
.verdict.PASSED {{ color: #3a7d44; }} .verdict.FAILED {{ color: #b33f40; }}
tr.bias, tr.batchnorm, tr.other {{ color: #777; }}
</style></head><body>
<h1>Sparsity: <span class="verdict {verdict}">{verdict}</span></h1>
<p>Global sparsity over {scope}: <b>{report.global_sparsity:.4f}</b>
(target {target:.4f}, tolerance {report.targets['tolerance']:.4f}).</p>
<ul>{reasons}</ul>
<h2>Checks</h2>
<table><tr><th>check</th><th>measured</th><th>threshold</th><th>tolerance</th><th>result</th></tr>
{checks}</table>
{chart}
{deployed}
<h2>Tensors</h2>
<table><tr><th>tensor</th><th>layer</th><th>kind</th><th>shape</th><th>total</th><th>zeros</th>
<th>pruned</th></tr>
{rows}</table>
</body></html>
"""
