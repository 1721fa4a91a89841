"""latency.py on tiny Keras models, converted and timed by the real TFLite interpreter."""
import numpy as np
import pytest

from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import latency

keras = model_io.keras()


@pytest.fixture(scope="module")
def tiny_model():
  keras.utils.set_random_seed(0)
  inputs = keras.Input((16,), name="image")
  x = keras.layers.Dense(8, activation="relu")(inputs)
  return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture(scope="module")
def tiny_float(tiny_model):
  return conversion.convert(tiny_model, conversion.ConversionConfig(quantization="none"))


@pytest.fixture(scope="module")
def tiny_int8_io(tiny_model):
  representative = {"image": np.random.default_rng(0).random((32, 16), dtype=np.float32)}
  return conversion.convert(tiny_model, conversion.ConversionConfig(quantization="int8",
                                                                    int8_io=True), representative)


@pytest.mark.parametrize("threads", [1, 2])
def test_measure_returns_positive_medians(tiny_float, threads):
  result = latency.measure(tiny_float, threads, warmup=2, runs=25)
  assert set(result) == {"median_ms", "p90_ms", "runs", "threads"}
  assert 0 < result["median_ms"] <= result["p90_ms"]
  assert result["runs"] == 25 and result["threads"] == threads


def test_measure_feeds_a_quantized_input_and_given_inputs(tiny_int8_io):
  assert latency.measure(tiny_int8_io, 1, warmup=1, runs=5)["median_ms"] > 0
  given = {"image": np.full((4, 16), 0.5, np.float32)}  # only the first row is used
  assert latency.measure(tiny_int8_io, 1, warmup=0, runs=5, inputs=given)["median_ms"] > 0


def test_measure_names_a_missing_input_and_bad_counts(tiny_float):
  with pytest.raises(ValueError, match=r"TFLite input 'image' is not in inputs \['pixels'\]"):
    latency.measure(tiny_float, 1, inputs={"pixels": np.zeros((1, 16), np.float32)})
  with pytest.raises(ValueError, match="threads must be an integer >= 1, got 0"):
    latency.measure(tiny_float, 0)
  with pytest.raises(ValueError, match="runs must be an integer >= 1, got 0"):
    latency.measure(tiny_float, 1, runs=0)


def test_compare_gives_both_models_at_both_thread_counts(tiny_float, tiny_int8_io):
  result = latency.compare(tiny_int8_io, tiny_float, threads=2, warmup=1, runs=10)
  for key in ("candidate_1t", "dense_1t", "candidate_nt", "dense_nt"):
    assert result[key]["median_ms"] > 0
  assert result["candidate_nt"]["threads"] == 2 and result["dense_1t"]["threads"] == 1
  assert result["ratio_1t"] == pytest.approx(result["candidate_1t"]["median_ms"]
                                             / result["dense_1t"]["median_ms"])
  single = latency.compare(tiny_int8_io, tiny_float, threads=1, warmup=1, runs=5)
  assert single["candidate_nt"] == single["candidate_1t"]
  assert single["ratio_nt"] == single["ratio_1t"]
