"""What a finished run produced, read back from MLMD: sizes, accuracies, sparsity, verdict, push."""
import gzip
import json
import os
from typing import Any, Dict, List, Optional

import tensorflow as tf
from ml_metadata import metadata_store
from tfx.utils import io_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.pipeline import console

SUMMARIES_DIR = console.RUNS_DIR


def _properties(artifact) -> Dict[str, Any]:
  out = {}
  for key, value in artifact.custom_properties.items():
    kind = value.WhichOneof("value")
    out[key] = getattr(value, kind) if kind in ("int_value", "double_value", "string_value") else None
  return out


def _latest_run(store) -> Optional[Any]:
  runs = store.get_contexts_by_type("pipeline_run")
  return max(runs, key=lambda c: c.id) if runs else None


def run_outputs(store, pipeline_root: str, run_context) -> Dict[str, Any]:
  """{"<node>/<output_key>": artifact} for every output of the run's executions (cached too)."""
  executions = store.get_executions_by_context(run_context.id)
  events = store.get_events_by_execution_ids([e.id for e in executions])
  output_ids = sorted({e.artifact_id for e in events
                       if e.type in (e.OUTPUT, e.DECLARED_OUTPUT)})
  outputs = {}
  root = pipeline_root.rstrip("/") + "/"
  for artifact in store.get_artifacts_by_id(output_ids):
    if not artifact.uri.startswith(root):
      continue
    parts = artifact.uri[len(root):].split("/")
    if len(parts) >= 2:
      key = f"{parts[0]}/{parts[1]}"
      if key not in outputs or outputs[key].id < artifact.id:
        outputs[key] = artifact
  return outputs


def weights_gzip_bytes(saved_model_dir: str) -> int:
  """Gzipped bytes of a SavedModel's variables: what pruning's zeros save before quantizing."""
  files = tf.io.gfile.glob(os.path.join(saved_model_dir, "variables", "variables.data-*"))
  return sum(len(gzip.compress(tf.io.gfile.GFile(f, "rb").read(), compresslevel=6)) for f in files)


def collect(metadata_config, pipeline_root: str) -> Dict[str, Any]:
  """The latest run's figures as a plain dict (also what `bonsai report` draws)."""
  store = metadata_store.MetadataStore(metadata_config)
  run = _latest_run(store)
  if run is None:
    raise ValueError(f"no run recorded in the metadata of {pipeline_root}")
  out = run_outputs(store, pipeline_root, run)
  summary: Dict[str, Any] = {"run_id": run.name, "pipeline_root": pipeline_root}
  if "Trainer/model" in out:
    summary["dense_savedmodel_bytes"] = model_io.dir_size(model_io.serving_dir(out["Trainer/model"].uri))
  if "PruneTrainer/pruned_model" in out:
    props = _properties(out["PruneTrainer/pruned_model"])
    summary["pruned_weights_gzip_bytes"] = weights_gzip_bytes(
        model_io.serving_dir(out["PruneTrainer/pruned_model"].uri))
    summary["pruned_sparsity"] = props.get("sparsity")
    summary["pruned_eval_accuracy"] = props.get("eval_accuracy")
    path = os.path.join(out["PruneTrainer/pruned_model"].uri, "pruning.json")
    if tf.io.gfile.exists(path):
      pruning_report = json.loads(io_utils.read_string_file(path))
      summary["layer_sparsity"] = pruning_report.get("layer_sparsity")
      summary["search"] = pruning_report.get("search")
      summary["allocation"] = pruning_report.get("allocation")
      summary["sensitivity"] = pruning_report.get("sensitivity")
      summary["collaborative"] = pruning_report.get("collaborative")
  if "SparsityValidator/blessing" in out:
    blessing = out["SparsityValidator/blessing"]
    summary["sparsity_passed"] = _properties(blessing).get("blessed") == 1
    summary["global_sparsity"] = _properties(blessing).get("global_sparsity")
    summary["deployed_sparsity"] = _properties(blessing).get("deployed_sparsity")
  if "SparsityValidator/report" in out:
    path = os.path.join(out["SparsityValidator/report"].uri, "sparsity.json")
    if tf.io.gfile.exists(path):
      summary["sparsity_report"] = json.loads(io_utils.read_string_file(path))
  if "TFLiteConverter/tflite_model" in out:
    props = _properties(out["TFLiteConverter/tflite_model"])
    for key in ("tflite_bytes", "tflite_gzip_bytes", "quantization", "sparse_weights",
                "agreement", "agreement_kind"):
      summary[f"candidate_{key}"] = props.get(key)
    summary["candidate_uri"] = out["TFLiteConverter/tflite_model"].uri
  if "CompressionEvaluator/blessing" in out:
    blessing = out["CompressionEvaluator/blessing"]
    summary["blessed"] = _properties(blessing).get("blessed") == 1
    verdict = blessing_lib.read_verdict(_artifact_view(blessing)) or {}
    checks = {c["name"]: c for c in verdict.get("checks", [])}
    summary["verdict"] = verdict
    summary["compression_ratio"] = checks.get("compression_ratio", {}).get("measured")
    summary["max_accuracy_drop"] = checks.get("accuracy_drop", {}).get("threshold")
  if "Pusher/pushed_model" in out:
    props = _properties(out["Pusher/pushed_model"])
    summary["pushed"] = props.get("pushed") == 1
    summary["pushed_destination"] = props.get("pushed_destination")
  summary["components"] = sorted(out)
  return summary


class _artifact_view:  # pylint: disable=invalid-name
  """The bit of a TFX artifact that blessing.read_verdict needs, over an MLMD proto."""

  def __init__(self, proto):
    self.uri = proto.uri


def save(summary: Dict[str, Any], pipeline_root: str) -> str:
  directory = os.path.join(pipeline_root, SUMMARIES_DIR)
  tf.io.gfile.makedirs(directory)
  path = os.path.join(directory, f"{summary['run_id']}.json")
  io_utils.write_string_file(path, json.dumps(summary, indent=2, sort_keys=True, default=str))
  return path


def _mb(n) -> str:
  return "n/a" if n is None else f"{n / 1e6:.3f} MB"


def _f(x, fmt="{:.4f}") -> str:
  return "n/a" if x is None else fmt.format(x)


def _search_line(search: Optional[Dict[str, Any]]) -> str:
  if not search:
    return "off"
  trials = search["trials"]
  accepted = [t for t in trials if t["accepted"]]
  best = max(accepted, key=lambda t: t["sparsity"]) if accepted else None
  return (f"{len(trials)} trials, kept sparsity {best['sparsity']:.4f} (drop {best['accuracy_drop']:+.4f})"
          if best else f"{len(trials)} trials, none within budget")


def _collaborative_line(stages: Optional[List[Dict[str, Any]]]) -> str:
  if not stages:
    return "off"
  return ", ".join(f"{s['stage']} {s['sparsity']:.4f}"
                   + (f" ({s['distinct_values']} values)" if s["stage"] == "cluster" else "")
                   + ("" if s.get("accuracy") is None else f" acc {s['accuracy']:.4f}")
                   for s in stages)


def format_table(summary: Dict[str, Any]) -> str:
  """The end-of-run table printed by `bonsai run`."""
  verdict = summary.get("verdict") or {}
  measured = verdict.get("measured", {})
  rows: List[tuple] = [
      ("run", summary.get("run_id")),
      ("dense SavedModel", _mb(summary.get("dense_savedmodel_bytes"))),
      ("dense float TFLite", _mb(measured.get("dense_tflite_bytes"))),
      ("candidate TFLite", f"{_mb(summary.get('candidate_tflite_bytes'))} raw, "
                           f"{_mb(summary.get('candidate_tflite_gzip_bytes'))} gzip "
                           f"({summary.get('candidate_quantization')}"
                           f"{', sparse' if summary.get('candidate_sparse_weights') else ''})"),
      ("sparsity search", _search_line(summary.get("search"))),
      ("allocation", summary.get("allocation") or "n/a"),
      ("collaborative", _collaborative_line(summary.get("collaborative"))),
      ("sparsity (kernels)", f"{_f(summary.get('global_sparsity'))} Keras, "
                             f"{_f(summary.get('deployed_sparsity'))} TFLite "
                             f"({'passed' if summary.get('sparsity_passed') else 'FAILED'})"),
      ("TFLite agreement", _f(summary.get("candidate_agreement"))),
      ("accuracy dense", _f(measured.get("dense_accuracy"))),
      ("accuracy candidate", _f(measured.get("candidate_accuracy"))),
      ("accuracy production", _f(measured.get("production_accuracy"))),
      ("compression ratio", _f(summary.get("compression_ratio"), "{:.1f}x")),
      ("verdict", "BLESSED" if summary.get("blessed") else
       "NOT BLESSED: " + "; ".join(verdict.get("reasons", []) or ["no verdict"])),
      ("pushed", summary.get("pushed_destination") if summary.get("pushed") else "nothing pushed"),
  ]
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
