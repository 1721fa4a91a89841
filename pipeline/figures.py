"""Each component's key figure for `bonsai run`'s progress lines, read back from MLMD."""
import json
import os
from typing import Any, Callable, Dict, List, Tuple

import tensorflow as tf
from ml_metadata import metadata_store
from tensorflow_metadata.proto.v0 import statistics_pb2

from tfx_bonsai.components.common import model_io


def node_outputs(store, pipeline_name: str, node_id: str) -> Tuple[str, Dict[str, List[Any]]]:
  """("CACHED" or "ran", {output key: [MLMD artifact]}) of `node_id` in the latest run."""
  run = max(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)
  node = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
  if node is None:
    return "ran", {}
  in_run = {e.id for e in store.get_executions_by_context(run.id)}
  executions = [e for e in store.get_executions_by_context(node.id) if e.id in in_run]
  if not executions:
    return "ran", {}
  execution = max(executions, key=lambda e: e.id)
  state = "CACHED" if execution.last_known_state == execution.CACHED else "ran"
  ids: Dict[str, List[int]] = {}
  for event in store.get_events_by_execution_ids([execution.id]):
    outputs = (event.OUTPUT, event.DECLARED_OUTPUT, event.INTERNAL_OUTPUT)  # resolver: internal
    if event.type in outputs and event.path.steps:
      ids.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
  found = {a.id: a for a in store.get_artifacts_by_id([i for v in ids.values() for i in v])}
  return state, {key: [found[i] for i in v if i in found] for key, v in ids.items()}


def _props(artifacts: List[Any]) -> Dict[str, Any]:
  """Properties and custom properties of the first artifact (int, float and string values)."""
  out: Dict[str, Any] = {}
  if artifacts:
    for name, value in [*artifacts[0].properties.items(), *artifacts[0].custom_properties.items()]:
      kind = value.WhichOneof("value")
      if kind in ("int_value", "double_value", "string_value"):
        out[name] = getattr(value, kind)
  return out


def mb(n) -> str:
  return "n/a" if n is None else f"{n / 1e6:.2f} MB"


def _splits(artifact) -> List[str]:
  return json.loads(_props([artifact]).get("split_names") or "[]")


def _example_counts(statistics) -> str:
  """E.g. `train 1,437, eval 360 examples`, from StatisticsGen's FeatureStats.pb."""
  counts = []
  for split in _splits(statistics):
    path = os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb")
    if tf.io.gfile.exists(path):
      stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(
          tf.io.gfile.GFile(path, "rb").read())
      counts.append(f"{split} {sum(d.num_examples for d in stats.datasets):,}")
  return ", ".join(counts) + " examples" if counts else ""


def key_figure(node_id: str, outputs: Dict[str, List[Any]]) -> str:
  """One short phrase: what the node produced (e.g. `sparsity 0.900, eval accuracy 0.961`)."""
  if outputs.get("examples") and node_id.endswith("ExampleGen"):
    return "splits " + ", ".join(_splits(outputs["examples"][0]))
  if outputs.get("statistics"):
    return _example_counts(outputs["statistics"][0])
  if outputs.get("schema") and node_id in ("SchemaGen", "ImportSchemaGen"):
    path = os.path.join(outputs["schema"][0].uri, "schema.pbtxt")
    text = tf.io.gfile.GFile(path).read() if tf.io.gfile.exists(path) else ""
    return f"{text.count('feature {')} features" + (
        ", imported" if node_id == "ImportSchemaGen" else "")
  if outputs.get("pruned_model"):
    p = _props(outputs["pruned_model"])
    accuracy = p.get("eval_accuracy")
    return (f"sparsity {p.get('sparsity', float('nan')):.3f}"
            + ("" if accuracy is None else f", eval accuracy {accuracy:.3f}"))
  if outputs.get("tflite_model"):
    p = _props(outputs["tflite_model"])
    return (f"{p.get('quantization')} TFLite {mb(p.get('tflite_bytes'))} "
            f"({mb(p.get('tflite_gzip_bytes'))} gzip), agreement {p.get('agreement', 0.0):.3f}")
  if outputs.get("pushed_model"):
    p = _props(outputs["pushed_model"])
    return f"pushed to {p.get('pushed_destination')}" if p.get("pushed") == 1 else "nothing pushed"
  if outputs.get("blessing"):
    p = _props(outputs["blessing"])
    if "global_sparsity" in p:  # SparsityValidator
      deployed = p.get("deployed_sparsity")
      return (("passed" if p.get("blessed") == 1 else "FAILED")
              + f", sparsity {p['global_sparsity']:.3f} Keras"
              + ("" if deployed is None else f", {deployed:.3f} TFLite"))
    figures = ["BLESSED" if p.get("blessed") == 1 else "NOT BLESSED"]
    if p.get("compression_ratio") is not None:
      figures.append(f"{p['compression_ratio']:.1f}x smaller")
    if p.get("candidate_accuracy") is not None and p.get("dense_accuracy") is not None:
      figures.append(f"accuracy {p['candidate_accuracy']:.3f} (dense {p['dense_accuracy']:.3f})")
    return ", ".join(figures)
  if outputs.get("model") and node_id == "Trainer":
    serving = model_io.serving_dir(outputs["model"][0].uri)
    return f"dense SavedModel {mb(model_io.dir_size(serving))}"
  if "resolver" in node_id:
    model = (outputs.get("model") or [None])[0]
    return f"production model {model.uri}" if model is not None else "no production model yet"
  return ""


def describer(metadata_config, pipeline_name: str) -> Callable[[str], Tuple[str, str]]:
  """node id -> (CACHED or ran, key figure), for console.ComponentLines."""
  def describe(node_id: str) -> Tuple[str, str]:
    state, outputs = node_outputs(metadata_store.MetadataStore(metadata_config), pipeline_name,
                                  node_id)
    return state, key_figure(node_id, outputs)
  return describe
