"""Nested models (a base model used as one layer, the transfer-learning shape) are pruned
layer by layer inside, and keep their BatchNorm, depthwise and residual structure."""
import numpy as np
import pytest
import tensorflow as tf

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.tflite_converter import conversion

keras = model_io.keras()


def _inverted_residual_base():
  """A MobileNetV2-style base: conv-BN-ReLU6, then expand / depthwise / project with a residual."""
  inputs = keras.Input((32, 32, 1))
  x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
  x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
  y = keras.layers.Conv2D(24, 1, use_bias=False)(x)
  y = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(y))
  y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)
  y = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(y))
  y = keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 1, use_bias=False)(y))
  return keras.Model(inputs, keras.layers.Add()([x, y]), name="base")


@pytest.fixture(scope="module")
def nested(digits_arrays):
  keras.utils.set_random_seed(0)
  images, labels = digits_arrays
  inputs = keras.Input((784,), name="image")
  x = keras.layers.ZeroPadding2D(2)(keras.layers.Reshape((28, 28, 1))(inputs))
  x = keras.layers.GlobalAveragePooling2D()(_inverted_residual_base()(x))
  model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
  model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
  model.fit(images[:1024], labels[:1024], epochs=3, batch_size=32, verbose=0)
  return model


def test_nested_base_is_pruned_layer_by_layer(nested, digits_arrays):
  images, labels = digits_arrays
  selected = pruning.select_layers(nested, pruning.PruningConfig())
  base = nested.get_layer("base")
  assert {l.name for l in base.layers if l.trainable_weights and not isinstance(
      l, keras.layers.BatchNormalization)} <= set(selected)
  train = tf.data.Dataset.from_tensor_slices((images[:1024], labels[:1024])).batch(32)
  result = pruning.prune(nested, train, None, 1024, pruning.PruningConfig(
      target_sparsity=0.8, initial_sparsity=0.3, epochs=2))
  assert result.sparsity >= 0.79
  stripped = result.model.get_layer("base")  # still a nested model, wrappers gone
  kinds = [type(l).__name__ for l in stripped.layers]
  assert "PruneLowMagnitude" not in kinds
  assert {"BatchNormalization", "DepthwiseConv2D", "Add"} <= set(kinds)
  pointwise = [l for l in stripped.layers if type(l).__name__ == "Conv2D"]
  assert len(pointwise) == 3 and all(result.layer_sparsity[l.name] >= 0.79 for l in pointwise)
  assert all(np.mean(l.kernel.numpy() == 0) >= 0.79 for l in pointwise)
  # TFMOT's registry prunes no depthwise kernel (DepthwiseConv2D: no prunable weights).
  assert not pruning.prunable_weights(
      next(l for l in stripped.layers if isinstance(l, keras.layers.DepthwiseConv2D)))
  inputs = {"image": images[1437:]}
  for quantization in ("none", "dynamic", "int8"):
    _, agreement = conversion.convert_and_check(
        result.model, conversion.ConversionConfig(quantization=quantization),
        {"image": images[:200]}, inputs)
    assert agreement.passed, (quantization, agreement)
