"""Magnitude pruning of a Keras 2 model with TFMOT: plan the schedule, wrap, fine-tune, strip.

Knows nothing of TFX: it takes a Keras model and tf.data datasets of (inputs, label).
"""
import contextlib
import dataclasses
from absl import logging as log
import re
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import progress
from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.prune_trainer import sensitivity as sensitivity_lib
from tfx_bonsai.components.prune_trainer import settings
from tfx_bonsai.components.prune_trainer.settings import PruningError  # noqa: F401
# The pruning part of the settings (pure code takes the whole settings object).
from tfx_bonsai.components.prune_trainer.settings import PruneTrainerSettings as PruningConfig

# No layer is pruned beyond this by the global allocation: a layer at 100 % cuts the network.
MAX_LAYER_SPARSITY = 0.995
# Recovery time between pruning steps when `frequency` is not given: about this many
# pruning events over the fine-tune, never more than every step nor rarer than the seed's 100.
_AUTO_PRUNING_EVENTS = 16


@dataclasses.dataclass(frozen=True)
class Schedule:
  """The concrete steps: pruning happens at begin_step + k * frequency, up to end_step."""
  begin_step: int
  end_step: int
  frequency: int
  steps_per_epoch: int
  total_steps: int


def plan_schedule(config: PruningConfig, num_examples: int) -> Schedule:
  """Steps of the fine-tune, with `end_step` on the last pruning step that actually runs.

  The seed computes end_step = ceil(examples / batch) * epochs and prunes every 100 steps;
  with 45 steps per epoch its last pruning event is step 100 and 90% is never reached.
  Here the final pruning event is the schedule's end_step, so the target is reached.
  """
  if num_examples < 1:
    raise PruningError("the train split is empty: no examples to fine-tune on")
  steps_per_epoch = -(-num_examples // config.batch_size)
  total = steps_per_epoch * config.epochs
  last = total - 1  # TFMOT counts steps from 0
  if config.pruning_end < 1.0:  # the mask is fixed for the fine-tune's last steps
    last = max(config.begin_step + 1, min(last, int(round(total * config.pruning_end)) - 1))
  if config.begin_step >= last:
    raise PruningError(
        f"begin_step must be < {last} (the fine-tune has {total} steps: {steps_per_epoch} steps "
        f"per epoch x {config.epochs} epochs), got {config.begin_step}")
  span = last - config.begin_step
  frequency = config.frequency or max(1, min(100, span // _AUTO_PRUNING_EVENTS))
  if frequency > span:
    raise PruningError(
        f"frequency must be <= {span} so that pruning reaches the target within the fine-tune "
        f"({total} steps from begin_step {config.begin_step}), got {frequency}")
  end_step = config.begin_step + frequency * (span // frequency)
  if config.end_step:
    end_step = config.end_step
    last_event = config.begin_step + frequency * ((min(end_step, last) - config.begin_step) // frequency)
    if last_event < end_step:
      log.warning("end_step %d: the last pruning event is step %d, so the schedule stops short "
                  "of target_sparsity (leave end_step at 0 to reach it)", end_step, last_event)
  return Schedule(config.begin_step, end_step, frequency, steps_per_epoch, total)


# Per-layer targets: {layer name: (initial sparsity, final sparsity)}.
LayerTargets = Dict[str, Tuple[float, float]]


def _pruning_schedule(config: PruningConfig, schedule: Schedule,
                      initial: Optional[float] = None, final: Optional[float] = None):
  initial = config.initial_sparsity if initial is None else initial
  final = config.target_sparsity if final is None else final
  if config.schedule == "constant":
    return tfmot.sparsity.keras.ConstantSparsity(
        final, schedule.begin_step, schedule.end_step, schedule.frequency)
  return tfmot.sparsity.keras.PolynomialDecay(
      min(initial, final), final, schedule.begin_step, schedule.end_step,
      frequency=schedule.frequency)


def check_model(model) -> None:
  """Raises PruningError unless `model` is a Sequential or Functional Keras 2 model whose
  layers TFLite builtins can run (the pipeline converts what is pruned)."""
  from tf_keras import Sequential  # pylint: disable=g-import-not-at-top
  if not (isinstance(model, Sequential) or getattr(model, "_is_graph_network", False)):
    raise PruningError(
        f"model '{model.name}' is a subclassed Keras model; pruning rebuilds the model layer by "
        "layer, which needs a Sequential or Functional model (keras.Model(inputs, outputs))")
  problem = tflite.conversion_problem(model)
  if problem:
    raise PruningError(problem)


def _is_model(layer) -> bool:
  return isinstance(layer, tf.keras.Model)


def leaf_layers(model) -> list:
  """The layers of `model`, with nested models (e.g. a Keras applications base) expanded.

  TFMOT wraps only leaf layers; a model used as a layer is pruned layer by layer inside it.
  """
  leaves = []
  for layer in model.layers:
    leaves.extend(leaf_layers(layer) if _is_model(layer) else [layer])
  return leaves


def find_layer(model, name: str):
  """The leaf layer called `name`, at any depth of nested models (ValueError when absent)."""
  for layer in leaf_layers(model):
    if layer.name == name:
      return layer
  raise ValueError(f"no layer named {name!r} in model '{model.name}'")


def select_layers(model, config: PruningConfig) -> List[str]:
  """Names of the leaf layers to prune: those with weights, matching include and not exclude.

  Layers inside nested models count as leaves. Raises PruningError naming a selected
  layer TFMOT cannot prune, or when none is left.
  """
  include = [re.compile(p) for p in config.include_layers]
  exclude = [re.compile(p) for p in config.exclude_layers]
  selected = []
  for layer in leaf_layers(model):
    if not layer.trainable_weights:  # nothing to prune (e.g. Normalization's statistics)
      continue
    if include and not any(p.fullmatch(layer.name) for p in include):
      continue
    if any(p.fullmatch(layer.name) for p in exclude):
      continue
    if not prunable(layer):
      raise PruningError(
          f"layer '{layer.name}' ({_describe(layer)}) cannot be pruned by TFMOT: exclude it "
          f"(pruning.exclude_layers: ['{layer.name}']) or make it a "
          "tfmot.sparsity.keras.PrunableLayer whose get_prunable_weights() returns its kernels")
    selected.append(layer.name)
  if not any(prunable_weights(find_layer(model, n)) for n in selected):
    raise PruningError(
        f"no prunable layer selected in model '{model.name}' (layers: "
        f"{[l.name for l in model.layers]}); pruning needs Dense/Conv-like layers with kernels"
        + (f" matching include_layers {list(config.include_layers)}" if include else ""))
  return selected


def _inner_layers(layer) -> Optional[list]:
  """The layers a Keras wrapper runs (Bidirectional: both directions; TimeDistributed: its
  layer), or None for any other layer."""
  if isinstance(layer, tf.keras.layers.Bidirectional):
    return [layer.forward_layer, layer.backward_layer]
  if isinstance(layer, tf.keras.layers.TimeDistributed):
    return [layer.layer]
  return None


def _describe(layer) -> str:
  """'LSTM', or for a wrapper 'Bidirectional(LSTM)'."""
  inner = _inner_layers(layer)
  kind = type(layer).__name__
  return f"{kind}({_describe(inner[0])})" if inner else kind


def _is_user_prunable(layer) -> bool:
  return (isinstance(layer, tfmot.sparsity.keras.PrunableLayer)
          or callable(getattr(layer, "get_prunable_weights", None)))


def prunable(layer) -> bool:
  """Whether TFMOT can wrap `layer`: a PrunableLayer, a layer its registry knows (RNN layers
  through their cells, MultiHeadAttention through its projections), or a Bidirectional /
  TimeDistributed wrapper of such layers."""
  if _is_user_prunable(layer):
    return True
  inner = _inner_layers(layer)
  if inner is not None:
    return all(prunable(l) for l in inner)
  return prune_registry.PruneRegistry.supports(layer)


def prunable_weights(layer) -> list:
  """The weight variables TFMOT prunes in `layer` ([] for layers it does not know).

  Built-in layers go through TFMOT's own `PruneRegistry.make_prunable` (what its wrapper
  calls), which knows the per-class weights, RNN cells and MultiHeadAttention's projections.
  """
  if _is_user_prunable(layer):
    return list(layer.get_prunable_weights())
  inner = _inner_layers(layer)
  if inner is not None:
    return [w for l in inner for w in prunable_weights(l)] if prunable(layer) else []
  if not prune_registry.PruneRegistry.supports(layer):
    return []
  return list(prune_registry.PruneRegistry.make_prunable(layer).get_prunable_weights())


def _wrappable(layer):
  """`layer`, given the `get_prunable_weights` TFMOT's wrapper asks of layers outside its
  registry when it is a Bidirectional / TimeDistributed wrapper of prunable layers."""
  inner = _inner_layers(layer)
  if inner is not None and not _is_user_prunable(layer):
    layer.get_prunable_weights = lambda: [w for l in inner for w in prunable_weights(l)]
  return layer


def wrap(model, config: PruningConfig, schedule: Schedule,
         layer_targets: Optional[LayerTargets] = None):
  """The model with pruning wrappers on the selected layers (weights shared with `model`).

  With `layer_targets`, only those layers are wrapped, each with its own schedule.
  """
  check_model(model)
  keras = tf.keras
  kwargs: Dict[str, Any] = {"pruning_schedule": _pruning_schedule(config, schedule)}
  if config.m_by_n:
    kwargs["sparsity_m_by_n"] = config.m_by_n
  if config.pruning_policy == "xnnpack":
    try:
      return tfmot.sparsity.keras.prune_low_magnitude(
          model, pruning_policy=tfmot.sparsity.keras.PruneForLatencyOnXNNPack(), **kwargs)
    except ValueError as e:
      raise PruningError(f"pruning_policy 'xnnpack' does not fit this model: {e}") from e
  selected = set(select_layers(model, config))

  if layer_targets is not None:
    selected = set(layer_targets)

  def clone(layer):
    if _is_model(layer):  # a nested model: its own leaf layers are wrapped
      return keras.models.clone_model(layer, clone_function=clone)
    if layer.name in selected:
      if layer_targets is not None:
        initial, final = layer_targets[layer.name]
        return tfmot.sparsity.keras.prune_low_magnitude(
            _wrappable(layer),
            **{**kwargs, "pruning_schedule": _pruning_schedule(config, schedule, initial, final)})
      return tfmot.sparsity.keras.prune_low_magnitude(_wrappable(layer), **kwargs)
    return layer

  return keras.models.clone_model(model, clone_function=clone)


def allocate(model, layer_names: Sequence[str], target: float,
             max_layer_sparsity: float = MAX_LAYER_SPARSITY) -> Dict[str, float]:
  """Per-layer sparsity from one magnitude threshold over all the layers' prunable weights.

  The threshold is the `target` quantile of |w| across layers, so large layers of small
  weights (the seed's dense layer: 98 % of the parameters) end up far sparser than small
  ones (its first convolution: 800 weights). Each layer is capped at `max_layer_sparsity`.
  """
  magnitudes = {}
  for name in layer_names:
    weights = prunable_weights(find_layer(model, name))
    if weights:
      magnitudes[name] = np.concatenate([np.abs(w.numpy()).ravel() for w in weights])
  if not magnitudes:
    raise PruningError("no prunable weights to allocate sparsity over")
  everything = np.concatenate(list(magnitudes.values()))
  k = min(int(round(target * everything.size)), everything.size - 1)
  threshold = np.partition(everything, k)[k]
  return {name: float(min(max_layer_sparsity, np.mean(m < threshold)))
          for name, m in magnitudes.items()}


def measure_sensitivity(model, layer_names: Sequence[str], selection_ds: tf.data.Dataset,
                        loss: Any = None, head: str = heads.MULTICLASS,
                        metric: str = "") -> sensitivity_lib.Sensitivity:
  """Each layer of `layer_names` pruned alone on the selection data (`sensitivity.measure`)."""
  weights = {n: prunable_weights(find_layer(model, n)) for n in layer_names}
  measured = sensitivity_lib.measure(model, {n: w for n, w in weights.items() if w},
                                     selection_ds, loss, head, metric)
  log.info("layer sensitivity on %d selection examples (%.0fs), loss increase at %s: %s",
           measured.examples, measured.seconds, list(sensitivity_lib.SPARSITIES),
           "; ".join(f"{n} " + " ".join(f"{d:.3f}" for d in l.loss_increase)
                     for n, l in measured.layers.items()))
  return measured


def layer_sparsities(model, layer_names: Sequence[str], target: float, allocation: str,
                     max_layer_sparsity: float,
                     sensitivity: Optional[sensitivity_lib.Sensitivity] = None
                     ) -> Dict[str, float]:
  """Per-layer final sparsity for an overall `target` by `allocation` (a resolved one):
  uniform (each layer at the target), global_magnitude (`allocate`) or sensitivity
  (`sensitivity.allocate`, from a measured `sensitivity`); each capped at max_layer_sparsity."""
  if allocation == settings.UNIFORM:
    return {n: min(target, max_layer_sparsity) for n in layer_names}
  if allocation == settings.GLOBAL_MAGNITUDE:
    return allocate(model, layer_names, target, max_layer_sparsity)
  if allocation == settings.SENSITIVITY:
    if sensitivity is None:
      raise PruningError("allocation 'sensitivity' needs the layers' measured sensitivity "
                         "(measure_sensitivity on the selection data)")
    return sensitivity.allocate(target, max_layer_sparsity)
  raise PruningError("allocation", f"must be one of {list(settings.ALLOCATIONS[1:])}, "
                     f"got {allocation!r}")


def current_sparsity(pruned_model) -> float:
  """Fraction of zeros in the masks of every pruning wrapper (0 when there are none)."""
  zeros = total = 0
  for layer in pruned_model.submodules:
    for _, mask, _ in getattr(layer, "pruning_vars", ()):
      m = mask.numpy()
      zeros += int(m.size - np.count_nonzero(m))
      total += int(m.size)
  return zeros / total if total else 0.0


def kernel_sparsity(model, layer_names: Optional[Sequence[str]] = None) -> float:
  """Fraction of zeros over the prunable weights of `layer_names` (default: all prunable layers)."""
  zeros = total = 0
  for layer in leaf_layers(model):
    if layer_names is not None and layer.name not in layer_names:
      continue
    for weight in prunable_weights(layer):
      w = weight.numpy()
      zeros += int(w.size - np.count_nonzero(w))
      total += int(w.size)
  return zeros / total if total else 0.0


def recalibrate_batchnorm(model, dataset: tf.data.Dataset, batches: int) -> int:
  """Re-estimates every BatchNormalization's moving statistics of `model` as the plain average
  over `batches` batches of `dataset` (forward passes in training mode; no weight changes).

  Returns the number of batches used (0 when the model has no BatchNormalization).
  """
  norms = [l for l in leaf_layers(model)
           if isinstance(l, tf.keras.layers.BatchNormalization) and l.trainable]
  if not norms or batches < 1:
    return 0
  momenta = [l.momentum for l in norms]
  used = 0
  try:
    for used, batch in enumerate(dataset.take(batches)):
      for layer in norms:   # momentum k/(k+1): the moving value is the mean of k+1 batches
        layer.momentum = used / (used + 1)
      model(batch[0], training=True)
    used += 1
  finally:
    for layer, momentum in zip(norms, momenta):
      layer.momentum = momentum
  log.info("BatchNorm statistics of %d layers re-estimated over %d train batches", len(norms),
           used)
  return used


def _class_log_probs(head: str, outputs, temperature: float):
  """Log-probabilities over the classes of a classifier head's `outputs`, softened."""
  if head == heads.MULTICLASS:
    logits = tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0))
  elif head == heads.MULTICLASS_LOGITS:
    logits = outputs
  elif head == heads.BINARY:
    p = tf.clip_by_value(outputs, 1e-7, 1.0 - 1e-7)
    logits = tf.concat([tf.math.log(1.0 - p), tf.math.log(p)], axis=-1)
  else:  # binary_logits: class 1 when > 0
    logits = tf.concat([tf.zeros_like(outputs), outputs], axis=-1)
  return tf.nn.log_softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)


def distillation_loss(head: str, teacher_outputs, student_outputs,
                      temperature: float = settings.DISTILLATION_TEMPERATURE):
  """KL(teacher || student) of the outputs softened by `temperature`, times its square
  (Hinton et al. 2015); MSE to the teacher's outputs for a regression head."""
  if head == heads.REGRESSION:
    return tf.reduce_mean(tf.square(tf.cast(student_outputs, tf.float32)
                                    - tf.cast(teacher_outputs, tf.float32)))
  teacher = _class_log_probs(head, teacher_outputs, temperature)
  student = _class_log_probs(head, student_outputs, temperature)
  kl = tf.reduce_sum(tf.exp(teacher) * (teacher - student), axis=-1)
  return temperature ** 2 * tf.reduce_mean(kl)


class Distiller(tf.keras.Model):
  """Fits `student` (with its pruning wrappers) to (1 - weight) x its compiled loss +
  weight x `distillation_loss` to the frozen `teacher`; evaluates and predicts as `student`."""

  def __init__(self, student, teacher, head: str, weight: float):
    super().__init__(name=f"{student.name}_distilled")
    self.student, self.teacher = student, teacher
    self._head, self._weight = head, weight

  def call(self, inputs, training=None):
    return self.student(inputs, training=training)

  def train_step(self, data):
    x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
    target = tf.stop_gradient(self.teacher(x, training=False))
    with tf.GradientTape() as tape:
      output = self.student(x, training=True)
      hard = self.compiled_loss(y, output, sample_weight,
                                regularization_losses=self.student.losses)
      loss = ((1.0 - self._weight) * hard
              + self._weight * distillation_loss(self._head, target, output))
    variables = self.student.trainable_variables
    self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    self.compiled_metrics.update_state(y, output, sample_weight)
    return {m.name: m.result() for m in self.metrics}


def _copy(model):
  clone = tf.keras.models.clone_model(model)
  clone.set_weights(model.get_weights())
  return clone


class _EpochLog(tf.keras.callbacks.Callback):
  """Logs each epoch's loss, metrics and the sparsity reached so far."""

  def __init__(self, epochs: int):
    super().__init__()
    self._epochs = epochs
    self._start = time.time()

  def on_epoch_end(self, epoch, logs=None):
    figures = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()))
    log.info("prune epoch %d/%d: %s sparsity=%.4f (%.0fs)", epoch + 1, self._epochs, figures,
             current_sparsity(self.model), time.time() - self._start)


@dataclasses.dataclass
class PruneResult:
  model: Any                 # the stripped Keras model
  schedule: Schedule
  pruned_layers: List[str]
  sparsity: float            # zeros / total over the pruned layers' prunable weights
  history: Dict[str, List[float]]
  layer_sparsity: Dict[str, float] = dataclasses.field(default_factory=dict)
  sensitivity: Optional[sensitivity_lib.Sensitivity] = None   # allocation "sensitivity"


def default_metrics(loss) -> List[str]:
  """Accuracy for a classification (cross-entropy) loss, else no metric."""
  return ["accuracy"] if "crossentropy" in str(loss) else []


def make_strategy(distribution: str) -> Optional[tf.distribute.Strategy]:
  """The tf.distribute strategy for PruneTrainer's `distribution`: None for "" (one device);
  "mirrored": MirroredStrategy over every local GPU, else every logical CPU device."""
  if distribution not in settings.DISTRIBUTIONS:
    raise PruningError(f"distribution must be one of {list(settings.DISTRIBUTIONS)}, "
                       f"got '{distribution}'")
  if not distribution:
    return None
  devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
             or [d.name for d in tf.config.list_logical_devices("CPU")])
  log.info("fine-tuning under MirroredStrategy over %s", devices)
  return tf.distribute.MirroredStrategy(devices=devices)


def prune(model, train_ds: tf.data.Dataset, eval_ds: Optional[tf.data.Dataset],
          num_train_examples: int, config: PruningConfig, loss: Any = None,
          metrics: Optional[Sequence[Any]] = None, log_dir: Optional[str] = None,
          eval_steps: Optional[int] = None,
          layer_targets: Optional[LayerTargets] = None,
          strategy: Optional[tf.distribute.Strategy] = None,
          sensitivity: Optional[sensitivity_lib.Sensitivity] = None,
          head: str = heads.MULTICLASS, metric: str = "", teacher=None) -> PruneResult:
  """Fine-tunes `model` with magnitude pruning and returns the stripped model.

  `train_ds` yields batches of (inputs, label) of `config.batch_size`; it is repeated here.
  `loss` defaults to the model's compiled loss, else sparse categorical cross-entropy.
  `layer_targets` ({layer: (initial, final)}) overrides the config's targets per layer;
  Else `config.allocation` "global_magnitude" computes them with `allocate`, and
  "sensitivity" from `sensitivity` or, when None, by measuring each layer on `eval_ds` (the
  selection split; `head` and `metric` score the recorded metric drops).
  Under `strategy` (e.g. MirroredStrategy) the model is cloned, wrapped and compiled in its
  scope, so every variable is a distributed one; `train_ds` batches are global batches.
  With `config.distillation` > 0 the fine-tune also follows `teacher` (default: a copy of
  `model` as given); `config.batchnorm_batches` re-estimates BatchNorm statistics afterwards.
  """
  config.validate()
  schedule = plan_schedule(config, num_train_examples)
  pruned_layers = (select_layers(model, config) if config.pruning_policy != "xnnpack"
                   else [l.name for l in leaf_layers(model) if l.weights])
  loss = loss or getattr(model, "loss", None) or "sparse_categorical_crossentropy"
  if metrics is None:
    metrics = default_metrics(loss)
  allocation = config.resolved_allocation(searching=False)
  if layer_targets is None and allocation != settings.UNIFORM:
    if allocation == settings.SENSITIVITY and sensitivity is None:
      if eval_ds is None:
        raise PruningError("allocation 'sensitivity' measures each layer on the selection "
                           "split: give eval_ds (or a measured sensitivity)")
      selection = eval_ds.take(eval_steps) if eval_steps else eval_ds
      sensitivity = measure_sensitivity(model, pruned_layers, selection, loss, head, metric)
    finals = layer_sparsities(model, pruned_layers, config.target_sparsity, allocation,
                              MAX_LAYER_SPARSITY, sensitivity)
    layer_targets = {n: (min(config.initial_sparsity, s), s) for n, s in finals.items()}
  if layer_targets is not None:
    pruned_layers = [n for n in pruned_layers if n in layer_targets]
    log.info("per-layer targets: %s",
             ", ".join(f"{n} {f:.4f}" for n, (_, f) in layer_targets.items()))
  with strategy.scope() if strategy is not None else contextlib.nullcontext():
    if strategy is not None:
      # Layers the pruning wrappers do not replace keep their variables: re-create them all
      # in the strategy's scope.
      replica = tf.keras.models.clone_model(model)
      replica.set_weights(model.get_weights())
      model = replica
    distilling = config.distillation > 0 and len(model.outputs) == 1
    if distilling:
      teacher = _copy(model if teacher is None else teacher)
    pruned = wrap(model, config, schedule, layer_targets)
    rate = config.learning_rate
    if config.learning_rate_schedule == settings.COSINE:
      rate = tf.keras.optimizers.schedules.CosineDecay(rate, schedule.total_steps,
                                                       alpha=settings.COSINE_FLOOR)
    fitted = Distiller(pruned, teacher, head, config.distillation) if distilling else pruned
    fitted.compile(optimizer=tf.keras.optimizers.Adam(rate), loss=loss, metrics=list(metrics))
  if config.distillation > 0 and not distilling:
    log.warning("distillation is off: model '%s' has %d outputs (it needs one)", model.name,
                len(model.outputs))
  callbacks = [tfmot.sparsity.keras.UpdatePruningStep(), _EpochLog(config.epochs),
               progress.KerasBar(f"prune to {config.target_sparsity:g}",
                                 lambda m: {"sparsity": f"{current_sparsity(m):.3f}"})]
  if log_dir:
    callbacks.append(tfmot.sparsity.keras.PruningSummaries(log_dir=log_dir))
  log.info("pruning %d layers %s to %.1f%% (%s, steps %d..%d every %d, %d steps in all; "
           "learning rate %s%s)", len(pruned_layers), pruned_layers, 100 * config.target_sparsity,
           config.schedule, schedule.begin_step, schedule.end_step, schedule.frequency,
           schedule.total_steps, config.learning_rate_schedule,
           f", distilled at weight {config.distillation:g}" if distilling else "")
  history = fitted.fit(train_ds.repeat(), epochs=config.epochs,
                       steps_per_epoch=schedule.steps_per_epoch, validation_data=eval_ds,
                       validation_steps=eval_steps, callbacks=callbacks, verbose=0)
  stripped = tfmot.sparsity.keras.strip_pruning(pruned)
  if config.batchnorm_batches:
    recalibrate_batchnorm(stripped, train_ds, config.batchnorm_batches)
  stripped.compile(loss=loss, metrics=list(metrics))
  sparsity = kernel_sparsity(stripped, pruned_layers)
  log.info("pruned: sparsity %.4f over %s (target %.4f)", sparsity, pruned_layers,
           config.target_sparsity)
  return PruneResult(stripped, schedule, pruned_layers, sparsity,
                     {k: [float(x) for x in v] for k, v in history.history.items()},
                     {n: kernel_sparsity(stripped, [n]) for n in pruned_layers}, sensitivity)
