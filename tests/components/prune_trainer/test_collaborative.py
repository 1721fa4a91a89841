"""Collaborative optimisation keeps the pruned zeros, through training and int8 conversion.

Real TFMOT training on the seed's CNN (narrowed), real conversions, the flatbuffer's own
weights measured by the SparsityValidator's functions.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.prune_trainer import collaborative
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.sparsity_validator import sparsity
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.pipeline import config as config_lib

TRAIN = 1437


def _ds(x, y, batch=32):
  return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


@pytest.fixture(scope="module")
def pruned(digits_arrays, small_dense_model):
  """The shared small dense CNN (loaded afresh: pruning reuses its unpruned layers), pruned."""
  images, labels = digits_arrays
  tf.keras.utils.set_random_seed(0)
  model = model_io.load_keras_model(small_dense_model.uri)
  train, evaluation = _ds(images[:TRAIN], labels[:TRAIN]), _ds(images[TRAIN:], labels[TRAIN:])
  result = pruning.prune(model, train, None, TRAIN, pruning.PruningConfig(epochs=2))
  assert result.sparsity == pytest.approx(0.9, abs=0.005)
  return result, train, evaluation, images


def _optimize(pruned, **kwargs):
  result, train, evaluation, _ = pruned
  return collaborative.optimize(result.model, result.pruned_layers, train, evaluation,
                                result.schedule.steps_per_epoch,
                                collaborative.CollaborativeConfig(**kwargs),
                                "sparse_categorical_crossentropy", ["accuracy"])


def _int8(model, images, sparse=False):
  return conversion.convert(model, conversion.ConversionConfig(quantization="int8",
                                                               sparse_weights=sparse),
                            {"image": images[:100]})


def _validate(model, model_bytes, pruned_sparsity=None):
  targets = sparsity.SparsityTargets(min_sparsity=0.9, tolerance=0.01)
  return sparsity.validate(model, targets, tflite_table=sparsity.tflite_tensor_table(model_bytes),
                           pruned_sparsity=pruned_sparsity)


def _accuracy(model_bytes, images, labels):
  return float(np.mean(np.argmax(conversion.run_tflite(model_bytes, {"image": images}), 1) == labels))


def test_pqat_keeps_the_zeros_through_training_and_int8_conversion(pruned, digits_arrays, tmp_path):
  result, _, _, images = pruned
  optimized = _optimize(pruned, qat_epochs=1)
  assert optimized.quantization_aware and model_io.is_quantization_aware(optimized.model)
  assert [s.stage for s in optimized.stages] == ["prune", "qat"]
  assert optimized.stages[-1].sparsity >= result.sparsity - 1e-6
  # Through the artifact format the pipeline uses: saved, loaded, converted, validated.
  model_io.save_keras_model(optimized.model, model_io.serving_dir(str(tmp_path)),
                            {"image": tf.io.FixedLenFeature([784], tf.float32)})
  loaded = model_io.load_keras_model(str(tmp_path), compile=False)
  assert model_io.is_quantization_aware(loaded)
  for sparse in (False, True):
    model_bytes = _int8(loaded, images, sparse)
    report = _validate(loaded, model_bytes)
    assert report.passed, report.reasons
    assert report.deployed_sparsity >= 0.89
    table = sparsity.tflite_tensor_table(model_bytes)
    assert {r["encoding"] for r in table} == {"sparse" if sparse else "dense"}
  x, y = digits_arrays
  assert _accuracy(model_bytes, x[TRAIN:], y[TRAIN:]) > 0.8


def test_non_preserving_qat_loses_the_zeros_and_the_validator_says_so(pruned):
  """The check can fail: TFMOT's plain QAT scheme lets the pruned weights grow back."""
  result, train, _, images = pruned
  plain = tf.keras.models.clone_model(
      collaborative._fresh(result.model),  # pylint: disable=protected-access
      clone_function=lambda l: (tfmot.quantization.keras.quantize_annotate_layer(l)
                                if isinstance(l, (tf.keras.layers.Conv2D, tf.keras.layers.Dense))
                                else l))
  with tfmot.quantization.keras.quantize_scope():
    plain = tfmot.quantization.keras.quantize_apply(plain)
  plain.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
  plain.fit(train, epochs=1, verbose=0)
  report = _validate(plain, _int8(plain, images), result.sparsity)
  assert not report.passed
  assert report.deployed_sparsity < result.sparsity - 0.2
  assert any("zeros were lost" in r for r in report.reasons), report.reasons


def test_clustering_keeps_the_zeros_and_shrinks_the_gzip(pruned):
  result, _, _, images = pruned
  optimized = _optimize(pruned, clusters=8)
  assert not optimized.quantization_aware
  assert [s.stage for s in optimized.stages] == ["prune", "cluster"]
  cluster_stage = optimized.stages[-1]
  assert cluster_stage.sparsity >= result.sparsity - 1e-6
  assert cluster_stage.distinct_values <= 8 + 1  # the centroids, and zero kept apart
  assert optimized.stages[0].distinct_values > 100
  clustered = _int8(optimized.model, images)
  report = _validate(optimized.model, clustered)
  assert report.passed, report.reasons
  assert conversion.gzip_size(clustered) < conversion.gzip_size(_int8(result.model, images))


def test_pcqat_keeps_zeros_and_clusters_in_the_int8_model(pruned):
  _, _, _, images = pruned
  optimized = _optimize(pruned, clusters=8, qat_epochs=1)
  assert [s.stage for s in optimized.stages] == ["prune", "cluster", "qat"]
  assert optimized.quantization_aware
  model_bytes = _int8(optimized.model, images)
  report = _validate(optimized.model, model_bytes)
  assert report.passed, report.reasons
  table = sparsity.tflite_tensor_table(model_bytes)
  assert all(r["sparsity"] >= 0.85 for r in table), table
  # Only the cluster values (and zero) remain: per output channel (each has its own int8
  # scale) every kernel holds at most 8 + 1 distinct values. Without clustering it does not.
  clustered = _int8_kernels(model_bytes)
  assert len(clustered) >= 3
  assert max(_values_per_channel(k) for k in clustered) <= 8 + 1
  unclustered = _int8_kernels(_int8(pruned[0].model, images))
  assert max(_values_per_channel(k) for k in unclustered) > 8 + 1


def _int8_kernels(model_bytes):
  """The int8 weight tensors of rank >= 2 stored in a TFLite flatbuffer, as arrays."""
  from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=g-import-not-at-top
  model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
  kernels = []
  for subgraph in model.subgraphs:
    for tensor in subgraph.tensors:
      data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
      if data is None or tensor.type != 9 or tensor.shape is None or len(tensor.shape) < 2:
        continue   # 9: INT8
      kernels.append(np.frombuffer(bytes(bytearray(data)), np.int8).reshape(tensor.shape))
  return kernels


def _values_per_channel(kernel):
  return max(len(np.unique(channel)) for channel in kernel.reshape(kernel.shape[0], -1))


@pytest.mark.parametrize("kwargs,message", [
    (dict(clusters=1), "clusters must be 0 (off) or in [2, 256], got 1"),
    (dict(clusters=300), "clusters must be 0 (off) or in [2, 256], got 300"),
    (dict(clusters=8, cluster_epochs=0), "cluster_epochs must be >= 1, got 0"),
    (dict(qat_epochs=-1), "qat_epochs must be >= 0 (0: off), got -1"),
    (dict(learning_rate=0.0), "collaborative_learning_rate must be > 0, got 0.0"),
])
def test_invalid_collaborative_config_names_the_field(kwargs, message):
  with pytest.raises(pruning.PruningError, match=message.replace("(", r"\(").replace(")", r"\)")
                     .replace("[", r"\[").replace("]", r"\]")):
    collaborative.CollaborativeConfig(**kwargs).validate()


def test_pipeline_config_checks_collaborative_options(tmp_path):
  base = {"pipeline_root": str(tmp_path / "root"), "data": {"path": str(tmp_path)},
          "push": {"destination": str(tmp_path / "serving")}}
  with pytest.raises(config_lib.ConfigError, match=r"pruning\.collaborative\.clusters: must be"):
    config_lib.load(base=base, overrides=["pruning.collaborative.clusters=1"])
  with pytest.raises(config_lib.ConfigError,
                     match="pruning.collaborative.qat_epochs: quantization-aware training needs "
                           "conversion.quantization 'int8', got 'float16'"):
    config_lib.load(base=base, overrides=["pruning.collaborative.qat_epochs=1",
                                          "conversion.quantization=float16"])
  with pytest.raises(config_lib.ConfigError, match="did you mean 'pruning.collaborative.qat_epochs'"):
    config_lib.load(base=base, overrides=["pruning.collaborative.qat_epoch=1"])
  loaded = config_lib.load(base=base, overrides=["pruning.collaborative.clusters=16",
                                                 "pruning.collaborative.qat_epochs=1"])
  assert config_lib.prune_trainer_settings(loaded).collaborative_config().enabled
