"""On-device-like latency of a TFLite model: batch 1, a real interpreter, XNNPack on.

Nothing here knows about TFX. `measure` times `invoke()` alone on one fixed input,
after a warm-up, with the default delegates (XNNPack on CPU), as a device runs it.
"""
import statistics
import time
from typing import Dict, Mapping, Optional
import warnings

import numpy as np
import tensorflow as tf

from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.tflite_converter import conversion

_DEPRECATED_INTERPRETER = tflite.DEPRECATED_INTERPRETER_WARNING  # README: why not LiteRT yet


def _batch_one_shape(detail: Mapping[str, object]):
  """The input's shape at batch 1; ValueError naming an input with another free dimension."""
  signature = list(detail.get("shape_signature", detail["shape"]))
  if any(d < 0 for d in signature[1:]):
    raise ValueError(f"TFLite input {detail['name']!r} has shape {signature}: only the "
                     "batch dimension may be free to measure latency")
  return [1] + [int(d) for d in signature[1:]]


def _feed(detail: Mapping[str, object], value: Optional[np.ndarray], shape,
          rng: np.random.Generator) -> np.ndarray:
  """`value` (or uniform [0, 1) floats) as the tensor wants it: quantized for integer inputs."""
  if value is None:
    value = rng.random(shape, dtype=np.float32)
  return conversion.quantize(np.asarray(value).reshape(shape), detail)


def measure(model_bytes: bytes, threads: int, warmup: int = 20, runs: int = 200,
            inputs: Optional[Mapping[str, np.ndarray]] = None) -> Dict[str, float]:
  """Times `runs` invokes of the model at batch 1 on `threads` threads, after `warmup` invokes.

  `inputs` maps TFLite input names (as TFMA feeds them) to one example; by default a
  fixed uniform [0, 1) input of each input's shape, quantized for integer inputs.
  Returns {"median_ms", "p90_ms", "runs", "threads"}.
  """
  for name, value, least in (("threads", threads, 1), ("warmup", warmup, 0), ("runs", runs, 1)):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
      raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=_DEPRECATED_INTERPRETER)
    interpreter = tf.lite.Interpreter(model_content=model_bytes, num_threads=threads)
  details = interpreter.get_input_details()
  shapes = [_batch_one_shape(d) for d in details]
  for detail, shape in zip(details, shapes):
    interpreter.resize_tensor_input(detail["index"], shape)
  interpreter.allocate_tensors()
  rng = np.random.default_rng(0)
  for detail, shape in zip(details, shapes):
    name = conversion.input_name(detail)
    if inputs is not None and name not in inputs:
      raise ValueError(f"TFLite input {name!r} is not in inputs {sorted(inputs)}")
    value = None if inputs is None else np.asarray(inputs[name])[:1]
    interpreter.set_tensor(detail["index"], _feed(detail, value, shape, rng))
  for _ in range(warmup):
    interpreter.invoke()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    interpreter.invoke()
    times.append(time.perf_counter() - start)
  times_ms = np.array(times) * 1e3
  return {"median_ms": float(statistics.median(times_ms)),
          "p90_ms": float(np.percentile(times_ms, 90)), "runs": runs, "threads": threads}


def compare(candidate_bytes: bytes, dense_bytes: bytes, threads: int, warmup: int = 20,
            runs: int = 200) -> Dict[str, object]:
  """The candidate's and the dense model's latency at 1 and at `threads` threads.

  Each thread count measures the candidate, then the dense model, so both see the same
  machine load. Returns {"candidate_1t", "dense_1t", "candidate_nt", "dense_nt"} (each a
  `measure` result; the `_nt` ones are the `_1t` ones when threads is 1) and
  "ratio_1t", "ratio_nt": candidate median / dense median.
  """
  result: Dict[str, object] = {}
  for suffix, count in (("1t", 1), ("nt", threads)):
    if count == 1 and suffix == "nt":
      result["candidate_nt"], result["dense_nt"] = result["candidate_1t"], result["dense_1t"]
    else:
      result[f"candidate_{suffix}"] = measure(candidate_bytes, count, warmup, runs)
      result[f"dense_{suffix}"] = measure(dense_bytes, count, warmup, runs)
    result[f"ratio_{suffix}"] = (result[f"candidate_{suffix}"]["median_ms"]
                                 / result[f"dense_{suffix}"]["median_ms"])
  return result
