"""Latency at batch 1: the deployable TFLite model vs the dense float TFLite, XNNPack on.

The seed's CNN is trained and pruned as `bench/compression.py` does with bonsai's
defaults (one seed: latency depends on the architecture and the conversion, not on the
weights' values), then converted as each config says. Every model is timed with
`components/tflite_converter/latency.measure` (the TFLiteConverter's own measure) at
1 thread and at all cores, the configs interleaved and repeated so that all see the
same machine load; a figure is the median of the repeats' medians.
"""
import os
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

from bench import compression
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import latency
from tfx_bonsai.pipeline.models import digits_trainer

DENSE = "dense float"
# (config name, conversion of the pruned model); DENSE is the unpruned model's float TFLite.
CONFIGS = [
    ("bonsai-default (int8)", conversion.ConversionConfig(quantization="int8")),
    ("bonsai-default+sparse", conversion.ConversionConfig(quantization="int8",
                                                          sparse_weights=True)),
    ("pruned float", conversion.ConversionConfig(quantization="none")),
    ("pruned dynamic (seed's)", conversion.ConversionConfig(quantization="dynamic")),
]
WARMUP, RUNS, REPEATS = 50, 500, 5


def build_models(seed: int) -> Dict[str, bytes]:
  """{config name: TFLite bytes}: the dense model's float TFLite and the pruned model's."""
  tf.keras.utils.set_random_seed(seed)
  (x, y), _ = compression._split(seed)  # pylint: disable=protected-access
  dense = digits_trainer.build_seed_cnn()
  dense.fit(x, y, epochs=4, batch_size=32, verbose=0)
  config = pruning.PruningConfig()
  train = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=seed).batch(
      config.batch_size)
  pruned = pruning.prune(dense, train, None, len(y), config).model
  models = {DENSE: conversion.convert(dense, conversion.ConversionConfig(quantization="none"))}
  for name, conversion_config in CONFIGS:
    representative = {"image": x[:200]} if conversion_config.quantization == "int8" else None
    models[name] = conversion.convert(pruned, conversion_config, representative)
  return models


def measure_all(models: Dict[str, bytes], threads: Sequence[int], warmup: int = WARMUP,
                runs: int = RUNS, repeats: int = REPEATS) -> List[Dict[str, float]]:
  """One row per (model, thread count): medians over `repeats` interleaved measurements."""
  medians: Dict[tuple, list] = {}
  p90s: Dict[tuple, list] = {}
  for _ in range(repeats):
    for count in threads:
      for name, model_bytes in models.items():
        result = latency.measure(model_bytes, count, warmup, runs)
        medians.setdefault((name, count), []).append(result["median_ms"])
        p90s.setdefault((name, count), []).append(result["p90_ms"])
  rows = []
  for (name, count), values in medians.items():
    median = float(np.median(values))
    dense = float(np.median(medians[(DENSE, count)])) if DENSE in models else float("nan")
    rows.append({"benchmark": "latency", "config": name, "threads": count,
                 "median_ms": median, "p90_ms": float(np.median(p90s[(name, count)])),
                 "median_ms_min": float(min(values)), "median_ms_max": float(max(values)),
                 "latency_ratio": median / dense, "tflite_bytes": len(models[name]),
                 "runs": runs, "repeats": repeats})
  return sorted(rows, key=lambda r: (r["threads"], list(models).index(r["config"])))


def table(rows: List[Dict[str, float]]) -> str:
  head = (f"{'config':26} {'threads':>7} {'median ms':>10} {'(min..max of repeats)':>22} "
          f"{'p90 ms':>8} {'vs dense float':>15} {'TFLite':>10}")
  lines = [head, "-" * len(head)]
  for r in rows:
    spread = f"({r['median_ms_min']:.3f}..{r['median_ms_max']:.3f})"
    lines.append(f"{r['config']:26} {r['threads']:7d} {r['median_ms']:10.3f} {spread:>22} "
                 f"{r['p90_ms']:8.3f} {r['latency_ratio']:14.2f}x {r['tflite_bytes'] / 1e6:8.3f}MB")
  return "\n".join(lines)


def run(seeds=(0,)) -> List[Dict[str, float]]:
  models = build_models(seeds[0])
  threads = sorted({1, os.cpu_count() or 1})
  rows = measure_all(models, threads)
  for r in rows:
    r["seed"] = seeds[0]
  print(table(rows), flush=True)
  return rows
