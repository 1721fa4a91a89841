"""Compression at accuracy parity: the seed's recipe vs bonsai's defaults, on the seed's CNN.

For each recipe and seed: train the dense CNN 10 epochs on digits (1,137 examples; 300 more held out
for the search's validation), prune, convert, and measure the
dense Keras file (.h5, as the seed measured), the dense float TFLite, the deployable
TFLite raw and gzipped, the ratio (dense float TFLite / deployable gzip, the gate's
count; the seed's own count vs the .h5 is printed too) and the accuracy drop of the
deployable TFLite vs the dense Keras model on the same eval split.

Every drop is also measured against an iso-epoch dense control: the dense model fine-tuned,
with the same optimiser (Adam at the pruning learning rate), for as many epochs as the
candidate's lineage (pruning epochs, the accepted search trials' epochs, clustering and QAT
epochs). Both drops are paired on the same eval examples and carry the valid (Tango score)
95% interval of `components/common/stats.py`; the headline is the less favourable of the two.
"""
import dataclasses
import os
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from tfx_bonsai.components.common import stats
from tfx_bonsai.components.prune_trainer import collaborative as collaborative_lib
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search as search_lib
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.models import digits_trainer

TRAIN = 1437
# Every recipe trains and fine-tunes on the first TRAIN - VALIDATION train examples; the
# search validates on the last VALIDATION, so the reported accuracy (on the untouched eval
# split) is not the one it selected on.
VALIDATION = 300
# The dense model is trained to an acceptable accuracy first, as the seed says.
DENSE_EPOCHS = 10


@dataclasses.dataclass(frozen=True)
class Recipe:
  name: str
  pruning: pruning.PruningConfig
  conversion: conversion.ConversionConfig
  search: Optional[search_lib.SearchConfig] = None
  collaborative: Optional[collaborative_lib.CollaborativeConfig] = None


RECIPES = [
    # The seed as written: 50% -> 90%, frequency 100, end_step = 45 steps x 4 epochs,
    # dynamic-range quantization.
    Recipe("seed", pruning.PruningConfig(frequency=100, end_step=180),
           conversion.ConversionConfig(quantization="dynamic")),
    # bonsai's defaults: the schedule that reaches the target, full-integer quantization.
    Recipe("bonsai-default", pruning.PruningConfig(),
           conversion.ConversionConfig(quantization="int8")),
    Recipe("bonsai-default+sparse", pruning.PruningConfig(),
           conversion.ConversionConfig(quantization="int8", sparse_weights=True)),
    # The search: highest global level (magnitude-allocated per layer) within 1 pp.
    Recipe("bonsai-search", pruning.PruningConfig(),
           conversion.ConversionConfig(quantization="int8"),
           search_lib.SearchConfig(max_accuracy_drop=0.01)),
    # The search's model, then collaborative optimisation: 16 sparsity-preserving clusters
    # per layer and one epoch of PCQAT.
    Recipe("bonsai-search+pcqat", pruning.PruningConfig(),
           conversion.ConversionConfig(quantization="int8"),
           search_lib.SearchConfig(max_accuracy_drop=0.01),
           collaborative_lib.CollaborativeConfig(clusters=16, qat_epochs=1)),
]


def _split(seed: int):
  images, labels = digits.load_digits_28()
  order = np.random.default_rng(seed).permutation(len(labels))
  return ((images[order[:TRAIN]], labels[order[:TRAIN]]),
          (images[order[TRAIN:]], labels[order[TRAIN:]]))


def _roles(seed: int, data: str):
  """(fit, selection, eval) arrays: digits' train split cut into fit and selection, or
  MNIST-5k's three roles (3,000 / 500 / 1,500; the `[bench]` extra)."""
  if data == "mnist":
    from tfx_bonsai.pipeline.models import mnist  # pylint: disable=g-import-not-at-top
    return mnist.split_roles(seed)
  (x, y), evaluation = _split(seed)
  fit = TRAIN - VALIDATION  # every recipe trains and fine-tunes on the same examples
  return (x[:fit], y[:fit]), (x[fit:], y[fit:]), evaluation


def _h5_bytes(model) -> int:
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "model.h5")
    model.save(path, include_optimizer=False)
    return os.path.getsize(path)


def _copy(model):
  clone = tf.keras.models.clone_model(model)
  clone.set_weights(model.get_weights())
  return clone


def lineage_epochs(recipe: Recipe, found: Optional[search_lib.SearchResult]) -> int:
  """Fine-tune epochs between the dense model and the recipe's deployable model."""
  if found is None:
    epochs = recipe.pruning.epochs
  else:  # each accepted trial continued from the previous one
    accepted = sum(t.accepted for t in found.trials) if found.within_budget else 1
    epochs = accepted * recipe.search.epochs_per_trial
  if recipe.collaborative is not None:
    epochs += (recipe.collaborative.cluster_epochs if recipe.collaborative.clusters else 0)
    epochs += recipe.collaborative.qat_epochs
  return epochs


def drop_figures(baseline_correct: np.ndarray, candidate_correct: np.ndarray,
                 prefix: str) -> Dict[str, float]:
  """`{prefix}_pp`, `{prefix}_ci95_low_pp`, `{prefix}_ci95_high_pp`: the paired drop."""
  counts = search_lib.paired_counts(baseline_correct, candidate_correct)
  low, high = stats.drop_interval(counts)
  return {f"{prefix}_pp": 100 * counts.drop, f"{prefix}_ci95_low_pp": 100 * low,
          f"{prefix}_ci95_high_pp": 100 * high}


def run_seed(seed: int, recipes=RECIPES, data: str = "digits") -> List[Dict[str, float]]:
  """One row per recipe; the dense model is trained once per seed and each distinct pruning
  (recipes differing only in conversion share it) is done once."""
  tf.keras.utils.set_random_seed(seed)
  (x, y), (xv, yv), (xe, ye) = _roles(seed, data)
  fit = len(y)
  dense = digits_trainer.build_seed_cnn()
  dense.fit(x, y, epochs=DENSE_EPOCHS, batch_size=32, verbose=0)
  dense_correct = np.argmax(dense.predict(xe, verbose=0), 1) == ye
  dense_accuracy = float(np.mean(dense_correct))
  controls: Dict[int, np.ndarray] = {}

  def control_correct(epochs: int, learning_rate: float, batch_size: int) -> np.ndarray:
    if epochs not in controls:
      tf.keras.utils.set_random_seed(seed)
      control = _copy(dense)
      control.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
      control.fit(tf.data.Dataset.from_tensor_slices((x, y)).shuffle(fit, seed=seed).batch(
          batch_size), epochs=epochs, verbose=0)
      controls[epochs] = np.argmax(control.predict(xe, verbose=0), 1) == ye
      print(f"  compression control seed {seed}: dense + {epochs} epochs accuracy "
            f"{np.mean(controls[epochs]):.4f} (dense {dense_accuracy:.4f})", flush=True)
    return controls[epochs]

  dense_tflite = conversion.convert(dense, conversion.ConversionConfig(quantization="none"))
  dense_h5 = _h5_bytes(dense)
  pruned = {}
  rows = []
  for recipe in recipes:
    key = repr((recipe.pruning, recipe.search))  # (settings may hold lists: not hashable)
    if key not in pruned:
      tf.keras.utils.set_random_seed(seed)
      train_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(fit, seed=seed).batch(
          recipe.pruning.batch_size)
      start = time.time()
      trials = found = None
      if recipe.search is None:
        result = pruning.prune(_copy(dense), train_ds, None, fit, recipe.pruning)
      else:
        validation = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(256)
        found = search_lib.search(_copy(dense), train_ds, validation, fit, recipe.pruning,
                                  recipe.search)
        result, trials = found.result, len(found.trials)
      pruned[key] = (result, trials, time.time() - start, found)
    result, trials, prune_s, found = pruned[key]
    model, sparsity = result.model, result.sparsity
    if recipe.collaborative is not None:
      tf.keras.utils.set_random_seed(seed)
      train_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(fit, seed=seed).batch(
          recipe.pruning.batch_size)
      start = time.time()
      optimized = collaborative_lib.optimize(
          result.model, result.pruned_layers, train_ds, None, result.schedule.steps_per_epoch,
          recipe.collaborative, "sparse_categorical_crossentropy", ["accuracy"])
      model, sparsity = optimized.model, optimized.stages[-1].sparsity
      prune_s += time.time() - start
    representative = {"image": x[:200]} if recipe.conversion.quantization == "int8" else None
    deployable = conversion.convert(model, recipe.conversion, representative)
    predictions = conversion.run_tflite(deployable, {"image": xe})
    candidate_correct = np.argmax(predictions, 1) == ye
    accuracy = float(np.mean(candidate_correct))
    epochs = lineage_epochs(recipe, found)
    control = control_correct(epochs, recipe.pruning.learning_rate, recipe.pruning.batch_size)
    vs_dense = drop_figures(dense_correct, candidate_correct, "accuracy_drop")
    vs_control = drop_figures(control, candidate_correct, "accuracy_drop_vs_control")
    gzip_bytes = conversion.gzip_size(deployable)
    row = {
        "benchmark": BENCHMARK[data], "config": recipe.name, "seed": seed,
        "sparsity": sparsity, "dense_h5_bytes": dense_h5,
        "dense_tflite_bytes": len(dense_tflite), "deployable_bytes": len(deployable),
        "deployable_gzip_bytes": gzip_bytes, "ratio": len(dense_tflite) / gzip_bytes,
        "ratio_vs_h5": dense_h5 / gzip_bytes, "dense_accuracy": dense_accuracy,
        "accuracy": accuracy, **vs_dense, **vs_control,
        "eval_examples": int(ye.size), "lineage_epochs": epochs,
        "control_accuracy": float(np.mean(control)),
        # The less favourable baseline: the larger drop, and the larger upper bound.
        "headline_drop_pp": max(vs_dense["accuracy_drop_pp"],
                                vs_control["accuracy_drop_vs_control_pp"]),
        "headline_drop_ci95_high_pp": max(vs_dense["accuracy_drop_ci95_high_pp"],
                                          vs_control["accuracy_drop_vs_control_ci95_high_pp"]),
        "prune_seconds": prune_s, "search_trials": trials,
        "layer_sparsity": result.layer_sparsity,
        "search": found.report() if found is not None else None,
    }
    print(f"  {BENCHMARK[data]} {recipe.name} seed {seed}: sparsity {row['sparsity']:.4f} "
          f"ratio {row['ratio']:.1f}x drop {row['accuracy_drop_pp']:+.2f}pp "
          f"(CI high {row['accuracy_drop_ci95_high_pp']:+.2f}), vs {epochs}-epoch control "
          f"{row['accuracy_drop_vs_control_pp']:+.2f}pp "
          f"(CI high {row['accuracy_drop_vs_control_ci95_high_pp']:+.2f})", flush=True)
    rows.append(row)
  return rows


def summarize(rows: List[Dict[str, float]]) -> List[Dict[str, float]]:
  """Mean and spread (min..max) per recipe over seeds."""
  out = []
  for name in dict.fromkeys(r["config"] for r in rows):
    group = [r for r in rows if r["config"] == name]
    summary = {"benchmark": group[0]["benchmark"], "config": name, "seeds": len(group)}
    for key in ("sparsity", "ratio", "ratio_vs_h5", "accuracy_drop_pp", "deployable_bytes",
                "deployable_gzip_bytes",
                "dense_tflite_bytes", "dense_h5_bytes", "accuracy_drop_ci95_high_pp",
                "accuracy_drop_vs_control_pp", "accuracy_drop_vs_control_ci95_high_pp",
                "headline_drop_pp", "headline_drop_ci95_high_pp"):
      if not all(key in r for r in group):
        continue
      values = np.array([r[key] for r in group], dtype=float)
      summary[key] = float(values.mean())
      summary[f"{key}_min"], summary[f"{key}_max"] = float(values.min()), float(values.max())
    out.append(summary)
  return out


def table(summaries: List[Dict[str, float]]) -> str:
  head = (f"{'config':24} {'sparsity':>9} {'dense TFLite':>13} {'raw deploy':>11} {'gzip deploy':>12} "
          f"{'ratio':>16} {'ratio vs .h5':>13} {'acc drop pp':>16} {'vs ctrl':>7} "
          f"{'worst CI95 high':>6}")
  lines = [head, "-" * len(head)]
  for s in summaries:
    lines.append(
        f"{s['config']:24} {s['sparsity']:9.4f} {s['dense_tflite_bytes'] / 1e6:11.2f}MB "
        f"{s['deployable_bytes'] / 1e6:9.3f}MB "
        f"{s['deployable_gzip_bytes'] / 1e6:10.3f}MB "
        f"{s['ratio']:6.1f}x ({s['ratio_min']:.1f}-{s['ratio_max']:.1f}) {s['ratio_vs_h5']:12.1f}x "
        f"{s['accuracy_drop_pp']:+6.2f} ({s['accuracy_drop_pp_min']:+.2f}..{s['accuracy_drop_pp_max']:+.2f})"
        + (f" {s['accuracy_drop_vs_control_pp']:+6.2f} {s['headline_drop_ci95_high_pp_max']:+6.2f}"
           if "headline_drop_ci95_high_pp" in s else ""))
  return "\n".join(lines)


# The benchmark's name per data set: digits (1,137 fit / 300 selection / 360 eval) or
# MNIST-5k (3,000 / 500 / 1,500), where a 1 pp budget can be confirmed.
BENCHMARK = {"digits": "compression", "mnist": "compression-mnist"}
# On MNIST-5k only the recipes that aim at the ratio goal (the search, and the search with PCQAT),
# the search accepting levels within 2 pp on its 500 selection examples (which cannot confirm
# 1 pp short of a perfect match); the goal, an upper bound <= 1 pp, is judged on the 1,500
# eval examples.
MNIST_RECIPES = [dataclasses.replace(r, search=dataclasses.replace(r.search, max_accuracy_drop=0.02))
                 for r in RECIPES if r.name.startswith("bonsai-search")]


def run(seeds=(0, 1, 2), data: str = "digits") -> List[Dict[str, float]]:
  rows = []
  for seed in seeds:
    rows.extend(run_seed(seed, MNIST_RECIPES if data == "mnist" else RECIPES, data))
  summaries = summarize(rows)
  print(table(summaries), flush=True)
  return summaries + rows
