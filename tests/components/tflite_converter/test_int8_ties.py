"""int8 agreement of a classifier with no margin: near-ties are not conversion errors."""
import numpy as np

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.tflite_converter import conversion

keras = model_io.keras()


def _near_uniform_classifier():
  """A softmax over 10 classes whose probabilities differ by ~1e-4 (a collapsed model)."""
  keras.utils.set_random_seed(0)
  inputs = keras.Input((16,), name="x")
  dense = keras.layers.Dense(10, activation="softmax")
  model = keras.Model(inputs, dense(inputs))
  dense.kernel.assign(dense.kernel.numpy() * 1e-3)
  return model


def test_int8_near_ties_count_as_agreement_and_are_reported():
  model = _near_uniform_classifier()
  inputs = {"x": np.random.default_rng(0).random((300, 16), np.float32)}
  config = conversion.ConversionConfig(quantization="int8")
  model_bytes = conversion.convert(model, config, inputs)
  expected = model.predict(inputs["x"], verbose=0)
  actual = conversion.run_tflite(model_bytes, inputs)
  raw = np.mean(np.argmax(actual, 1) == np.argmax(expected, 1))
  assert raw < 0.9  # the classes are noise at 256 output levels
  result = conversion.agreement(model, model_bytes, inputs, config)
  assert result.passed and result.value == 1.0 and result.ties == round((1 - raw) * 300)


def test_clear_int8_disagreement_still_fails():
  model = _near_uniform_classifier()
  confident = keras.models.clone_model(model)
  confident.set_weights([w * 1e4 for w in model.get_weights()])
  inputs = {"x": np.random.default_rng(1).random((300, 16), np.float32)}
  config = conversion.ConversionConfig(quantization="int8")
  # The near-uniform model's TFLite file checked against a confident model: real flips.
  result = conversion.agreement(confident, conversion.convert(model, config, inputs), inputs,
                                config)
  assert not result.passed and result.ties < 300
