"""The int8 near-tie allowance cannot mask a broken file: it reads the file's own outputs and
its output tensor's real scale, and it is capped (issue 20.3)."""
import numpy as np
import pytest
import tensorflow as tf

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.tflite_converter import conversion

keras = model_io.keras()
TRAIN = 1437
INT8 = conversion.ConversionConfig(quantization="int8", fallback=[])


def _classifier(train, labels, activation, seed=0):
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((784,), name="image")
  hidden = keras.layers.Dense(32, activation="relu")(inputs)
  model = keras.Model(inputs, keras.layers.Dense(10, activation=activation)(hidden))
  loss = keras.losses.SparseCategoricalCrossentropy(from_logits=activation is None)
  model.compile(optimizer="adam", loss=loss)
  model.fit(train, labels, epochs=3, batch_size=32, verbose=0)
  return model


def _with_head(model, kernel, bias):
  """A copy of `model` whose last Dense layer has `kernel` and `bias`."""
  copy = keras.models.clone_model(model)
  copy.set_weights(model.get_weights()[:-2] + [kernel, bias])
  return copy


@pytest.fixture(scope="module")
def data(digits_arrays):
  images, labels = digits_arrays
  return images[:TRAIN], labels[:TRAIN], {"image": images[TRAIN:]}, labels[TRAIN:]


@pytest.fixture(scope="module")
def soft_accurate(data):
  """An accurate softmax classifier whose top-2 gaps are all below one int8 step (1/256)."""
  train, labels, held_out, held_labels = data
  model = _classifier(train, labels, "softmax")
  kernel, bias = model.get_weights()[-2:]
  soft = _with_head(model, kernel * 1e-3, bias * 1e-3)
  scores = soft.predict(held_out["image"], verbose=0)
  assert np.mean(np.argmax(scores, 1) == held_labels) > 0.8
  return soft


@pytest.mark.parametrize("class0_bias", [3.0, 1e-3])
def test_an_int8_file_answering_class_0_fails_against_an_accurate_soft_model(
    soft_accurate, data, class0_bias):
  train, _, held_out, _ = data
  kernel, bias = soft_accurate.get_weights()[-2:]
  constant_bias = np.zeros_like(bias)
  constant_bias[0] = class0_bias
  broken = _with_head(soft_accurate, np.zeros_like(kernel), constant_bias)
  model_bytes = conversion.convert(broken, INT8, {"image": train[:200]})
  actual = conversion.run_tflite(model_bytes, held_out)
  assert np.all(np.argmax(actual, 1) == 0)  # the real file answers class 0 for every input
  expected = soft_accurate.predict(held_out["image"], verbose=0)
  # What the old rule looked at alone: the Keras margin of class 0 is within 1/256 everywhere.
  assert np.all(expected.max(1) - expected[:, 0] <= 1 / 256)
  raw = np.mean(np.argmax(expected, 1) == 0)
  result = conversion.agreement(soft_accurate, model_bytes, held_out, INT8)
  assert not result.passed
  assert result.raw == pytest.approx(raw)
  assert result.value <= raw + INT8.max_tie_share + 1e-9
  if class0_bias > 1:  # the file itself separates class 0 clearly: no near-tie at all
    assert result.ties == 0
  else:  # near-uniform in both: near-ties, but only up to the cap
    assert result.ties == int(INT8.max_tie_share * len(held_out["image"]))


@pytest.fixture(scope="module")
def logits_pair(data):
  """A logits classifier and a corrupted int8 copy (noise on the last layer), int8 I/O."""
  train, labels, _, _ = data
  model = _classifier(train, labels, None)
  kernel, bias = model.get_weights()[-2:]
  noise = np.random.default_rng(0).normal(0, 1.5 * kernel.std(), kernel.shape)
  corrupted = _with_head(model, kernel + noise.astype(np.float32), bias)
  config = conversion.ConversionConfig(quantization="int8", int8_io=True, fallback=[])
  return model, corrupted, conversion.convert(corrupted, config, {"image": train[:200]}), config


def test_a_logits_outlier_does_not_lift_agreement(logits_pair, data):
  model, _, model_bytes, config = logits_pair
  _, _, held_out, _ = data
  images = held_out["image"]
  before = conversion.agreement(model, model_bytes, held_out, config)
  assert not before.passed and 0.3 < before.raw < 0.95
  outlier = {"image": np.concatenate([images, images[:1] * 50.0])}
  after = conversion.agreement(model, model_bytes, outlier, config)
  # The outlier row may count once; it cannot turn other rows into ties.
  assert after.value * len(outlier["image"]) <= before.value * len(images) + 1 + 1e-9
  assert after.ties <= before.ties + 1
  detail = tf.lite.Interpreter(model_content=model_bytes).get_output_details()[0]
  scale = float(detail["quantization_parameters"]["scales"][0])
  assert before.step == after.step == scale


def test_the_step_of_a_float_output_is_the_scale_its_dequantize_reads(logits_pair, data):
  _, corrupted, int8_io_bytes, _ = logits_pair
  train, _, _, _ = data
  float_io = conversion.convert(corrupted, INT8, {"image": train[:200]})
  assert tf.lite.Interpreter(model_content=float_io).get_output_details()[0]["dtype"] == np.float32
  detail = tf.lite.Interpreter(model_content=int8_io_bytes).get_output_details()[0]
  assert conversion.output_step(float_io) == pytest.approx(
      float(detail["quantization_parameters"]["scales"][0]))
  float16 = conversion.convert(corrupted, conversion.ConversionConfig(quantization="float16"))
  assert conversion.output_step(float16) is None
