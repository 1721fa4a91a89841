"""Pruning that keeps compact models alive (issue 21): each recovery means against the old
default, on the compact MobileNetV2-style model (`bench/allocation.py`) and the nested Keras
MobileNetV2 (`bench/nested_base.py`), on MNIST-5k (the `[bench]` extra; digits without it).

Per model the dense model is trained once on the train role; every recipe then prunes a copy
of it on the same examples, is converted to int8 TFLite, and is scored on the eval role
(nothing chose on it): sparsity, ratio (dense float TFLite / deployable gzip, the gate's
count), accuracy, the paired drop against the dense Keras model with its 95% interval
(`components/common/stats.py` `compare`), whether that upper bound is within the model's
budget, and seconds. Recipes:
  old-default     the settings before issue 21 (uniform 0.9, constant rate, no recovery means)
  +distillation / +batchnorm / +lr-schedule   the old default plus one means
  +search         the old fine-tune, searched from 0.5 with sensitivity allocation
  +batchnorm+distillation(+search)   both means that helped (and searched as +search)
PruneTrainer's default fine-tune is +batchnorm.

  scripts/env-run python -m bench.recovery [--models compact nested] [--recipes NAME ...]
      [--train N] [--dense-epochs N] [--prune-epochs N]   (reduced sizes for a quick look)
"""
import argparse
import dataclasses
import json
import time
from typing import Dict, List

import tfx_bonsai  # noqa: F401  (Keras 2 before TensorFlow)
import numpy as np
import tensorflow as tf

from bench import allocation
from bench import compression
from bench import nested_base
from tfx_bonsai.components.common import stats
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search as search_lib
from tfx_bonsai.components.prune_trainer import settings
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.models import mnist

# The goals: the compact model within 1 pp at >= 8x, the nested one within 3 pp at >= 6x.
BUDGETS = {"compact": 0.01, "nested": 0.03}
GOAL_RATIOS = {"compact": 8.0, "nested": 6.0}
BUILDERS = {"compact": allocation.build_compact_mobilenet, "nested": nested_base._model}  # pylint: disable=protected-access
DENSE_EPOCHS = {"compact": 20, "nested": 20}
# The fine-tune before issue 21, spelled out so that it stays the old one.
OLD_DEFAULT = {"distillation": 0.0, "batchnorm_batches": 0,
               "learning_rate_schedule": settings.CONSTANT, "pruning_end": 1.0}
MEANS = {
    "old-default": {},
    "+distillation": {"distillation": 0.5},
    "+batchnorm": {"batchnorm_batches": 32},
    "+lr-schedule": {"learning_rate_schedule": settings.COSINE, "pruning_end": 0.75},
}
SEARCH_LEVELS = (0.5, 0.75, 0.85, 0.9, 0.95, 0.97, 0.98)


def data(seed: int):
  """(train, selection, eval) pairs of (images, labels) and the data set's name."""
  try:
    return mnist.split_roles(seed), "mnist-5k"
  except mnist.MissingExtraError:
    (x, y), (xe, ye) = compression._split(seed)  # pylint: disable=protected-access
    fit = compression.TRAIN - compression.VALIDATION
    return ((x[:fit], y[:fit]), (x[fit:], y[fit:]), (xe, ye)), "digits"


def recipes(model_name: str) -> Dict[str, tuple]:
  """name -> (PruningConfig, SearchConfig or None)."""
  old = {name: (pruning.PruningConfig(**{**OLD_DEFAULT, **change}), None)
         for name, change in MEANS.items()}
  search = search_lib.SearchConfig(levels=SEARCH_LEVELS, max_accuracy_drop=BUDGETS[model_name])
  old["+search"] = (pruning.PruningConfig(allocation=settings.SENSITIVITY, **OLD_DEFAULT), search)
  # The recipe for MobileNet-class models: both means that helped, searched as +search.
  both = {**OLD_DEFAULT, "batchnorm_batches": 32, "distillation": 0.5}
  old["+batchnorm+distillation"] = (pruning.PruningConfig(**both), None)
  old["+batchnorm+distillation+search"] = (
      pruning.PruningConfig(allocation=settings.SENSITIVITY, **both), search)
  return old


def run_model(model_name: str, seed: int = 0, names=None, train_limit: int = 0,
              dense_epochs: int = 0, prune_epochs: int = 0) -> List[Dict]:
  (x, y), (xs, ys), (xe, ye) = (roles := data(seed))[0]
  if train_limit:
    x, y = x[:train_limit], y[:train_limit]
  tf.keras.utils.set_random_seed(seed)
  start = time.time()
  dense = BUILDERS[model_name]()
  dense.fit(x, y, epochs=dense_epochs or DENSE_EPOCHS[model_name], batch_size=32, verbose=0)
  train_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed).batch(32)
  pruning.recalibrate_batchnorm(dense, train_ds, 32)   # Keras' MobileNetV2: momentum 0.999
  dense_s = time.time() - start
  dense_correct = np.argmax(dense.predict(xe, verbose=0), 1) == ye
  dense_tflite = conversion.convert(dense, conversion.ConversionConfig(quantization="none"))
  representative = {digits.IMAGE_KEY: x[:200]}
  budget = BUDGETS[model_name]

  def row(name, model, sparsity, seconds, extra=None):
    deployable = conversion.convert(model, conversion.ConversionConfig(quantization="int8"),
                                    representative)
    correct = np.argmax(conversion.run_tflite(deployable, {digits.IMAGE_KEY: xe}), 1) == ye
    comparison = stats.compare(search_lib.paired_counts(dense_correct, correct), budget)
    gzip_bytes = conversion.gzip_size(deployable)
    out = {"benchmark": "recovery", "model": model_name, "config": name, "seed": seed,
           "data": roles[1], "train_examples": int(y.size), "eval_examples": int(ye.size),
           "sparsity": sparsity, "ratio": len(dense_tflite) / gzip_bytes,
           "dense_tflite_bytes": len(dense_tflite), "deployable_gzip_bytes": gzip_bytes,
           "dense_accuracy": float(np.mean(dense_correct)), "accuracy": float(np.mean(correct)),
           "drop_pp": 100 * comparison.drop, "drop_ci95_high_pp": 100 * comparison.high,
           "budget_pp": 100 * budget, "within_budget": comparison.position == stats.WITHIN,
           "goal_ratio": GOAL_RATIOS[model_name], "seconds": seconds, **(extra or {})}
    print(f"  recovery {model_name} {name}: sparsity {sparsity:.3f} ratio {out['ratio']:.1f}x "
          f"accuracy {out['accuracy']:.4f} drop {out['drop_pp']:+.2f}pp (95% high "
          f"{out['drop_ci95_high_pp']:+.2f}, budget {100 * budget:g}) {seconds:.0f}s", flush=True)
    return out

  rows = [row("dense (int8 only)", dense, 0.0, dense_s, {"dense_epochs": dense_epochs or DENSE_EPOCHS[model_name]})]
  for name, (config, search_config) in recipes(model_name).items():
    if names and name not in names:
      continue
    if prune_epochs:
      config = dataclasses.replace(config, epochs=prune_epochs)
    tf.keras.utils.set_random_seed(seed)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed).batch(
        config.batch_size)
    selection = tf.data.Dataset.from_tensor_slices((xs, ys)).batch(256)
    start = time.time()
    extra = {}
    if search_config is None:
      result = pruning.prune(compression._copy(dense), train_ds, None, len(y), config)  # pylint: disable=protected-access
      model, sparsity = result.model, result.sparsity
    else:
      found = search_lib.search(compression._copy(dense), train_ds, selection, len(y), config,  # pylint: disable=protected-access
                                search_config)
      model, sparsity = found.model, found.result.sparsity
      extra = {"search_within_budget": found.within_budget,
               "trial_levels": [t.level for t in found.trials], "stopped": found.stopped}
    rows.append(row(name, model, sparsity, time.time() - start, extra))
  return rows


def table(rows: List[Dict]) -> str:
  head = (f"{'model':8} {'config':18} {'sparsity':>8} {'ratio':>7} {'accuracy':>8} "
          f"{'drop pp':>8} {'95% high':>8} {'budget':>6} {'ok':>3} {'seconds':>8}")
  lines = [head, "-" * len(head)]
  for r in rows:
    ok = "yes" if r["within_budget"] and r["ratio"] >= r["goal_ratio"] else "no"
    lines.append(f"{r['model']:8} {r['config']:18} {r['sparsity']:8.3f} {r['ratio']:6.1f}x "
                 f"{r['accuracy']:8.4f} {r['drop_pp']:+8.2f} {r['drop_ci95_high_pp']:+8.2f} "
                 f"{r['budget_pp']:5.0f}pp {ok:>3} {r['seconds']:8.0f}")
  return "\n".join(lines)


def run(seeds=(0,), models=tuple(BUILDERS), **sizes) -> List[Dict]:
  rows = []
  for seed in seeds:
    for model_name in models:
      rows.extend(run_model(model_name, seed, **sizes))
  print(table(rows), flush=True)
  return rows


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="*", default=list(BUILDERS), choices=list(BUILDERS))
  parser.add_argument("--recipes", nargs="*", default=None)
  parser.add_argument("--train", type=int, default=0, help="train examples (0: the role's all)")
  parser.add_argument("--dense-epochs", type=int, default=0)
  parser.add_argument("--prune-epochs", type=int, default=0)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  found_rows = run((0,), args.models, names=args.recipes, train_limit=args.train,
                   dense_epochs=args.dense_epochs, prune_epochs=args.prune_epochs)
  if args.out:
    with open(args.out, "w") as f:
      json.dump(found_rows, f, indent=2)
