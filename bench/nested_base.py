"""A nested Keras applications base end to end, through the components' executors.

MobileNetV2 (alpha 0.35, random weights, `include_top=False`) used as one layer of a digits
classifier (the embedded 28x28 digits, zero-padded to 32x32): trained briefly, then
PruneTrainer -> TFLiteConverter (int8, latency) -> CompressionEvaluator (TFMA). Prints the
sparsity, accuracies, compression ratio and batch-1 latency.

  scripts/env-run python -m bench.nested_base [--target 0.8] [--epochs 3]
"""
import argparse
import json
import os
import tempfile
import time

import tfx_bonsai  # noqa: F401  (Keras 2 before TensorFlow)
import numpy as np
import tensorflow as tf
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.compression_evaluator import executor as gate_executor
from tfx_bonsai.components.compression_evaluator import spec as gate_spec
from tfx_bonsai.components.prune_trainer import executor as prune_executor
from tfx_bonsai.components.prune_trainer import pruning
from tfx_bonsai.components.prune_trainer import spec as prune_spec
from tfx_bonsai.components.tflite_converter import executor as converter_executor
from tfx_bonsai.components.tflite_converter import spec as converter_spec
from tfx_bonsai.pipeline.models import digits


# The gate's budget, and PruneTrainer's: past it PruneTrainer refuses the pruned model.
BUDGET = 0.05


def _examples(uri, images, labels, cut):
  examples = standard_artifacts.Examples()
  examples.uri = uri
  examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
  for split, rows in (("train", range(cut)), ("eval", range(cut, len(labels)))):
    directory = artifact_utils.get_split_uri([examples], split)
    tf.io.gfile.makedirs(directory)
    with tf.io.TFRecordWriter(os.path.join(directory, "data.gz"), options="GZIP") as writer:
      for i in rows:
        writer.write(digits.to_example(images[i], labels[i]).SerializeToString())
  return examples


def _model():
  keras = model_io.keras()
  inputs = keras.Input((784,), name="image")
  x = keras.layers.ZeroPadding2D(2)(keras.layers.Reshape((28, 28, 1))(inputs))
  base = keras.applications.MobileNetV2(input_shape=(32, 32, 1), include_top=False,
                                        weights=None, alpha=0.35)
  x = keras.layers.GlobalAveragePooling2D()(base(x))
  model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
  model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
  return model


def _recalibrate(model, images):
  """BatchNorm moving statistics from one batch (MobileNetV2's momentum 0.999 needs far more
  steps than a short training run has)."""
  norms = [l for l in pruning.leaf_layers(model) if type(l).__name__ == "BatchNormalization"]
  momenta = [l.momentum for l in norms]
  for layer in norms:
    layer.momentum = 0.0
  model(images, training=True)
  for layer, momentum in zip(norms, momenta):
    layer.momentum = momentum


def run(target: float, epochs: int) -> dict:
  images, labels = digits.load_digits_28()
  order = np.random.default_rng(0).permutation(len(labels))
  images, labels = images[order], labels[order]
  cut = 1437
  root = tempfile.mkdtemp(prefix="bonsai-nested-")
  examples = _examples(os.path.join(root, "examples"), images, labels, cut)
  spec = {"image": tf.io.FixedLenFeature([784], tf.float32)}
  model_io.keras().utils.set_random_seed(0)
  model = _model()
  began = time.time()
  model.fit(images[:cut], labels[:cut], epochs=epochs, batch_size=32, verbose=0)
  _recalibrate(model, images[:512])
  dense = standard_artifacts.Model()
  dense.uri = os.path.join(root, "dense")
  model_io.save_keras_model(model, model_io.serving_dir(dense.uri), spec)
  trained = time.time() - began

  pruned = standard_artifacts.Model()
  pruned.uri = os.path.join(root, "pruned")
  model_run = standard_artifacts.ModelRun()
  model_run.uri = os.path.join(root, "run")
  began = time.time()
  prune_executor.Executor().Do(
      {prune_spec.EXAMPLES_KEY: [examples], prune_spec.MODEL_KEY: [dense]},
      {prune_spec.PRUNED_MODEL_KEY: [pruned], prune_spec.MODEL_RUN_KEY: [model_run]},
      {prune_spec.LABEL_KEY: "label", prune_spec.TRAIN_SPLIT_KEY: "train",
       prune_spec.EVAL_SPLIT_KEY: "eval", prune_spec.TARGET_SPARSITY_KEY: target,
       prune_spec.INITIAL_SPARSITY_KEY: min(0.5, target), prune_spec.SCHEDULE_KEY: "polynomial",
       prune_spec.EPOCHS_KEY: 2, prune_spec.BEGIN_STEP_KEY: 0, prune_spec.FREQUENCY_KEY: 0,
       prune_spec.BATCH_SIZE_KEY: 32, prune_spec.LEARNING_RATE_KEY: 1e-3,
       prune_spec.SEARCH_MAX_ACCURACY_DROP_KEY: BUDGET})
  pruned_s = time.time() - began

  tflite = standard_artifacts.Model()
  tflite.uri = os.path.join(root, "tflite")
  began = time.time()
  converter_executor.Executor().Do(
      {converter_spec.MODEL_KEY: [pruned], converter_spec.EXAMPLES_KEY: [examples]},
      {converter_spec.TFLITE_MODEL_KEY: [tflite]},
      {converter_spec.QUANTIZATION_KEY: "int8", converter_spec.SPARSE_WEIGHTS_KEY: 0,
       converter_spec.INT8_IO_KEY: 0, converter_spec.REPRESENTATIVE_EXAMPLES_KEY: 200,
       converter_spec.REPRESENTATIVE_SPLIT_KEY: "train",
       converter_spec.AGREEMENT_EXAMPLES_KEY: 360, converter_spec.AGREEMENT_SPLIT_KEY: "eval",
       converter_spec.MIN_AGREEMENT_KEY: 0.98, converter_spec.MAX_ABS_ERROR_KEY: 0.05,
       converter_spec.LABEL_KEY: "label", converter_spec.MEASURE_LATENCY_KEY: 1})
  converted_s = time.time() - began

  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = os.path.join(root, "evaluation")
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = os.path.join(root, "blessing")
  began = time.time()
  gate_executor.Executor().Do(
      {gate_spec.MODEL_KEY: [tflite], gate_spec.DENSE_MODEL_KEY: [dense],
       gate_spec.EXAMPLES_KEY: [examples]},
      {gate_spec.EVALUATION_KEY: [evaluation], gate_spec.BLESSING_KEY: [blessing]},
      {gate_spec.LABEL_KEY: "label", gate_spec.EVAL_SPLIT_KEY: "eval",
       gate_spec.MAX_ACCURACY_DROP_KEY: BUDGET, gate_spec.MAX_RELATIVE_ACCURACY_DROP_KEY: 0.0,
       gate_spec.MIN_COMPRESSION_RATIO_KEY: 2.0})
  gated_s = time.time() - began
  with open(os.path.join(blessing.uri, "verdict.json")) as f:
    verdict = json.load(f)
  with open(os.path.join(tflite.uri, converter_spec.REPORT_FILE)) as f:
    conversion_report = json.load(f)
  measured = verdict["measured"]
  row = {
      "target": target, "sparsity": pruned.get_float_custom_property(prune_spec.SPARSITY_PROPERTY),
      "dense_accuracy": measured["dense_accuracy"],
      "candidate_accuracy": measured["candidate_accuracy"],
      "compression_ratio": measured["dense_tflite_bytes"] / measured["candidate_gzip_bytes"],
      "agreement": conversion_report["agreement"],
      "agreement_ties": conversion_report["agreement_ties"],
      "latency_ms_1t": conversion_report.get("latency_ms_1t"),
      "dense_latency_ms_1t": conversion_report.get("dense_latency_ms_1t"),
      "latency_ratio": conversion_report.get("latency_ratio"),
      "blessed": verdict["blessed"], "summary": verdict["summary"],
      "seconds": {"train": trained, "prune": pruned_s, "convert": converted_s,
                  "gate": gated_s},
  }
  print(json.dumps(row, indent=2))
  return row


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--target", type=float, default=0.8)
  parser.add_argument("--epochs", type=int, default=3)
  args = parser.parse_args()
  run(args.target, args.epochs)
