"""Issue 21's first case as a user meets it: `bonsai run` with a Trainer module of their own,
an Embedding + LSTM sequence classifier (token ids in, softmax out) saved with model.save.

The run must prune the LSTM, convert it and end with the gate's verdict (exit 0 blessed or
3 refused): no KeyError, AttributeError or traceback on the terminal.
"""
import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.conformance import matrix

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = 800
MODULE = '''
import tf_keras as keras
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.utils import io_utils
from tfx_bsl.public.tfxio import TensorFlowDatasetOptions


def run_fn(fn_args):
  schema = io_utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
  data = fn_args.data_accessor.tf_dataset_factory(
      fn_args.train_files, TensorFlowDatasetOptions(batch_size=32, label_key="label"), schema)
  tokens = keras.Input(({steps},), dtype="int64", name="tokens")
  x = keras.layers.Embedding({vocab}, 16)(tokens)
  x = keras.layers.LSTM(32)(x)
  model = keras.Model(tokens, keras.layers.Dense({classes}, activation="softmax")(x))
  model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
  model.fit(data.repeat(), epochs=2, steps_per_epoch=20, verbose=2)
  model.save(fn_args.serving_model_dir)
'''


def _write_data(path):
  """Token sequences whose class is the last token's id modulo the class count."""
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, matrix.VOCAB, (EXAMPLES, matrix.STEPS))
  os.makedirs(path)
  with tf.io.TFRecordWriter(os.path.join(path, "data.tfrecord")) as writer:
    for row in tokens:
      feature = {"tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=row)),
                 "label": tf.train.Feature(int64_list=tf.train.Int64List(
                     value=[int(row[-1]) % matrix.CLASSES]))}
      writer.write(tf.train.Example(
          features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("sequence")
  _write_data(str(root / "data"))
  module = root / "sequence_trainer.py"
  module.write_text(textwrap.dedent(MODULE.format(steps=matrix.STEPS, vocab=matrix.VOCAB,
                                                  classes=matrix.CLASSES)))
  config = root / "sequence.yaml"
  config.write_text(textwrap.dedent(f"""\
      pipeline_name: sequence
      pipeline_root: {root}/pipeline
      data: {{path: {root}/data}}
      trainer: {{run_fn: "", module_file: {module}, train_steps: 40, eval_steps: 4}}
      pruning: {{target_sparsity: 0.8, epochs: 1}}
      sparsity: {{min_sparsity: 0.75}}
      conversion: {{quantization: int8, sparse_weights: true}}
      gate: {{max_accuracy_drop: 0.2, min_compression_ratio: 1.5}}
      push: {{destination: {root}/serving}}
      runner: {{type: local, beam_args: [--direct_running_mode=in_memory]}}
      """))
  done = subprocess.run([sys.executable, "-m", "tfx_bonsai.pipeline.cli", "run", "--config",
                         str(config)], cwd=REPO, capture_output=True, text=True, timeout=900)
  return done, str(root / "pipeline")


def test_the_run_reaches_a_verdict_without_a_raw_error(run):
  done, _ = run
  output = done.stdout + done.stderr
  assert done.returncode in (0, 3), output[-3000:]
  assert not any(raw in output for raw in matrix.RAW_ERRORS), output[-3000:]
  assert "BLESSED" in output.upper(), output[-3000:]


def test_the_lstm_was_pruned_and_converted(run):
  _, pipeline_root = run
  [report] = glob.glob(os.path.join(pipeline_root, "PruneTrainer", "pruned_model", "*",
                                    "pruning.json"))
  with open(report) as f:
    pruned = json.load(f)
  assert any(name.startswith("lstm") for name in pruned["pruned_layers"]), pruned["pruned_layers"]
  assert pruned["layer_sparsity"]["lstm"] >= 0.79
  assert glob.glob(os.path.join(pipeline_root, "TFLiteConverter", "*", "*", "Format-Serving",
                                "tflite"))
