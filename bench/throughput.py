"""Evaluation throughput: the gate's TFMA `tf_lite` evaluation vs the seed's interpreter loop.

(a) TFMA on Beam's DirectRunner (multi-processing, 1 and 2 workers) over an Examples
artifact laid out as ExampleGen writes it (gzipped TFRecord shards), the candidate
alone as `tf_lite`: the gate's EvalConfig (`make_eval_config`) reduced to the
candidate, (i) with TFMA's stock extractors (its TFLitePredictionDoFn, which runs
without XNNPack), (ii) with the gate's old way (`make_extractors`: the same chain with
bonsai's XNNPack-enabled prediction DoFn, unbatched, TFMA's per-example ExampleCount and
accuracy) and (iii) its new way (`batched=True`: TFLite inputs set from each batch's
arrays at once, the extracts stay batches, one batched metric, `metrics.PairedAccuracy`). Its time is the whole Beam run: start-up, reading and
parsing the records, predicting, computing and writing metrics. At the smallest size, the
gate's full run too (candidate `tf_lite` and the dense Keras model, 2 workers), both ways.
(b) The seed tutorial's loop: one `tf.lite.Interpreter` (XNNPack on), `set_tensor` +
`invoke` + arg-max per example, over the same examples already in memory.

Between the two sizes: the marginal rate, the fixed seconds (extrapolated to 0 examples),
the CPU microseconds per example of all processes (this one and Beam's workers), and those
beyond batched inference alone (`inference_us`), which load from other processes on the
machine disturbs less than the wall-clock figures.

The candidate is the seed's CNN (trained 1 epoch; throughput does not depend on the
weights' values) converted with bonsai's default full-integer quantization.
"""
import math
import os
import resource
import tempfile
import time
from typing import Dict, List, Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils
from tfx_bsl.tfxio import tensor_adapter

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.compression_evaluator import executor as evaluator_executor
from tfx_bonsai.components.compression_evaluator import extractors as evaluator_extractors
from tfx_bonsai.components.compression_evaluator import spec as evaluator_spec
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import executor as converter_executor
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.models import digits_trainer

# The rate at the larger size over the smaller one's (`marginal_examples_per_s`) is the
# rate without Beam's fixed start-up cost.
SIZES = (10_000, 100_000)
WORKERS = (1, 2)
SHARDS = 4
SPLIT = "eval"


def build_models(seed: int = 0):
  """(the seed CNN trained one epoch on digits, its bonsai-default int8 TFLite bytes)."""
  tf.keras.utils.set_random_seed(seed)
  images, labels = digits.load_digits_28()
  model = digits_trainer.build_seed_cnn()
  model.fit(images, labels, epochs=1, batch_size=32, verbose=0)
  return model, conversion.convert(model, conversion.ConversionConfig(quantization="int8"),
                                   {"image": images[:200]})


def load_examples(count: int):
  """`count` digits (tiled with jitter by `load_digits_28(repeat=...)`): (images, labels)."""
  images, labels = digits.load_digits_28(repeat=math.ceil(count / 1797))
  return images[:count], labels[:count]


def write_examples(uri: str, images: np.ndarray, labels: np.ndarray,
                   shards: int = SHARDS) -> standard_artifacts.Examples:
  """An Examples artifact with one split, `SPLIT`, in `shards` gzipped TFRecord files."""
  examples = standard_artifacts.Examples()
  examples.uri = uri
  examples.split_names = artifact_utils.encode_split_names([SPLIT])
  examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
  split_dir = artifact_utils.get_split_uri([examples], SPLIT)
  tf.io.gfile.makedirs(split_dir)
  for shard in range(shards):
    path = os.path.join(split_dir, f"data_tfrecord-{shard:05d}-of-{shards:05d}.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
      for i in range(shard, len(labels), shards):
        writer.write(digits.to_example(images[i], labels[i]).SerializeToString())
  return examples


def write_models(uri: str, keras_model, model_bytes: bytes, examples) -> Dict[str, str]:
  """The candidate as TFLiteConverter writes it and the dense model as the Trainer does.

  Returns {model name: serving directory}.
  """
  candidate, dense = os.path.join(uri, "candidate"), os.path.join(uri, "dense")
  converter_executor.write_model(candidate, model_bytes)
  schema = examples_lib.infer_schema(examples, SPLIT)
  model_io.save_keras_model(keras_model, model_io.serving_dir(dense),
                            examples_lib.feature_spec(schema))
  return {evaluator_spec.CANDIDATE_MODEL_NAME: model_io.serving_dir(candidate),
          evaluator_spec.DENSE_MODEL_NAME: model_io.serving_dir(dense)}


def candidate_eval_config(label_key: str, batched: bool = False):
  """The gate's EvalConfig reduced to the candidate (`tf_lite`) model."""
  config = evaluator_executor.make_eval_config(label_key, with_production=False,
                                               batched=batched)
  keep = [s for s in config.model_specs if s.name == evaluator_spec.CANDIDATE_MODEL_NAME]
  del config.model_specs[:]
  config.model_specs.extend(keep)
  for metrics_spec in config.metrics_specs:
    metrics_spec.model_names[:] = [evaluator_spec.CANDIDATE_MODEL_NAME]
  return config


def tfma_throughput(model_dirs: Dict[str, str], examples, workers: int, output_path: str,
                    label_key: str = digits.LABEL_KEY, stock: bool = False,
                    batched: bool = False, mode: str = "multi_processing"
                    ) -> Dict[str, float]:
  """Runs TFMA on the candidate (alone, or with the dense model as the gate does).

  With `stock`, TFMA's default extractors (its TFLite DoFn, without XNNPack); else the
  gate's (`make_extractors`). Returns the candidate's example count, the run's seconds and
  its accuracy. `mode`: Beam's DirectRunner `direct_running_mode` (`multi_processing`:
  `workers` processes; `multi_threading`: `workers` threads in this process).
  """
  name = evaluator_spec.CANDIDATE_MODEL_NAME
  if len(model_dirs) == 1:
    eval_config = candidate_eval_config(label_key, batched)
  else:
    eval_config = evaluator_executor.make_eval_config(label_key, with_production=False,
                                                      batched=batched)
  shared = {model: tfma.default_eval_shared_model(eval_saved_model_path=path, model_name=model,
                                                  eval_config=eval_config)
            for model, path in model_dirs.items()}
  schema = examples_lib.infer_schema(examples, SPLIT)
  tfxio = tfxio_utils.get_tfxio_factory_from_artifact(
      examples=[examples], telemetry_descriptors=["bench"], schema=schema,
      raw_record_column_name=tfma_constants.ARROW_INPUT_COLUMN)(
          io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], SPLIT)))
  adapter_config = tensor_adapter.TensorAdapterConfig(
      arrow_schema=tfxio.ArrowSchema(), tensor_representations=tfxio.TensorRepresentations())
  args = [f"--direct_running_mode={mode}", f"--direct_num_workers={workers}"]
  start, cpu_start = time.monotonic(), cpu_seconds()
  with beam.Pipeline(argv=args) as pipeline:
    _ = (pipeline
         | "ReadExamples" >> tfxio.BeamSource()
         | "ExtractEvaluateAndWriteResults" >> tfma.ExtractEvaluateAndWriteResults(
             eval_shared_model=list(shared.values()), eval_config=eval_config,
             extractors=(None if stock else evaluator_extractors.make_extractors(
                 eval_config, shared, adapter_config, batched=batched)),
             output_path=output_path, tensor_adapter_config=adapter_config))
  seconds = time.monotonic() - start
  wait_for_workers()
  cpu = cpu_seconds() - cpu_start
  by_model = evaluator_executor.read_overall_metrics(output_path)
  # With one model, TFMA keys its metrics by the model name "".
  metrics = by_model[name] if name in by_model else by_model[""]
  return {"examples": int(metrics[evaluator_executor.EXAMPLE_COUNT_METRIC]),
          "seconds": seconds, "cpu_seconds": cpu,
          "accuracy": metrics[evaluator_executor.ACCURACY_METRIC]}


def cpu_seconds() -> float:
  """User + system CPU seconds of this process and its finished children (Beam's workers)."""
  own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
      resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def wait_for_workers(timeout: float = 60.0) -> None:
  """Waits until Beam's worker processes, started by this one, have exited and been reaped
  (their CPU time counts in RUSAGE_CHILDREN only then); Linux's /proc."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and _child_pids():
    time.sleep(0.1)


def _child_pids() -> List[int]:
  pids = []
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
      continue
    if int(fields[1]) == os.getpid():  # the parent pid
      pids.append(int(entry))
  return pids


def inference_us(model_bytes: bytes, images: np.ndarray, batch_size: int = 1000) -> float:
  """CPU microseconds per example of batched inference alone (one XNNPack thread, batches of
  `batch_size`, as the gate's DoFn invokes the candidate): the floor under any evaluation."""
  interpreter = tf.lite.Interpreter(model_content=model_bytes, num_threads=1)
  detail = interpreter.get_input_details()[0]
  output_index = interpreter.get_output_details()[0]["index"]
  interpreter.resize_tensor_input(detail["index"], [batch_size, *detail["shape"][1:]])
  interpreter.allocate_tensors()
  count = len(images) - len(images) % batch_size
  start = time.process_time()
  for i in range(0, count, batch_size):
    interpreter.set_tensor(detail["index"], images[i:i + batch_size].astype(np.float32))
    interpreter.invoke()
    interpreter.get_tensor(output_index)
  return 1e6 * (time.process_time() - start) / count


def loop_throughput(model_bytes: bytes, images: np.ndarray,
                    labels: np.ndarray) -> Dict[str, float]:
  """The seed's evaluation loop: one example per invoke; returns examples, seconds, accuracy."""
  start = time.monotonic()
  interpreter = tf.lite.Interpreter(model_content=model_bytes)
  interpreter.allocate_tensors()
  input_index = interpreter.get_input_details()[0]["index"]
  output_index = interpreter.get_output_details()[0]["index"]
  predictions = np.empty(len(labels), np.int64)
  for i, image in enumerate(images):
    interpreter.set_tensor(input_index, np.expand_dims(image, 0).astype(np.float32))
    interpreter.invoke()
    predictions[i] = np.argmax(interpreter.get_tensor(output_index)[0])
  seconds = time.monotonic() - start
  return {"examples": len(labels), "seconds": seconds,
          "accuracy": float(np.mean(predictions == labels))}


def row(config: str, size: int, figures: Dict[str, float],
        baseline: Dict[str, float]) -> Dict[str, float]:
  """A result row; `ratio_vs_loop` is its examples/s over the seed loop's on the same examples."""
  rate = figures["examples"] / figures["seconds"]
  result = {"benchmark": "throughput", "config": config, "examples": figures["examples"],
            "size": size, "seconds": figures["seconds"], "examples_per_s": rate,
            "ratio_vs_loop": rate / (baseline["examples"] / baseline["seconds"]),
            "accuracy": figures["accuracy"]}
  if "cpu_seconds" in figures:
    result["cpu_seconds"] = figures["cpu_seconds"]
  return result


def add_marginal_rates(rows: List[Dict[str, float]], inference: float = 0.0) -> None:
  """Adds to each config's rows after its smallest size the figures between the two sizes:
  `marginal_examples_per_s` (the extra examples over the extra seconds, i.e. the rate without
  the fixed start-up cost), `marginal_us_per_example` (its inverse), `fixed_seconds` (the
  seconds at 0 examples, extrapolated) and, with CPU times, `marginal_cpu_us_per_example`
  (CPU of all workers per extra example) and `beyond_inference_us` (that less `inference`,
  the CPU us per example of batched inference alone)."""
  first: Dict[str, Dict[str, float]] = {}
  for r in sorted(rows, key=lambda r: r["examples"]):
    if r["config"] in first and r["seconds"] > first[r["config"]]["seconds"]:
      base = first[r["config"]]
      extra = r["examples"] - base["examples"]
      r["marginal_examples_per_s"] = extra / (r["seconds"] - base["seconds"])
      r["marginal_us_per_example"] = 1e6 / r["marginal_examples_per_s"]
      r["fixed_seconds"] = base["seconds"] - base["examples"] / r["marginal_examples_per_s"]
      if "cpu_seconds" in r and "cpu_seconds" in base:
        r["marginal_cpu_us_per_example"] = 1e6 * (r["cpu_seconds"] - base["cpu_seconds"]) / extra
        if inference:
          r["inference_us"] = inference
          r["beyond_inference_us"] = r["marginal_cpu_us_per_example"] - inference
    first.setdefault(r["config"], r)


def _figure(r: Dict[str, float], key: str, spec: str) -> str:
  return "-" if r.get(key) is None else format(r[key], spec)


def table(rows: List[Dict[str, float]]) -> str:
  """Every row; the figures between the sizes on each config's larger size."""
  head = (f"{'config':48} {'examples':>9} {'seconds':>8} {'examples/s':>11} "
          f"{'vs seed loop':>13} {'marginal/s':>11} {'fixed s':>8} {'CPU us/ex':>10} "
          f"{'beyond inf.':>11} {'accuracy':>9}")
  lines = [head, "-" * len(head)]
  for r in rows:
    lines.append(f"{r['config']:48} {r['examples']:9d} {r['seconds']:8.1f} "
                 f"{r['examples_per_s']:11.0f} {r['ratio_vs_loop']:12.2f}x "
                 f"{_figure(r, 'marginal_examples_per_s', '.0f'):>11} "
                 f"{_figure(r, 'fixed_seconds', '.1f'):>8} "
                 f"{_figure(r, 'marginal_cpu_us_per_example', '.0f'):>10} "
                 f"{_figure(r, 'beyond_inference_us', '.0f'):>11} {r['accuracy']:9.4f}")
  return "\n".join(lines)


def comparison(rows: List[Dict[str, float]]) -> str:
  """The gate's old (per-example metrics) and new (batched metric) ways side by side, per
  worker count, at the largest size: whole-run ratio to the seed loop, marginal rate, fixed
  seconds, CPU us per example beyond inference; and each way's scaling from 1 to 2 workers."""
  largest = max(r["examples"] for r in rows)
  by_config = {r["config"]: r for r in rows if r["examples"] == largest}
  lines = [f"gate, {largest} examples: old (TFMA per-example metrics) vs new (batched metric)"]
  for count in WORKERS:
    pair = [by_config.get(gate_config(way, count)) for way in (PER_EXAMPLE, BATCHED)]
    if None in pair:
      continue
    lines.append(f"  {count} worker{'s' if count > 1 else ''}: " + "  vs  ".join(
        f"{r['ratio_vs_loop']:.2f}x loop, marginal {_figure(r, 'marginal_examples_per_s', '.0f')}"
        f"/s, fixed {_figure(r, 'fixed_seconds', '.1f')} s, beyond inference "
        f"{_figure(r, 'beyond_inference_us', '.0f')} us/ex" for r in pair))
  threads = by_config.get(gate_config(BATCHED, 2, THREADS))
  if threads:
    lines.append(f"  new way, 2 threads in one process (Beam multi_threading): "
                 f"{threads['ratio_vs_loop']:.2f}x loop, marginal "
                 f"{_figure(threads, 'marginal_examples_per_s', '.0f')}/s, fixed "
                 f"{_figure(threads, 'fixed_seconds', '.1f')} s")
  for way in (PER_EXAMPLE, BATCHED):
    one, two = (by_config.get(gate_config(way, count)) for count in (1, 2))
    if one and two:
      lines.append(f"  {way}: 2 workers / 1 worker = {one['seconds'] / two['seconds']:.2f}x "
                   f"whole run, {_scaling(one, two, 'marginal_examples_per_s')} marginal")
  return "\n".join(lines)


def _scaling(one: Dict[str, float], two: Dict[str, float], key: str) -> str:
  return f"{two[key] / one[key]:.2f}x" if one.get(key) and two.get(key) else "-"


PER_EXAMPLE, BATCHED = "per-example metrics (old)", "batched metric (new)"


THREADS = "multi_threading"


def gate_config(way: str, workers: int, mode: str = "multi_processing") -> str:
  if mode == THREADS:
    return f"gate, {way}, {workers} threads (Beam multi_threading)"
  return f"gate, {way}, {workers} worker{'s' if workers > 1 else ''}"


def run(seeds=(0,), sizes: Sequence[int] = SIZES,
        workers: Sequence[int] = WORKERS) -> List[Dict[str, float]]:
  keras_model, model_bytes = build_models(seeds[0])
  rows = []
  inference = None
  with tempfile.TemporaryDirectory() as tmp:
    model_dirs = None
    for size in sizes:
      images, labels = load_examples(size)
      if inference is None:
        inference = inference_us(model_bytes, images)
        print(f"  throughput: batched int8 inference alone {inference:.0f} CPU us/example",
              flush=True)
      start = time.monotonic()
      examples = write_examples(os.path.join(tmp, f"examples_{size}"), images, labels)
      print(f"  throughput: wrote {size} examples in {time.monotonic() - start:.0f} s",
            flush=True)
      if model_dirs is None:
        model_dirs = write_models(os.path.join(tmp, "models"), keras_model, model_bytes,
                                  examples)
      candidate = {evaluator_spec.CANDIDATE_MODEL_NAME:
                   model_dirs[evaluator_spec.CANDIDATE_MODEL_NAME]}
      baseline = loop_throughput(model_bytes, images, labels)
      runs = [("seed loop (1 interpreter, XNNPack)", baseline)]
      for count in workers:
        plural = "s" if count > 1 else ""
        out = os.path.join(tmp, f"evaluation_{size}_{count}")
        runs.append((f"TFMA stock tf_lite, {count} worker{plural}",
                     tfma_throughput(candidate, examples, count, out + "_stock", stock=True)))
        runs.append((gate_config(PER_EXAMPLE, count),
                     tfma_throughput(candidate, examples, count, out + "_per_example")))
        runs.append((gate_config(BATCHED, count),
                     tfma_throughput(candidate, examples, count, out + "_batched",
                                     batched=True)))
        if count > 1:
          # Threads in this process: no worker process importing TensorFlow/TFMA; the TFLite
          # interpreter and numpy release the GIL while they compute.
          runs.append((gate_config(BATCHED, count, THREADS),
                       tfma_throughput(candidate, examples, count, out + "_threads",
                                       batched=True, mode=THREADS)))
      if size == min(sizes):
        for way, batched in ((PER_EXAMPLE, False), (BATCHED, True)):
          runs.append((f"gate's TFMA run (+ dense Keras), {way}, 2 workers",
                       tfma_throughput(model_dirs, examples, 2,
                                       os.path.join(tmp, f"evaluation_{size}_gate_{batched}"),
                                       batched=batched)))
      for config, figures in runs:
        rows.append(row(config, size, figures, baseline))
        print(f"  throughput {config} {size}: {rows[-1]['examples_per_s']:.0f} examples/s",
              flush=True)
      tf.io.gfile.rmtree(examples.uri)
  add_marginal_rates(rows, inference)
  print(table(rows), flush=True)
  print(comparison(rows), flush=True)
  return rows
