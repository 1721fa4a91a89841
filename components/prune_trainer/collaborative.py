"""Collaborative optimisation after pruning: sparsity-preserving clustering, then PQAT/PCQAT.

TFMOT's collaborative optimisation chain (knows nothing of TFX):

1. **Clustering** (`clusters > 0`): the pruned layers' weights are clustered into
   `clusters` shared values with `cluster_weights(..., preserve_sparsity=True)`, so the
   zeros stay zeros; fine-tuned for `cluster_epochs`, then stripped. Fewer distinct values
   gzip better.
2. **Quantization-aware training** (`qat_epochs > 0`): the model is fine-tuned with
   fake 8-bit quantization using `Default8BitPrunePreserveQuantizeScheme` (PQAT) or, after
   clustering, `Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)` (PCQAT).
   The result keeps its quantization wrappers: converted with full-integer quantization it
   uses the ranges learned in training, and its zeros (and clusters) survive.

Layers the 8-bit scheme cannot quantize (e.g. a BatchNormalization that does not follow a
convolution, as in the seed's CNN) are left float in training; conversion calibrates them
with the representative examples like any other.
"""
import dataclasses
import time
from typing import Any, Dict, List, Optional, Sequence

from absl import logging as log
import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfx_bonsai.components.common import progress
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer.settings import CollaborativeConfig  # noqa: F401


@dataclasses.dataclass
class Stage:
  """One step of the chain, as recorded in the report."""
  stage: str                  # "prune", "cluster" or "qat"
  sparsity: float             # over the pruned layers' kernels
  accuracy: Optional[float]   # on the eval split, when there is one
  distinct_values: int        # the most distinct kernel values in one pruned layer
  seconds: float

  def as_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


@dataclasses.dataclass
class Result:
  model: Any                  # stripped (clustering) or with quantization wrappers (QAT)
  stages: List[Stage]
  quantization_aware: bool


def _fresh(model):
  """An independent copy: TFMOT's wrappers reuse unwrapped layer objects between models."""
  copy = tf.keras.models.clone_model(model)
  copy.set_weights(model.get_weights())
  return copy


def inner_layer(layer):
  """The layer inside a TFMOT quantization (or other) wrapper, else the layer itself."""
  while hasattr(layer, "layer") and isinstance(getattr(layer, "layer"), tf.keras.layers.Layer):
    layer = layer.layer
  return layer


def _kernels(model, layer_names: Sequence[str]) -> Dict[str, np.ndarray]:
  """The kernel variables of the named layers, looking inside wrappers.

  Read from the variables: inside a quantization wrapper the layer's `kernel` attribute
  is the fake-quantized tensor of the last call, not the weight.
  """
  out = {}
  for layer in model.layers:
    inner = inner_layer(layer)
    if inner.name in layer_names:
      weights = [w for w in layer.weights
                 if w.name.split(":")[0].rsplit("/", 1)[-1].endswith("kernel")]
      if weights:
        out[inner.name] = np.concatenate([np.asarray(w.numpy()).ravel() for w in weights])
  return out


def measure(model, layer_names: Sequence[str]):
  """(sparsity over the layers' kernels, most distinct values in one layer)."""
  kernels = _kernels(model, layer_names)
  if not kernels:
    return 0.0, 0
  values = np.concatenate(list(kernels.values()))
  sparsity = float(1.0 - np.count_nonzero(values) / values.size)
  return sparsity, max(len(np.unique(k)) for k in kernels.values())


def _evaluate(model, eval_ds, eval_steps) -> Optional[float]:
  if eval_ds is None:
    return None
  figures = model.evaluate(eval_ds, steps=eval_steps, verbose=0, return_dict=True)
  accuracy = figures.get("accuracy")
  return None if accuracy is None else float(accuracy)


def _fit(model, train_ds, epochs, steps_per_epoch, eval_ds, eval_steps, stage):
  start = time.time()

  class _Log(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      figures = " ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()))
      log.info("%s epoch %d/%d: %s (%.0fs)", stage, epoch + 1, epochs, figures, time.time() - start)

  model.fit(train_ds.repeat(), epochs=epochs, steps_per_epoch=steps_per_epoch,
            validation_data=eval_ds, validation_steps=eval_steps, callbacks=[_Log(), progress.KerasBar(stage)],
            verbose=0)


def cluster(model, layer_names: Sequence[str], clusters: int):
  """`model` with the named layers wrapped for sparsity-preserving clustering."""
  clustering = tfmot.clustering.keras
  selected = {n for n in layer_names if pruning.prunable_weights(pruning.find_layer(model, n))}

  def wrap(layer):
    if layer.name in selected:
      return clustering.cluster_weights(
          layer, number_of_clusters=clusters,
          cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
          preserve_sparsity=True)
    return layer

  return tf.keras.models.clone_model(_fresh(model), clone_function=wrap)


def quantize_aware(model, clustered: bool):
  """`model` with 8-bit fake quantization that preserves its zeros (and clusters)."""
  quantization = tfmot.quantization.keras
  from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantize_registry  # pylint: disable=g-import-not-at-top,line-too-long
  registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
  left_float = []

  def annotate(layer):
    if registry.supports(layer):
      return quantization.quantize_annotate_layer(layer)
    if layer.weights:
      left_float.append(layer.name)
    return layer

  annotated = tf.keras.models.clone_model(_fresh(model), clone_function=annotate)
  if left_float:
    log.info("quantization-aware training: %s stay float in training (the 8-bit scheme has no "
             "rule for them); conversion calibrates them", left_float)
  scheme = (tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
            if clustered else tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
  with quantization.quantize_scope():
    return quantization.quantize_apply(annotated, scheme)


def optimize(model, layer_names: Sequence[str], train_ds: tf.data.Dataset,
             eval_ds: Optional[tf.data.Dataset], steps_per_epoch: int,
             config: CollaborativeConfig, loss: Any, metrics: Sequence[Any],
             eval_steps: Optional[int] = None) -> Result:
  """Runs the enabled steps on the pruned, stripped `model`; every stage is measured."""
  config.validate()
  sparsity, distinct = measure(model, layer_names)
  stages = [Stage("prune", sparsity, _evaluate(model, eval_ds, eval_steps), distinct, 0.0)]
  compile_args = dict(loss=loss, metrics=list(metrics))
  if config.clusters:
    start = time.time()
    log.info("clustering %s into %d values each, preserving zeros (%d epochs)",
             list(layer_names), config.clusters, config.cluster_epochs)
    wrapped = cluster(model, layer_names, config.clusters)
    wrapped.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate), **compile_args)
    _fit(wrapped, train_ds, config.cluster_epochs, steps_per_epoch, eval_ds, eval_steps, "cluster")
    model = tfmot.clustering.keras.strip_clustering(wrapped)
    model.compile(**compile_args)
    sparsity, distinct = measure(model, layer_names)
    stages.append(Stage("cluster", sparsity, _evaluate(model, eval_ds, eval_steps), distinct,
                        time.time() - start))
  if config.qat_epochs:
    start = time.time()
    log.info("quantization-aware training (%s, %d epochs)",
             "PCQAT" if config.clusters else "PQAT", config.qat_epochs)
    model = quantize_aware(model, clustered=bool(config.clusters))
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate), **compile_args)
    _fit(model, train_ds, config.qat_epochs, steps_per_epoch, eval_ds, eval_steps, "qat")
    sparsity, distinct = measure(model, layer_names)
    stages.append(Stage("qat", sparsity, _evaluate(model, eval_ds, eval_steps), distinct,
                        time.time() - start))
  for stage in stages:
    log.info("collaborative %-7s sparsity %.4f, distinct values <= %d, accuracy %s",
             stage.stage, stage.sparsity, stage.distinct_values,
             "n/a" if stage.accuracy is None else f"{stage.accuracy:.4f}")
  return Result(model, stages, bool(config.qat_epochs))
