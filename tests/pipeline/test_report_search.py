"""The report's search chart: the trade-off curve from a summary's trials, no pipeline run."""
import base64

from tfx_bonsai.components.common import report


def _trial(level, drop, low, high, gzip_bytes, accepted):
  return {"level": level, "sparsity": level, "accuracy": 0.98 - drop, "accuracy_drop": drop,
          "drop_ci_low": low, "drop_ci_high": high, "weights_gzip_bytes": gzip_bytes,
          "accepted": accepted, "examples": 300, "seconds": 1.0, "layer_sparsity": {}}


def test_search_chart_plots_ratio_against_drop_with_intervals():
  summary = {"run_id": "r1", "search": {
      "dense_accuracy": 0.98, "max_accuracy_drop": 0.01, "accuracy_decision": "confident",
      "stopped": "budget: level 0.998 over it", "dense_weights_gzip_bytes": 100_000,
      "trials": [_trial(0.9, -0.003, -0.01, 0.004, 9_000, True),
                 _trial(0.998, 0.02, 0.005, 0.04, 900, False),
                 _trial(0.949, 0.0, -0.006, 0.006, 5_000, True)]}}
  made = {name: png for name, _, png in report.charts(summary)}
  assert base64.b64decode(made["search"])[:8] == b"\x89PNG\r\n\x1a\n"
  assert "search" not in {name for name, _, _ in report.charts({"search": {"trials": []}})}


def test_sensitivity_chart_from_the_measured_layers():
  layer = lambda weights, increases: {"weights": weights, "sparsities": [0.5, 0.9, 1.0],
                                      "loss_increase": increases, "metric_drop": [0, 0, 0]}
  summary = {"run_id": "r1", "layer_sparsity": {"conv": 0.3, "dense": 0.95},
             "sensitivity": {"examples": 300, "layers": {"conv": layer(144, [0.5, 6.0, 9.0]),
                                                         "dense": layer(9000, [0.0, 0.1, 2.0])}}}
  made = {name: png for name, _, png in report.charts(summary)}
  assert base64.b64decode(made["sensitivity"])[:8] == b"\x89PNG\r\n\x1a\n"
  assert "sensitivity" not in {name for name, _, _ in report.charts({"sensitivity": None})}
