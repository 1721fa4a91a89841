"""What an unattended run guarantees, on a real pipeline root and a real push destination.

One pipeline root for the module, so later runs reuse the cached upstream components.
The first run is SIGKILLed while PruneTrainer runs and then run again: it must resume
from the cache and push exactly one complete version. Every refusal after it asserts
that nothing new reaches the push destination (`snapshot` before and after) and says
why; a good candidate after the refusals is pushed as a new version.

Refusals already run by test_pipeline_e2e.py, with the same assertions (NOT_BLESSED
with the reason, nothing pushed, destination unchanged), and not repeated here:
accuracy collapse (test_accuracy_collapse_is_not_blessed), compression ratio miss
(test_unreachable_ratio_is_not_blessed_and_nothing_is_pushed) and sparsity miss
(test_failed_sparsity_check_is_not_blessed).
"""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.compression_evaluator import executor as evaluator_executor
from tfx_bonsai.components.compression_evaluator import spec as evaluator_spec
from tfx_bonsai.components.pusher import executor as pusher_executor
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.pipeline import config as config_lib
from tfx_bonsai.pipeline import pipeline as pipeline_lib
from tfx_bonsai.pipeline import summary as summary_lib
from tfx_bonsai.pipeline.models import digits
from tfx_bonsai.pipeline.runners import local
from tests.helpers import snapshot

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "digits.yaml")
UPSTREAM = ("ImportExampleGen", "ImportSchemaGen", "Trainer")  # configs/digits.yaml


def _overrides(root, *extra):
  """test_pipeline_e2e.py's `_config` overrides as `--set` values, with a 4-point accuracy
  budget: from seed to seed the candidate lands between 1.8 points below and 2.6 above its
  dense model (measured), and the runs here that must be blessed cannot be left to chance."""
  return [f"pipeline_root={root}/pipeline", f"data.path={root}/data",
          f"push.destination={root}/serving", "trainer.custom_config={epochs: 3, width: 0.5}",
          "trainer.train_steps=135", "pruning.epochs=3",
          "runner.beam_args=[--direct_num_workers=1]", "gate.max_accuracy_drop=0.04", *extra]


def _config(root, *extra):
  return config_lib.load(CONFIG, _overrides(root, *extra))


def _store(config):
  return metadata_store.MetadataStore(local.metadata_config(config))


def _latest_run(store):
  return max(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)


def _states(store, run_context):
  """{node id: last known execution state} of one pipeline run."""
  node_type = store.get_context_type("node").id
  states = {}
  for execution in store.get_executions_by_context(run_context.id):
    (node,) = [c for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type]
    states[node.name.split(".", 1)[1]] = execution.last_known_state
  return states


def _assert_runnable_tflite(path):
  """The pushed file loads in the TFLite interpreter and classifies digits."""
  interpreter = tf.lite.Interpreter(model_path=path)
  interpreter.allocate_tensors()
  images, labels = digits.load_digits_28()
  with open(path, "rb") as f:
    predictions = conversion.run_tflite(f.read(), {"image": images[:200]})
  assert np.mean(np.argmax(predictions, 1) == labels[:200]) > 0.8


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return str(tmp_path_factory.mktemp("guarantees"))


@pytest.fixture(scope="module")
def resumed(root):
  """The first run, SIGKILLed (with its process group) once PruneTrainer has started, then
  run again in-process to completion."""
  config = _config(root)
  log_path = os.path.join(root, "killed_run.log")
  command = [sys.executable, "-m", "tfx_bonsai.pipeline.cli", "run", "--config", CONFIG]
  for value in _overrides(root):
    command += ["--set", value]
  with open(log_path, "wb") as log:
    child = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=log,
                             stderr=subprocess.STDOUT)
    started = os.path.join(config.pipeline_root, "PruneTrainer")
    deadline = time.time() + 600
    try:
      while not os.path.isdir(started):
        assert child.poll() is None, (f"the run ended (exit {child.returncode}) before "
                                      f"PruneTrainer started; see {log_path}")
        assert time.time() < deadline, f"PruneTrainer did not start in 600 s; see {log_path}"
        time.sleep(0.2)
    finally:
      with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
      child.wait()
  with open(os.path.join(config.pipeline_root, local.LOCK_FILE)) as f:
    lock_owner = f.read()
  killed = {"pid": child.pid, "returncode": child.returncode, "lock_owner": lock_owner,
            "states": _states(_store(config), _latest_run(_store(config))),
            "destination": snapshot(config.push.destination)}
  summary = local.run(config)  # not refused: the kernel released the dead run's flock
  return {"killed": killed, "summary": summary, "config": config}


def test_killed_run_resumes_from_the_cache_and_pushes_one_complete_version(resumed):
  killed, summary, config = resumed["killed"], resumed["summary"], resumed["config"]
  assert killed["returncode"] == -signal.SIGKILL
  assert all(killed["states"][node] == metadata_store_pb2.Execution.COMPLETE
             for node in UPSTREAM), killed["states"]
  assert killed["states"].get("PruneTrainer") != metadata_store_pb2.Execution.COMPLETE
  assert killed["destination"] == {}  # the killed run pushed nothing
  # The dead run's lock file is still there, with its pid, and did not block the re-run.
  assert killed["lock_owner"] == str(killed["pid"])

  assert summary["blessed"], summary.get("verdict")
  assert summary["pushed"]
  store = _store(config)
  states = _states(store, _latest_run(store))
  assert {node: states[node] for node in UPSTREAM} == {
      node: metadata_store_pb2.Execution.CACHED for node in UPSTREAM}
  # Run again, not taken from the dead run.
  assert states["PruneTrainer"] == metadata_store_pb2.Execution.COMPLETE

  destination = config.push.destination
  (version,) = os.listdir(destination)  # exactly one version, no partial copy beside it
  assert version.isdigit()
  assert summary["pushed_destination"] == os.path.join(destination, version)
  assert snapshot(os.path.join(destination, version)) == snapshot(
      model_io.serving_dir(summary["candidate_uri"]))
  _assert_runnable_tflite(os.path.join(destination, version, model_io.TFLITE_FILE_NAME))


def test_a_concurrent_run_is_refused_before_doing_anything(tmp_path):
  config = _config(str(tmp_path))
  with local.exclusive(config.pipeline_root):
    with pytest.raises(local.RunError,
                       match="another run of this pipeline is using pipeline_root"):
      local.run(config)
  assert os.listdir(config.pipeline_root) == [local.LOCK_FILE]  # no metadata, no artifacts
  assert not os.path.exists(config.data.path)  # not even the data export
  assert not os.path.exists(config.push.destination)


def test_the_pipeline_pushes_with_the_atomic_executor(tmp_path):
  pipeline = pipeline_lib.create_pipeline(_config(str(tmp_path)))
  (pusher,) = [c for c in pipeline.components if c.id == "Pusher"]
  assert pusher.executor_spec.executor_class is pusher_executor.AtomicPushExecutor


def _saved_summary(config, run_id):
  path = os.path.join(config.pipeline_root, summary_lib.SUMMARIES_DIR, f"{run_id}.json")
  with open(path) as f:
    return json.load(f)


def test_tflite_the_interpreter_cannot_run_is_not_blessed_and_pushes_nothing(resumed, root):
  destination = resumed["config"].push.destination
  before = snapshot(destination)
  # XNNPack cannot prepare the sparse dynamic-range CONV_2D; TFMA (no XNNPack) would not notice.
  # With no fallback mode the converter publishes it marked failed and the gate refuses it.
  config = _config(root, "conversion.quantization=dynamic", "conversion.sparse_weights=true",
                   "conversion.fallback=[]")
  summary = local.run(config)
  assert not summary["blessed"] and not summary["pushed"]
  (reason,) = summary["verdict"]["reasons"]
  assert reason.startswith("conversion failed: no conversion agrees")
  assert "cannot run the model converted with quantization='dynamic', sparse_weights=True" in reason
  assert snapshot(destination) == before
  states = _states(_store(config), _latest_run(_store(config)))
  assert states["TFLiteConverter"] == metadata_store_pb2.Execution.COMPLETE
  assert states["CompressionEvaluator"] == metadata_store_pb2.Execution.COMPLETE


def test_candidate_worse_than_production_is_not_pushed(resumed, root):
  destination = resumed["config"].push.destination
  before = snapshot(destination)
  # A refresh whose Trainer barely trained (9 steps). The candidate is that dense model,
  # unpruned, in float16, so it passes every check against its dense model; both are far
  # below the pushed model, and only the production check can refuse it.
  summary = local.run(_config(
      root, "trainer.train_steps=9", "pruning.target_sparsity=0.0",
      "pruning.initial_sparsity=0.0", "pruning.epochs=1", "pruning.learning_rate=0.0000001",
      "sparsity.min_sparsity=0.0", "conversion.quantization=float16",
      "conversion.sparse_weights=false", "gate.min_compression_ratio=1.5"))
  assert not summary["blessed"] and not summary["pushed"]
  verdict = summary["verdict"]
  assert [r.split()[0] for r in verdict["reasons"]] == ["production_drop"], verdict["reasons"]
  checks = {c["name"]: c for c in verdict["checks"]}
  assert checks["accuracy_drop"]["passed"]
  # The production model is the one pushed first: same model, same eval split, same accuracy.
  assert verdict["measured"]["production_accuracy"] == pytest.approx(
      resumed["summary"]["verdict"]["measured"]["candidate_accuracy"])
  assert snapshot(destination) == before


def _from_mlmd(artifact_class, proto):
  artifact = artifact_class()
  artifact.set_mlmd_artifact(proto)
  return artifact


def _examples_without_label(uri, source, keep_first):
  """An Examples artifact whose eval split is `source`'s with the label removed from
  every example after the first `keep_first`."""
  examples = standard_artifacts.Examples()
  examples.uri = uri
  examples.split_names = '["eval"]'
  records = tf.data.TFRecordDataset(examples_lib.split_files(source, "eval"),
                                    compression_type="GZIP")
  os.makedirs(os.path.join(uri, "Split-eval"))
  with tf.io.TFRecordWriter(os.path.join(uri, "Split-eval", "data_tfrecord-00000-of-00001.gz"),
                            options="GZIP") as writer:
    for i, record in enumerate(records):
      example = tf.train.Example.FromString(record.numpy())
      if i >= keep_first:
        del example.features.feature["label"]
      writer.write(example.SerializeToString())
  return examples


def test_failed_evaluation_is_not_blessed_and_pushes_nothing(resumed, tmp_path):
  """No configuration makes TFMA fail after the upstream components succeed (a bad
  label_key stops PruneTrainer first), so the gate's executor runs here on the first run's
  artifacts with an eval split that lost its label in most examples, and the Pusher's
  executor runs on the blessing it wrote, against the real destination."""
  config = resumed["config"]
  destination = config.push.destination
  before = snapshot(destination)
  store = _store(config)
  (run,) = [c for c in store.get_contexts_by_type("pipeline_run")
            if c.name == resumed["summary"]["run_id"]]
  outputs = summary_lib.run_outputs(store, config.pipeline_root, run)
  candidate = _from_mlmd(standard_artifacts.Model, outputs["TFLiteConverter/tflite_model"])
  dense = _from_mlmd(standard_artifacts.Model, outputs["Trainer/model"])
  source = _from_mlmd(standard_artifacts.Examples, outputs["ImportExampleGen/examples"])
  properties = {evaluator_spec.LABEL_KEY: "label", evaluator_spec.EVAL_SPLIT_KEY: "eval",
                evaluator_spec.MAX_ACCURACY_DROP_KEY: 0.01,
                evaluator_spec.MAX_RELATIVE_ACCURACY_DROP_KEY: 0.0,
                evaluator_spec.MIN_COMPRESSION_RATIO_KEY: 10.0}

  def evaluate(name, keep_first):
    examples = _examples_without_label(str(tmp_path / name / "examples"), source, keep_first)
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path / name / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / name / "blessing")
    evaluator_executor.Executor().Do(
        {evaluator_spec.MODEL_KEY: [candidate], evaluator_spec.DENSE_MODEL_KEY: [dense],
         evaluator_spec.EXAMPLES_KEY: [examples], evaluator_spec.BASELINE_MODEL_KEY: [candidate]},
        {evaluator_spec.EVALUATION_KEY: [evaluation], evaluator_spec.BLESSING_KEY: [blessing]},
        properties)
    return blessing

  # The label in no example: the gate's executor fails naming it (the run stops there).
  with pytest.raises(examples_lib.DataError, match="label_key 'label' is not a feature"):
    evaluate("no_label", keep_first=0)

  # The label in the first 100 examples only: TFMA fails, the gate says NOT_BLESSED.
  blessing = evaluate("some_labels", keep_first=100)
  verdict = blessing_lib.read_verdict(blessing)
  assert not blessing_lib.is_blessed(blessing)
  assert verdict["reasons"][0].startswith("evaluation failed: ValueError")
  assert any("candidate_accuracy" in r and "could not be computed" in r
             for r in verdict["reasons"]), verdict["reasons"]

  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed_model")
  push_destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=destination))
  pusher_executor.AtomicPushExecutor().Do(
      {standard_component_specs.MODEL_KEY: [candidate],
       standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
      {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(push_destination),
       standard_component_specs.CUSTOM_CONFIG_KEY: "null"})
  assert pushed.get_int_custom_property("pushed") == 0
  assert snapshot(destination) == before


def test_good_candidate_after_the_refusals_is_pushed_as_a_new_version(resumed, root):
  destination = resumed["config"].push.destination
  before = snapshot(destination)
  versions = sorted(os.listdir(destination))
  # A fresh candidate: the same pruned model, int8-calibrated on 100 examples instead of 200
  # (a new fine-tune differs from production by seed noise, measured up to 2.7 points).
  summary = local.run(_config(root, "conversion.representative_examples=100"))
  assert summary["blessed"], summary["verdict"]["reasons"]
  assert summary["pushed"]
  checks = {c["name"]: c for c in summary["verdict"]["checks"]}
  assert checks["production_drop"]["passed"]
  names = sorted(os.listdir(destination))
  (new,) = set(names) - set(versions)
  assert int(new) > max(int(v) for v in versions)  # served as the latest version
  assert not [n for n in names if n.startswith(".")]
  assert {k: v for k, v in snapshot(destination).items() if not k.startswith(new + "/")} == before
  assert snapshot(os.path.join(destination, new)) == snapshot(
      model_io.serving_dir(summary["candidate_uri"]))
  _assert_runnable_tflite(os.path.join(destination, new, model_io.TFLITE_FILE_NAME))
