"""Orchestration overhead: the full local TFX pipeline vs a plain script doing the same work.

(a) `pipeline.runners.local.run` on `configs/digits.yaml` with a fresh temporary
pipeline root, data and push directories and the cache off: ExampleGen, statistics,
schema, Trainer, PruneTrainer, SparsityValidator, TFLiteConverter, the TFMA gate and
the Pusher, with MLMD and Beam (DirectRunner, multi-processing, all cores).
(b) The same work with the pure modules in one process, as `bench/compression.py`
does: the digits split 4:1, the seed CNN trained for the config's epochs and steps,
pruned with the config's PruningConfig (configs/digits.yaml leaves the sparsity search
off), the sparsity validated, converted (int8 + sparse) with the agreement check and
the latency measure the TFLiteConverter runs, the dense float TFLite for the gate's
ratio, and plain accuracies of the dense Keras model and the deployable TFLite on the
eval split.
`overhead_ratio` = (a) seconds / (b) seconds. (a) runs twice: with the config's Beam
arguments (in-memory DirectRunner: one process, right for 1,797 examples) and with the
multi-processing DirectRunner on all cores (what large data wants; each Beam component
then spends seconds starting worker processes).
"""
import dataclasses
import os
import tempfile
import time
from typing import Any, Dict, List, Optional

from absl import logging
from ml_metadata.metadata_store import metadata_store
import numpy as np
import tensorflow as tf

from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.sparsity_validator import sparsity
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import latency
from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.models import digits_trainer
from tfx_bonsai.pipeline.runners import local

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_CONFIG = os.path.join(REPO, "configs", "digits.yaml")


MULTI_PROCESSING = "runner.beam_args=[--direct_running_mode=multi_processing, --direct_num_workers=0]"


def load_config(root: str, *overrides: str) -> config_lib.BonsaiConfig:
  """configs/digits.yaml with every path under `root` and the cache off."""
  return config_lib.load(DIGITS_CONFIG, [
      f"pipeline_root={os.path.join(root, 'pipeline')}", f"data.path={os.path.join(root, 'data')}",
      f"push.destination={os.path.join(root, 'serving')}", "runner.enable_cache=false",
      *overrides])


def component_seconds(config: config_lib.BonsaiConfig) -> Dict[str, float]:
  """{component: seconds from its execution's registration to its publication} from MLMD."""
  store = metadata_store.MetadataStore(local.metadata_config(config))
  names = {t.id: t.name.rsplit(".", 1)[-1] for t in store.get_execution_types()}
  seconds: Dict[str, float] = {}
  for execution in store.get_executions():
    name = names[execution.type_id]
    seconds[name] = seconds.get(name, 0.0) + (
        execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1e3
  return seconds


def run_pipeline(config: config_lib.BonsaiConfig) -> Dict[str, Any]:
  """Runs the pipeline (INFO logs silenced); returns seconds, blessed, accuracy figures."""
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.WARNING)
  start = time.monotonic()
  try:
    summary = local.run(config)
  finally:
    logging.set_verbosity(verbosity)
  seconds = time.monotonic() - start
  measured = (summary.get("verdict") or {}).get("measured", {})
  return {"seconds": seconds, "blessed": bool(summary.get("blessed")),
          "candidate_accuracy": measured.get("candidate_accuracy"),
          "dense_accuracy": measured.get("dense_accuracy"),
          "compression_ratio": summary.get("compression_ratio"),
          "sparsity_passed": summary.get("sparsity_passed"),
          "component_seconds": component_seconds(config)}


def run_plain(config: config_lib.BonsaiConfig, seed: int = 0) -> Dict[str, Any]:
  """The pipeline's training, pruning, validation, conversion and evaluation as a script."""
  start = time.monotonic()
  tf.keras.utils.set_random_seed(seed)
  images, labels = digits.load_digits_28()
  order = np.random.default_rng(seed).permutation(len(labels))
  cut = len(order) * config.data.train_buckets // (config.data.train_buckets
                                                   + config.data.eval_buckets)
  (x, y), (xe, ye) = ((images[order[:cut]], labels[order[:cut]]),
                      (images[order[cut:]], labels[order[cut:]]))
  epochs = int(config.trainer.custom_config.get("epochs", 4))
  dense = digits_trainer.build_seed_cnn()
  dense.fit(x, y, epochs=epochs, batch_size=32,
            steps_per_epoch=max(1, config.trainer.train_steps // epochs), verbose=0)
  dense_accuracy = float(np.mean(np.argmax(dense.predict(xe, verbose=0), 1) == ye))

  p = config.pruning
  known = {f.name for f in dataclasses.fields(pruning.PruningConfig)}
  pruning_config = pruning.PruningConfig(**{
      **{k: v for k, v in dataclasses.asdict(p).items() if k in known},
      "include_layers": tuple(p.include_layers), "exclude_layers": tuple(p.exclude_layers)})
  train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed).batch(
      pruning_config.batch_size)
  evaluation = tf.data.Dataset.from_tensor_slices((xe, ye)).batch(pruning_config.batch_size)
  pruned = pruning.prune(dense, train, evaluation, len(y), pruning_config).model
  report = sparsity.validate(pruned, sparsity.SparsityTargets(
      min_sparsity=config.sparsity.min_sparsity, tolerance=config.sparsity.tolerance))

  c = config.conversion
  conversion_config = conversion.ConversionConfig(
      quantization=c.quantization, sparse_weights=c.sparse_weights, int8_io=c.int8_io,
      representative_examples=c.representative_examples,
      agreement_examples=c.agreement_examples, min_agreement=c.min_agreement)
  candidate, _ = conversion.convert_and_check(
      pruned, conversion_config, {"image": x[:c.representative_examples]},
      {"image": xe[:c.agreement_examples]})
  pruned_float = conversion.convert(pruned, conversion.ConversionConfig(quantization="none"))
  latency.compare(candidate, pruned_float, threads=os.cpu_count() or 1)
  dense_float = conversion.convert(dense, conversion.ConversionConfig(quantization="none"))
  ratio = len(dense_float) / conversion.gzip_size(candidate)
  predictions = conversion.run_tflite(candidate, {"image": xe})
  candidate_accuracy = float(np.mean(np.argmax(predictions, 1) == ye))
  return {"seconds": time.monotonic() - start, "candidate_accuracy": candidate_accuracy,
          "dense_accuracy": dense_accuracy, "compression_ratio": ratio,
          "sparsity_passed": report.passed}


def rows_for(pipeline: Dict[str, Any], plain: Dict[str, Any],
             multi_processing: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
  """The result rows; each pipeline's carries `overhead_ratio` (pipeline / plain seconds)."""
  rows = [
      {"benchmark": "overhead", "config": "plain script (pure modules)", **plain,
       "overhead_ratio": 1.0},
      {"benchmark": "overhead", "config": "local TFX pipeline (cache off)", **pipeline,
       "overhead_ratio": pipeline["seconds"] / plain["seconds"]},
  ]
  if multi_processing is not None:
    rows.append({"benchmark": "overhead", "config": "  same, Beam multi-processing",
                 **multi_processing,
                 "overhead_ratio": multi_processing["seconds"] / plain["seconds"]})
  return rows


def table(rows: List[Dict[str, Any]]) -> str:
  head = f"{'config':32} {'seconds':>8} {'vs plain':>9} {'candidate acc':>14} {'dense acc':>10}"
  lines = [head, "-" * len(head)]

  def accuracy(value):
    return f"{value:.4f}" if isinstance(value, float) else "-"

  for r in rows:
    lines.append(f"{r['config']:32} {r['seconds']:8.1f} {r['overhead_ratio']:8.2f}x "
                 f"{accuracy(r.get('candidate_accuracy')):>14} "
                 f"{accuracy(r.get('dense_accuracy')):>10}")
  for r in rows:
    if r.get("component_seconds"):
      parts = sorted(r["component_seconds"].items(), key=lambda item: -item[1])
      inside = sum(r["component_seconds"].values())
      lines.append(f"  {r['config']}: {inside:.0f} s of {r['seconds']:.0f} s inside components "
                   "(MLMD registration -> publication): "
                   + ", ".join(f"{name} {value:.0f}" for name, value in parts))
  return "\n".join(lines)


def run(seeds=(0,)) -> List[Dict[str, Any]]:
  with tempfile.TemporaryDirectory() as tmp:
    config = load_config(tmp)
    plain = run_plain(config, seeds[0])
    print(f"  overhead: plain script {plain['seconds']:.0f} s", flush=True)
    pipeline = run_pipeline(config)
    print(f"  overhead: local pipeline {pipeline['seconds']:.0f} s", flush=True)
  with tempfile.TemporaryDirectory() as tmp:
    multi = run_pipeline(load_config(tmp, MULTI_PROCESSING))
    print(f"  overhead: local pipeline, Beam multi-processing {multi['seconds']:.0f} s", flush=True)
  rows = rows_for(pipeline, plain, multi)
  print(table(rows), flush=True)
  return rows
