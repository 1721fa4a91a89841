"""The report's search chart: the trade-off curve from a summary's trials, no pipeline run."""
import os

from tfx_bonsai.pipeline import report


def _trial(level, drop, low, high, gzip_bytes, accepted):
  return {"level": level, "sparsity": level, "accuracy": 0.98 - drop, "accuracy_drop": drop,
          "drop_ci_low": low, "drop_ci_high": high, "weights_gzip_bytes": gzip_bytes,
          "accepted": accepted, "examples": 300, "seconds": 1.0, "layer_sparsity": {}}


def test_search_chart_plots_ratio_against_drop_with_intervals(tmp_path):
  summary = {"run_id": "r1", "search": {
      "dense_accuracy": 0.98, "max_accuracy_drop": 0.01, "accuracy_decision": "confident",
      "stopped": "budget: level 0.998 over it", "dense_weights_gzip_bytes": 100_000,
      "trials": [_trial(0.9, -0.003, -0.01, 0.004, 9_000, True),
                 _trial(0.998, 0.02, 0.005, 0.04, 900, False),
                 _trial(0.949, 0.0, -0.006, 0.006, 5_000, True)]}}
  made = report.charts(summary, str(tmp_path))
  (search_png,) = [m for m in made if m.endswith("search.png")]
  with open(os.path.join(str(tmp_path), search_png), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
