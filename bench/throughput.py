"""Evaluation throughput: the gate's TFMA `tf_lite` evaluation vs the seed's interpreter loop.

(a) TFMA on Beam's DirectRunner (multi-processing, 1 and 2 workers) over an Examples
artifact laid out as ExampleGen writes it (gzipped TFRecord shards), the candidate
alone as `tf_lite`: the gate's EvalConfig (`make_eval_config`) reduced to the
candidate, (i) with TFMA's stock extractors (its TFLitePredictionDoFn, which runs
without XNNPack) and (ii) with the gate's (`make_extractors`: the same chain with
bonsai's XNNPack-enabled prediction DoFn). Its time is the whole Beam
run: start-up, reading and parsing the records, predicting, computing and writing
metrics. At the smallest size, the gate's full run too (`make_eval_config` +
`make_extractors`: candidate `tf_lite` and the dense Keras model, 2 workers).
(b) The seed tutorial's loop: one `tf.lite.Interpreter` (XNNPack on), `set_tensor` +
`invoke` + arg-max per example, over the same examples already in memory.

The candidate is the seed's CNN (trained 1 epoch; throughput does not depend on the
weights' values) converted with bonsai's default full-integer quantization.
"""
import math
import os
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
                    batched: bool = False) -> Dict[str, float]:
  """Runs TFMA on the candidate (alone, or with the dense model as the gate does).

  With `stock`, TFMA's default extractors (its TFLite DoFn, without XNNPack); else the
  gate's (`make_extractors`). Returns the candidate's example count, the run's seconds and
  its accuracy.
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
  args = ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
  start = time.monotonic()
  with beam.Pipeline(argv=args) as pipeline:
    _ = (pipeline
         | "ReadExamples" >> tfxio.BeamSource()
         | "ExtractEvaluateAndWriteResults" >> tfma.ExtractEvaluateAndWriteResults(
             eval_shared_model=list(shared.values()), eval_config=eval_config,
             extractors=(None if stock else evaluator_extractors.make_extractors(
                 eval_config, shared, adapter_config, batched=batched)),
             output_path=output_path, tensor_adapter_config=adapter_config))
  seconds = time.monotonic() - start
  by_model = evaluator_executor.read_overall_metrics(output_path)
  # With one model, TFMA keys its metrics by the model name "".
  metrics = by_model[name] if name in by_model else by_model[""]
  return {"examples": int(metrics[evaluator_executor.EXAMPLE_COUNT_METRIC]),
          "seconds": seconds,
          "accuracy": metrics[evaluator_executor.ACCURACY_METRIC]}


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
  return {"benchmark": "throughput", "config": config, "examples": figures["examples"],
          "size": size, "seconds": figures["seconds"], "examples_per_s": rate,
          "ratio_vs_loop": rate / (baseline["examples"] / baseline["seconds"]),
          "accuracy": figures["accuracy"]}


def add_marginal_rates(rows: List[Dict[str, float]]) -> None:
  """Adds `marginal_examples_per_s` to each config's rows after its smallest size: the extra
  examples over the extra seconds, i.e. the rate without the fixed start-up cost."""
  first: Dict[str, Dict[str, float]] = {}
  for r in sorted(rows, key=lambda r: r["examples"]):
    if r["config"] in first and r["seconds"] > first[r["config"]]["seconds"]:
      base = first[r["config"]]
      r["marginal_examples_per_s"] = ((r["examples"] - base["examples"])
                                      / (r["seconds"] - base["seconds"]))
    first.setdefault(r["config"], r)


def table(rows: List[Dict[str, float]]) -> str:
  head = (f"{'config':44} {'examples':>9} {'seconds':>8} {'examples/s':>11} "
          f"{'vs seed loop':>13} {'marginal/s':>11} {'accuracy':>9}")
  lines = [head, "-" * len(head)]
  for r in rows:
    marginal = r.get("marginal_examples_per_s")
    lines.append(f"{r['config']:44} {r['examples']:9d} {r['seconds']:8.1f} "
                 f"{r['examples_per_s']:11.0f} {r['ratio_vs_loop']:12.2f}x "
                 f"{'-' if marginal is None else format(marginal, '.0f'):>11} "
                 f"{r['accuracy']:9.4f}")
  return "\n".join(lines)


def run(seeds=(0,), sizes: Sequence[int] = SIZES,
        workers: Sequence[int] = WORKERS) -> List[Dict[str, float]]:
  keras_model, model_bytes = build_models(seeds[0])
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    model_dirs = None
    for size in sizes:
      images, labels = load_examples(size)
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
        runs.append((f"TFMA stock tf_lite, {count} worker{plural}",
                     tfma_throughput(candidate, examples, count,
                                     os.path.join(tmp, f"evaluation_{size}_{count}_stock"),
                                     stock=True)))
        runs.append((f"gate (TFMA, XNNPack DoFn), {count} worker{plural}",
                     tfma_throughput(candidate, examples, count,
                                     os.path.join(tmp, f"evaluation_{size}_{count}"))))
      if size == min(sizes):
        runs.append(("gate's TFMA run (+ dense Keras), 2 workers",
                     tfma_throughput(model_dirs, examples, 2,
                                     os.path.join(tmp, f"evaluation_{size}_gate"))))
      for config, figures in runs:
        rows.append(row(config, size, figures, baseline))
        print(f"  throughput {config} {size}: {rows[-1]['examples_per_s']:.0f} examples/s",
              flush=True)
      tf.io.gfile.rmtree(examples.uri)
  add_marginal_rates(rows)
  print(table(rows), flush=True)
  return rows
