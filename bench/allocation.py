"""Per-layer allocation in the search on a compact model: uniform vs global magnitude vs
measured sensitivity, at the same accuracy budget (issue 14).

The model is a small flat MobileNetV2 (conv stem, five inverted-residual blocks with
depthwise convolutions, BatchNorm and ReLU6, a 1x1 head convolution, global average pooling,
a dense classifier; random initialisation) trained on digits with the split roles of
`bench/compression.py`: it trains and fine-tunes on 1,137 examples, the search selects on
300 more, and everything reported is measured on the 360 eval examples nothing chose on.

Per seed the dense model is trained once; then the search (default levels, 3 pp budget
decided by the paired 95% interval, as a new user would run it) runs once per allocation
from copies of it. Each result is converted to int8 TFLite and scored: level reached,
overall sparsity of the pruned layers, compression ratio (dense float TFLite / int8 TFLite
gzip, the gate's count), eval accuracy and the paired drop against the dense Keras model
with its exact 95% interval (`components/common/stats.py`), trials and seconds.
"""
import time
from typing import Dict, List

import numpy as np
import tensorflow as tf

from bench import compression
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search as search_lib
from tfx_bonsai.components.prune_trainer import settings
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.pipeline.models import digits

ALLOCATIONS = (settings.UNIFORM, settings.GLOBAL_MAGNITUDE, settings.SENSITIVITY)
DENSE_EPOCHS = 25
BUDGET = 0.03   # the issue's: 3 pp
# Every other search setting at its default (levels 0.9 .. 0.998, 8 trials, 2 epochs each).
SEARCH = search_lib.SearchConfig(max_accuracy_drop=BUDGET)
# (expansion, output channels, stride) of each inverted-residual block.
BLOCKS = ((1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1))
HEAD_CHANNELS = 128


def build_compact_mobilenet():
  """A flat Keras 2 MobileNetV2-style classifier of a 784-float `image` (about 30k weights)."""
  keras = model_io.keras()
  layers = keras.layers

  # BatchNorm's moving statistics follow within an epoch of 36 steps (at Keras' 0.99 one
  # seed's dense model scored 0.73 on eval while 0.99 in training).
  def bn(x):
    return layers.BatchNormalization(momentum=0.9)(x)

  def conv_bn(x, filters, kernel=1, strides=1, relu=True):
    x = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False)(x)
    x = bn(x)
    return layers.ReLU(6.0)(x) if relu else x

  inputs = keras.Input(shape=(digits.IMAGE_SIZE * digits.IMAGE_SIZE,), name=digits.IMAGE_KEY)
  x = layers.Reshape((digits.IMAGE_SIZE, digits.IMAGE_SIZE, 1))(inputs)
  x = conv_bn(x, 16, 3, 2)                                   # stem: 14x14x16
  channels = 16
  for expansion, out, stride in BLOCKS:
    y = conv_bn(x, channels * expansion) if expansion != 1 else x
    y = layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False)(y)
    y = layers.ReLU(6.0)(bn(y))
    y = conv_bn(y, out, relu=False)                          # linear bottleneck
    x = layers.Add()([x, y]) if stride == 1 and out == channels else y
    channels = out
  x = conv_bn(x, HEAD_CHANNELS)
  x = layers.GlobalAveragePooling2D()(x)
  outputs = layers.Dense(digits.NUM_CLASSES, activation="softmax")(x)
  model = keras.Model(inputs, outputs, name="compact_mobilenet_v2")
  model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
  return model


def run_seed(seed: int, allocations=ALLOCATIONS, search_config=SEARCH,
             dense_epochs: int = DENSE_EPOCHS) -> List[Dict]:
  """One row per allocation, all from the same dense model."""
  tf.keras.utils.set_random_seed(seed)
  (x, y), (xe, ye) = compression._split(seed)  # pylint: disable=protected-access
  fit = compression.TRAIN - compression.VALIDATION
  x, y, xv, yv = x[:fit], y[:fit], x[fit:], y[fit:]
  start = time.time()
  dense = build_compact_mobilenet()
  dense.fit(x, y, epochs=dense_epochs, batch_size=32, verbose=0)
  dense_correct = np.argmax(dense.predict(xe, verbose=0), 1) == ye
  dense_tflite = conversion.convert(dense, conversion.ConversionConfig(quantization="none"))
  print(f"  allocation seed {seed}: dense {dense.count_params()} parameters, eval accuracy "
        f"{np.mean(dense_correct):.4f} ({time.time() - start:.0f}s)", flush=True)
  rows = []
  for allocation in allocations:
    tf.keras.utils.set_random_seed(seed)
    config = pruning.PruningConfig(allocation=allocation)
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(fit, seed=seed).batch(
        config.batch_size)
    selection = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(256)
    start = time.time()
    found = search_lib.search(compression._copy(dense), train_ds, selection, fit, config,  # pylint: disable=protected-access
                              search_config)
    seconds = time.time() - start
    best = max((t for t in found.trials if t.accepted), key=lambda t: t.level, default=None)
    deployable = conversion.convert(found.model, conversion.ConversionConfig(quantization="int8"),
                                    {digits.IMAGE_KEY: x[:200]})
    candidate_correct = np.argmax(conversion.run_tflite(deployable, {digits.IMAGE_KEY: xe}), 1) == ye
    gzip_bytes = conversion.gzip_size(deployable)
    row = {
        "benchmark": "allocation", "config": allocation, "seed": seed,
        "level": best.level if best else None, "within_budget": found.within_budget,
        "sparsity": found.result.sparsity, "ratio": len(dense_tflite) / gzip_bytes,
        "dense_tflite_bytes": len(dense_tflite), "deployable_gzip_bytes": gzip_bytes,
        "dense_accuracy": float(np.mean(dense_correct)),
        "accuracy": float(np.mean(candidate_correct)),
        **compression.drop_figures(dense_correct, candidate_correct, "accuracy_drop"),
        "eval_examples": int(ye.size), "trials": len(found.trials), "seconds": seconds,
        "trial_levels": [t.level for t in found.trials],
        "layer_sparsity": found.result.layer_sparsity, "stopped": found.stopped,
        "sensitivity_seconds": found.sensitivity.seconds if found.sensitivity else None,
    }
    print(f"  allocation {allocation} seed {seed}: level {row['level']} sparsity "
          f"{row['sparsity']:.4f} ratio {row['ratio']:.2f}x accuracy {row['accuracy']:.4f} drop "
          f"{row['accuracy_drop_pp']:+.2f}pp, {row['trials']} trials {seconds:.0f}s "
          f"(levels {row['trial_levels']}; {found.stopped})", flush=True)
    rows.append(row)
  return rows


def table(rows: List[Dict]) -> str:
  head = (f"{'allocation':17} {'seed':>4} {'level':>7} {'sparsity':>9} {'ratio':>7} "
          f"{'eval acc':>9} {'drop pp (95% CI)':>24} {'trials':>6} {'seconds':>8}")
  lines = [head, "-" * len(head)]
  for r in rows:
    level = "none" if r["level"] is None else f"{r['level']:.4f}"
    lines.append(
        f"{r['config']:17} {r['seed']:4d} {level:>7} {r['sparsity']:9.4f} {r['ratio']:6.2f}x "
        f"{r['accuracy']:9.4f} {r['accuracy_drop_pp']:+7.2f} ({r['accuracy_drop_ci95_low_pp']:+.2f}"
        f"..{r['accuracy_drop_ci95_high_pp']:+.2f}) {r['trials']:6d} {r['seconds']:8.0f}")
  return "\n".join(lines)


def run(seeds=(0,)) -> List[Dict]:
  rows = []
  for seed in seeds:
    rows.extend(run_seed(seed))
  print(table(rows), flush=True)
  return rows
