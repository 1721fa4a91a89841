"""The conformance matrix: each cell is a tiny Keras model taken through PruneTrainer's pure
module (a fixed target, then the search), TFLiteConverter (int8 + sparse, dynamic, float16),
SparsityValidator and the gate's decision, as the components chain them.

A cell ends SUPPORTED (pruned to the target, converted in every mode with the agreement
check passing, a verdict reached) or REFUSED (one clear error from the checks PruneTrainer
runs before any training). `render` turns the outcomes into docs/conformance.md.
"""
import dataclasses
import functools
import sys
import time
from typing import Any, Callable, Dict, Optional, Tuple

import tfx_bonsai  # noqa: F401  (Keras 2 before TensorFlow)
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import search as search_lib
from tfx_bonsai.components.prune_trainer import settings as prune_settings
from tfx_bonsai.components.sparsity_validator import sparsity
from tfx_bonsai.components.tflite_converter import conversion

keras = model_io.keras()

SUPPORTED, REFUSED = "supported", "refused"
ARCHITECTURE, FAMILY, HEAD = "Keras applications", "Layer families", "Heads"
GROUPS = (ARCHITECTURE, FAMILY, HEAD)
TARGET = 0.8               # the fixed target every cell is pruned to
SEARCH_LEVEL = 0.5         # the search's one level (one trial)
TRAIN, EVAL, CALIBRATION = 64, 64, 16   # synthetic examples
BATCH = 16
VOCAB, STEPS, CLASSES = 50, 12, 4      # token ids, sequence length, classes
QUANTIZATIONS = (("int8", True), ("dynamic", False), ("float16", False))  # (mode, sparse)
# SparsityValidator's default slack: a target met up to it passes.
TOLERANCE = 0.01
# Not part of any message a user should see.
RAW_ERRORS = ("KeyError", "AttributeError", "Traceback")


@dataclasses.dataclass(frozen=True)
class Cell:
  """One model of the matrix; `expect` is what the components must do with it."""
  name: str
  group: str
  build: Callable[[], Any]
  head: str = heads.MULTICLASS
  expect: str = SUPPORTED
  exclude: Tuple[str, ...] = ()   # pruning.exclude_layers (the way out a refusal names)
  note: str = ""
  # The converter's agreement bar. Lowered only for a model whose untrained outputs are
  # near-uniform (top-1 decided by rounding noise), said in its note.
  min_agreement: float = conversion.ConversionConfig().min_agreement


@dataclasses.dataclass
class Outcome:
  """How a cell ended, with the figures the docs table shows."""
  cell: str
  status: str
  stage: str = ""                  # where a refusal was raised: "checks" (before training)
  error: str = ""                  # type: message of the refusal
  sparsity: float = 0.0            # PruneTrainer's reached sparsity at TARGET
  search_sparsity: float = 0.0
  agreement: Dict[str, float] = dataclasses.field(default_factory=dict)
  refusals: Dict[str, str] = dataclasses.field(default_factory=dict)   # mode -> ConversionError
  agreed: Tuple[str, ...] = ()     # the modes whose TFLite agrees, in QUANTIZATIONS order
  validator_sparsity: float = 0.0
  validator_passed: bool = False
  blessed: Optional[bool] = None
  reasons: Tuple[str, ...] = ()
  seconds: float = 0.0
  stages: Dict[str, float] = dataclasses.field(default_factory=dict)  # seconds per stage


def _head_layer(x, head: str):
  if head == heads.MULTICLASS:
    return keras.layers.Dense(CLASSES, activation="softmax", name="head")(x)
  if head == heads.MULTICLASS_LOGITS:
    return keras.layers.Dense(CLASSES, name="head")(x)
  if head == heads.BINARY:
    return keras.layers.Dense(1, activation="sigmoid", name="head")(x)
  return keras.layers.Dense(1, name="head")(x)   # binary_logits, regression


def _application(factory, shape=(32, 32, 3), **kwargs):
  def build():
    inputs = keras.Input(shape, name="image")
    base = factory(input_shape=shape, weights=None, include_top=False, pooling="avg", **kwargs)
    return keras.Model(inputs, _head_layer(base(inputs), heads.MULTICLASS))
  return build


def _image(body, shape=(16, 16, 3), head=heads.MULTICLASS):
  def build():
    inputs = keras.Input(shape, name="image")
    return keras.Model(inputs, _head_layer(body(inputs), head))
  return build


def _tokens(body, head=heads.MULTICLASS, steps=STEPS):
  def build():
    inputs = keras.Input((steps,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, 8, name="embedding")(inputs)
    return keras.Model(inputs, _head_layer(body(x), head))
  return build


def _series(body):
  def build():
    inputs = keras.Input((STEPS, 4), name="series")
    return keras.Model(inputs, _head_layer(body(inputs), heads.MULTICLASS))
  return build


def _small_cnn(x):
  x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
  return keras.layers.Dense(16, activation="relu")(keras.layers.GlobalAveragePooling2D()(x))


def _transformer(x):
  attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="attention")(x, x)
  x = keras.layers.LayerNormalization()(keras.layers.Add()([x, attention]))
  ffn = keras.layers.Dense(8, name="ffn_out")(keras.layers.Dense(16, activation="relu")(x))
  x = keras.layers.LayerNormalization()(keras.layers.Add()([x, ffn]))
  return keras.layers.GlobalAveragePooling1D()(x)


class PrunableDense(keras.layers.Dense, tfmot.sparsity.keras.PrunableLayer):
  """A user layer that tells TFMOT which of its weights to prune."""

  def get_prunable_weights(self):
    return [self.kernel]


class ScaledDense(keras.layers.Layer):
  """A user layer with a kernel that is not a PrunableLayer: TFMOT cannot prune it."""

  def build(self, input_shape):
    self.kernel = self.add_weight("kernel", (input_shape[-1], 4))

  def call(self, inputs):
    return 2.0 * tf.matmul(inputs, self.kernel)


def _user_prunable(x):
  return PrunableDense(16, activation="relu", name="user_dense")(keras.layers.Flatten()(x))


def _user_unprunable(x):
  x = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))
  return ScaledDense(name="scaled_dense")(x)


def _nested():
  inner_in = keras.Input((16, 16, 3))
  base = keras.Model(inner_in, _small_cnn(inner_in), name="base")
  inputs = keras.Input((16, 16, 3), name="image")
  return keras.Model(inputs, _head_layer(base(inputs), heads.MULTICLASS))


def _multi_input():
  image = keras.Input((16, 16, 3), name="image")
  tokens = keras.Input((STEPS,), dtype="int32", name="tokens")
  words = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCAB, 8)(tokens))
  x = keras.layers.Concatenate()([_small_cnn(image), words])
  return keras.Model([image, tokens], _head_layer(x, heads.MULTICLASS))


def _multi_output():
  inputs = keras.Input((16, 16, 3), name="image")
  x = _small_cnn(inputs)
  return keras.Model(inputs, [keras.layers.Dense(CLASSES, activation="softmax", name="digit")(x),
                              keras.layers.Dense(1, name="size")(x)])


def _dense(x):
  return keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(x))


def _rnn(layer):
  return lambda x: layer()(x)


CELLS = (
    Cell("MobileNet", ARCHITECTURE, _application(
        keras.applications.MobileNet, alpha=0.25)),
    Cell("MobileNetV2", ARCHITECTURE, _application(
        keras.applications.MobileNetV2, alpha=0.35)),
    Cell("MobileNetV3Small", ARCHITECTURE, _application(
        keras.applications.MobileNetV3Small, alpha=0.75, minimalistic=True), min_agreement=0.85,
         note="untrained outputs near-uniform: agreement bar 0.85 (float16 0.875)"),
    Cell("EfficientNetB0", ARCHITECTURE, _application(keras.applications.EfficientNetB0)),
    Cell("Conv1D", FAMILY, _series(lambda x: keras.layers.GlobalAveragePooling1D()(
        keras.layers.Conv1D(8, 3, activation="relu")(x)))),
    Cell("SeparableConv2D", FAMILY, _image(lambda x: keras.layers.GlobalAveragePooling2D()(
        keras.layers.SeparableConv2D(16, 3, activation="relu")(x)))),
    Cell("Conv2DTranspose", FAMILY, _image(lambda x: keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2DTranspose(8, 3, strides=2, activation="relu")(x)))),
    Cell("Embedding", FAMILY, _tokens(keras.layers.GlobalAveragePooling1D())),
    Cell("LSTM", FAMILY, _tokens(_rnn(lambda: keras.layers.LSTM(8)))),
    Cell("LSTM, variable length", FAMILY, _tokens(_rnn(lambda: keras.layers.LSTM(8)),
                                                  steps=None), expect=REFUSED,
         note="refused: TFLite builtins need a fixed sequence length"),
    Cell("GRU", FAMILY, _tokens(_rnn(lambda: keras.layers.GRU(8)))),
    Cell("SimpleRNN", FAMILY, _tokens(_rnn(lambda: keras.layers.SimpleRNN(8)))),
    Cell("Bidirectional(LSTM)", FAMILY, _tokens(_rnn(
        lambda: keras.layers.Bidirectional(keras.layers.LSTM(8))))),
    Cell("Transformer block", FAMILY, _tokens(_transformer),
         note="MultiHeadAttention + LayerNormalization + Dense"),
    Cell("TimeDistributed(Dense)", FAMILY, _series(lambda x: keras.layers.Flatten()(
        keras.layers.TimeDistributed(keras.layers.Dense(8, activation="relu"))(x)))),
    Cell("user PrunableLayer", FAMILY, _image(_user_prunable)),
    Cell("user layer, not prunable", FAMILY, _image(_user_unprunable), expect=REFUSED,
         note="refused: name it in pruning.exclude_layers or make it a PrunableLayer"),
    Cell("user layer, excluded", FAMILY, _image(_user_unprunable), exclude=("scaled_dense",),
         note="the refusal's way out: pruning.exclude_layers: [scaled_dense]"),
    Cell("nested Functional", FAMILY, _nested),
    Cell("multi-input Functional", FAMILY, _multi_input),
    Cell("multi-output Functional", FAMILY, _multi_output, expect=REFUSED,
         note="refused: one output per pipeline"),
    Cell("softmax", HEAD, _image(_dense, head=heads.MULTICLASS)),
    Cell("logits", HEAD, _image(_dense, head=heads.MULTICLASS_LOGITS),
         head=heads.MULTICLASS_LOGITS),
    Cell("sigmoid", HEAD, _image(_dense, head=heads.BINARY), head=heads.BINARY),
    Cell("binary logit", HEAD, _image(_dense, head=heads.BINARY_LOGITS),
         head=heads.BINARY_LOGITS),
    Cell("regression", HEAD, _image(_dense, head=heads.REGRESSION), head=heads.REGRESSION),
)
CELL_NAMES = tuple(c.name for c in CELLS)
# The same chain on big applications: minutes each on two cores, so not in `make test`;
# `scripts/env-run python -m tests.conformance.matrix ResNet50 DenseNet121` runs them.
HEAVY_CELLS = (
    Cell("ResNet50", ARCHITECTURE, _application(keras.applications.ResNet50)),
    Cell("DenseNet121", ARCHITECTURE, _application(keras.applications.DenseNet121)),
)


def cell(name: str) -> Cell:
  return next(c for c in CELLS + HEAVY_CELLS if c.name == name)


def _features(model, count: int, seed: int) -> Dict[str, np.ndarray]:
  """`count` synthetic rows per model input: uniform floats, token ids for integer inputs."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, tensor in zip(model.input_names, model.inputs):
    shape = [count] + list(tensor.shape)[1:]
    if tf.as_dtype(tensor.dtype).is_integer:
      out[name] = rng.integers(0, VOCAB, shape).astype(np.int32)
    else:
      out[name] = rng.random(shape).astype(np.float32)
  return out


def _labels(head: str, count: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  if head in (heads.MULTICLASS, heads.MULTICLASS_LOGITS):
    return rng.integers(0, CLASSES, count)
  if head in (heads.BINARY, heads.BINARY_LOGITS):
    return rng.integers(0, 2, count)
  return rng.random(count).astype(np.float32)


def _dataset(model, features, labels):
  inputs = model_io.model_inputs(model, features)
  return tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(BATCH)


def _copy(model):
  clone = keras.models.clone_model(model)
  clone.set_weights(model.get_weights())
  return clone


def _checks(model, the_cell: Cell, config) -> str:
  """PruneTrainer's checks before any training (its executor's order); returns the head."""
  head = heads.resolve(the_cell.head, model)
  pruning.check_model(model)
  pruning.select_layers(model, config)
  return head


def _gate_figures(head, dense_outputs, candidate_outputs, labels, dense_bytes, candidate_bytes,
                  sparsity_passed) -> Dict[str, Any]:
  figures = {gate.DENSE_TFLITE_BYTES: dense_bytes,
             gate.CANDIDATE_GZIP_BYTES: tflite.gzip_size(candidate_bytes),
             gate.SPARSITY_PASSED: sparsity_passed}
  if head == heads.REGRESSION:
    return figures | {gate.DENSE_ERROR: heads.score(head, heads.MAE, dense_outputs, labels),
                      gate.CANDIDATE_ERROR: heads.score(head, heads.MAE, candidate_outputs,
                                                        labels)}
  dense_right = heads.decisions(head, dense_outputs) == labels
  candidate_right = heads.decisions(head, candidate_outputs) == labels
  counts = search_lib.paired_counts(dense_right, candidate_right)
  labels = np.asarray(labels).reshape(-1)
  per_class = {str(label): search_lib.paired_counts(dense_right[labels == label],
                                                    candidate_right[labels == label]).to_dict()
               for label in np.unique(labels)}   # the gate's per-class harm check reads these
  return figures | {gate.DENSE_ACCURACY: float(np.mean(dense_right)),
                    gate.CANDIDATE_ACCURACY: float(np.mean(candidate_right)),
                    gate.DENSE_PAIRED_COUNTS: counts.to_dict(),
                    gate.DENSE_CLASS_PAIRED_COUNTS: per_class}


class _Clock:
  """Records the seconds since the last mark under a stage name."""

  def __init__(self, outcome: Outcome):
    self._outcome, self._last = outcome, time.time()

  def mark(self, stage: str) -> None:
    now = time.time()
    self._outcome.stages[stage] = round(now - self._last, 1)
    self._last = now


def _run(the_cell: Cell) -> Outcome:
  keras.backend.clear_session()   # default layer and model names the same in every run
  keras.utils.set_random_seed(0)
  model = the_cell.build()
  outcome = Outcome(the_cell.name, SUPPORTED)
  config = pruning.PruningConfig(target_sparsity=TARGET, initial_sparsity=0.3, epochs=1,
                                 batch_size=BATCH, exclude_layers=list(the_cell.exclude))
  try:
    head = _checks(model, the_cell, config)
  except settings_lib.SettingsError as e:
    return dataclasses.replace(outcome, status=REFUSED, stage="checks",
                               error=f"{type(e).__name__}: {e}")
  clock = _Clock(outcome)
  metric = heads.metric_for(head)
  loss = heads.keras_loss(head, model)
  metrics = heads.keras_metrics(head, metric)
  train_x, eval_x = _features(model, TRAIN, 1), _features(model, EVAL, 2)
  train_y, eval_y = _labels(head, TRAIN, 1), _labels(head, EVAL, 2)
  train_ds, eval_ds = _dataset(model, train_x, train_y), _dataset(model, eval_x, eval_y)
  dense_outputs = np.asarray(model(model_io.model_inputs(model, eval_x), training=False))
  dense_bytes = len(tflite.dense_float(model))
  clock.mark("dense")

  found = search_lib.search(
      _copy(model), train_ds, eval_ds, TRAIN, config,
      prune_settings.SearchConfig(levels=(SEARCH_LEVEL,), max_trials=1, epochs_per_trial=1,
                                  max_accuracy_drop=1.0, accuracy_decision=search_lib.POINT),
      loss=loss, head=head, metric=metric, metrics=metrics)
  outcome.search_sparsity = found.result.sparsity
  clock.mark("search")
  result = pruning.prune(model, train_ds, None, TRAIN, config, loss=loss, metrics=metrics,
                         head=head, metric=metric)
  outcome.sparsity = result.sparsity
  pruned = result.model
  clock.mark("prune")

  calibration = _features(model, CALIBRATION, 3)
  converted = {}
  for quantization, sparse in QUANTIZATIONS:
    conversion_config = conversion.ConversionConfig(quantization=quantization,
                                                    sparse_weights=sparse, head=head,
                                                    min_agreement=the_cell.min_agreement)
    model_bytes = conversion.convert(pruned, conversion_config, calibration)
    agreed = conversion.agreement(pruned, model_bytes, eval_x, conversion_config, head)
    outcome.agreement[quantization] = agreed.value
    try:
      conversion.require_agreement(agreed, conversion_config)
      converted[quantization] = model_bytes
    except conversion.ConversionError as e:  # the pipeline's converter refuses this mode
      outcome.refusals[quantization] = str(e)
    clock.mark(quantization)
  outcome.agreed = tuple(converted)
  if not converted:
    return outcome

  report = sparsity.validate(pruned, sparsity.SparsityTargets(min_sparsity=TARGET,
                                                              tolerance=TOLERANCE))
  outcome.validator_sparsity, outcome.validator_passed = report.global_sparsity, report.passed
  candidate = converted[outcome.agreed[0]]   # the first mode that agrees
  candidate_outputs = conversion.run_tflite(candidate, conversion.model_inputs(pruned, eval_x))
  # Every accuracy budget at 100 %: the tiny models learn nothing from random labels; the
  # matrix proves the plumbing (the per-class tables included), not accuracy.
  gate_config = gate.GateConfig(max_accuracy_drop=1.0, min_compression_ratio=1.5,
                                max_class_drop=1.0,
                                accuracy_decision=gate.POINT, head=head,
                                metric=heads.MAE if head == heads.REGRESSION else "",
                                max_metric_increase=1.0)
  verdict = gate.decide(_gate_figures(head, dense_outputs, candidate_outputs,
                                      eval_y, dense_bytes, candidate, report.passed),
                        gate_config)
  outcome.blessed, outcome.reasons = verdict.blessed, tuple(verdict.reasons)
  clock.mark("validate+gate")
  return outcome


@functools.lru_cache(maxsize=None)
def run(name: str) -> Outcome:
  """The cell's outcome (run once per test session; the table test reuses it)."""
  start = time.time()
  outcome = _run(cell(name))
  outcome.seconds = time.time() - start
  return outcome


def _figures(outcome: Outcome) -> str:
  """What the table shows: only figures that do not vary between machines."""
  if outcome.status == REFUSED:
    return f"`{outcome.error}`"
  modes = ", ".join(outcome.agreed) or "no mode"
  refused = f" (not in {', '.join(outcome.refusals)})" if outcome.refusals else ""
  return (f"sparsity {outcome.sparsity:.2f}; agrees in {modes}{refused}; "
          f"{'blessed' if outcome.blessed else 'not blessed: ' + '; '.join(outcome.reasons)}")


def render(outcomes: Dict[str, Outcome]) -> str:
  """docs/conformance.md: one table per group, rows in CELLS order (no timings: they vary)."""
  lines = [
      "# Conformance matrix",
      "",
      "Generated by `tests/conformance/test_matrix.py` from the matrix's results; do not edit.",
      "Regenerate with `BONSAI_UPDATE_CONFORMANCE=1 make test "
      "PYTEST_ARGS=tests/conformance/test_matrix.py`.",
      "",
      f"Each model is tiny (weights=None, synthetic data, {TRAIN} train examples, 1 epoch) and "
      f"goes through PruneTrainer (target {TARGET:g}, and the search at {SEARCH_LEVEL:g}), "
      "TFLiteConverter (int8 with sparse weights, dynamic, float16; top-1 agreement for "
      "classifiers, max abs error for regression), SparsityValidator and the gate.",
      "**supported**: pruned to the target, converted with the agreement check passing (a "
      "mode that disagrees is refused by the converter with one error naming the mode and the bound; "
      "the gate then decides on the first mode that agrees), and a verdict reached. "
      "**refused**: one error, raised by PruneTrainer's checks before any training, naming "
      "the layer and the way out.",
  ]
  for group in GROUPS:
    lines += ["", f"## {group}", "", "| model | outcome | figures | note |", "|---|---|---|---|"]
    for c in CELLS:
      if c.group == group:
        o = outcomes[c.name]
        lines.append(f"| {c.name} | {o.status} | {_figures(o)} | {c.note} |")
    heavy = [c.name for c in HEAVY_CELLS if c.group == group]
    if heavy:
      lines += ["", f"Not in `make test` (minutes each on two cores): {', '.join(heavy)}; "
                "run them with `scripts/env-run python -m tests.conformance.matrix "
                f"{' '.join(heavy)}`."]
  return "\n".join(lines) + "\n"


def main(names) -> None:
  """Runs the named cells (default: every one, heavy ones included) and prints each outcome."""
  for name in names or [c.name for c in CELLS + HEAVY_CELLS]:
    outcome = run(name)
    print(f"{name}: {outcome.status} in {outcome.seconds:.0f}s {outcome.stages} "
          f"{_figures(outcome)}", flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])
