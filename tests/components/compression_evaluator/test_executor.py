"""CompressionEvaluator's executor with real TFMA on Beam and real TFLite models, and the
component's construction checks."""
import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tfx import types
from tfx import v1 as tfx_v1
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact as artifact_lib
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.compression_evaluator import component
from tfx_bonsai.components.compression_evaluator import executor
from tfx_bonsai.components.compression_evaluator import extractors
from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.components.compression_evaluator import spec
from tfx_bonsai.components.prune_trainer import settings as prune_settings
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import settings as converter_settings
from tfx_bonsai.components.tflite_converter import spec as converter_spec
from tfx_bonsai.pipeline.models import digits_trainer

# 360 eval examples confirm about 2-3 pp: even a perfect match's 95% bound is 1.32 pp.
DEFAULTS = {spec.LABEL_KEY: "label", spec.EVAL_SPLIT_KEY: "eval",
            spec.MAX_ACCURACY_DROP_KEY: 0.03, spec.MAX_RELATIVE_ACCURACY_DROP_KEY: 0.0,
            spec.MIN_COMPRESSION_RATIO_KEY: 1.5}


def _tflite_artifact(uri, model_bytes, artifact_id):
  """A Model artifact laid out as TFLiteConverter writes it, with its size properties."""
  artifact = standard_artifacts.Model()
  artifact.uri = uri
  artifact.id = artifact_id
  tf.io.gfile.makedirs(model_io.serving_dir(uri))
  with tf.io.gfile.GFile(model_io.tflite_path(uri), "wb") as f:
    f.write(model_bytes)
  artifact.set_int_custom_property(converter_spec.TFLITE_BYTES_PROPERTY, len(model_bytes))
  artifact.set_int_custom_property(converter_spec.TFLITE_GZIP_BYTES_PROPERTY,
                                   conversion.gzip_size(model_bytes))
  return artifact


def _convert(model_artifact, quantization):
  keras_model = model_io.load_keras_model(model_artifact.uri, compile=False)
  return conversion.convert(keras_model, conversion.ConversionConfig(quantization=quantization))


@pytest.fixture(scope="module")
def candidate(tmp_path_factory, small_dense_model):
  """The dense model's dynamic-range TFLite, as TFLiteConverter outputs it."""
  return _tflite_artifact(str(tmp_path_factory.mktemp("candidate")),
                          _convert(small_dense_model, "dynamic"), 21)


@pytest.fixture(scope="module")
def production(tmp_path_factory, small_dense_model):
  """A previously blessed TFLite model in production: the well-trained one."""
  return _tflite_artifact(str(tmp_path_factory.mktemp("production")),
                          _convert(small_dense_model, "dynamic"), 22)


@pytest.fixture(scope="module")
def weak_dense_model(tmp_path_factory, digits_arrays, digits_schema):
  """A Trainer's Model barely trained (one epoch on 96 examples): far below production."""
  images, labels = digits_arrays
  model = digits_trainer.build_seed_cnn(width=0.25)
  model.fit(images[:96], labels[:96], epochs=1, batch_size=32, verbose=0)
  artifact = standard_artifacts.Model()
  artifact.uri = str(tmp_path_factory.mktemp("weak_dense"))
  artifact.id = 23
  model_io.save_keras_model(model, model_io.serving_dir(artifact.uri),
                            examples_lib.feature_spec(examples_lib.load_schema(digits_schema)))
  return artifact


def _sparsity_blessing(uri, blessed, model):
  artifact = blessing_lib.SparsityBlessing()
  artifact.uri = uri
  blessing_lib.write_blessing(artifact, blessed, model, {"passed": blessed})
  return artifact


def _run(tmp_path, candidate, dense, examples, production=None, sparsity=None, context=None,
         dense_blessing=None, executor_class=executor.Executor, **properties):
  evaluation = standard_artifacts.ModelEvaluation()
  evaluation.uri = str(tmp_path / "evaluation")
  blessing = blessing_lib.CompressionBlessing()
  blessing.uri = str(tmp_path / "blessing")
  inputs = {spec.MODEL_KEY: [candidate], spec.DENSE_MODEL_KEY: [dense],
            spec.EXAMPLES_KEY: [examples]}
  if production is not None:
    inputs[spec.BASELINE_MODEL_KEY] = [production]
  if sparsity is not None:
    inputs[spec.SPARSITY_BLESSING_KEY] = [sparsity]
  if dense_blessing is not None:
    inputs[spec.DENSE_BLESSING_KEY] = [dense_blessing]
  executor_class(context).Do(inputs, {spec.EVALUATION_KEY: [evaluation],
                                      spec.BLESSING_KEY: [blessing]},
                             {**DEFAULTS, **properties})
  verdict = blessing_lib.read_verdict(blessing)
  return evaluation, blessing, verdict


def _push(tmp_path, model, blessing):
  """Runs the stock Pusher on `model` gated by `blessing`; returns (pushed, pushed files)."""
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / "pushed_model")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(tmp_path / "serving")))
  pusher_executor.Executor().Do(
      {standard_component_specs.MODEL_KEY: [model],
       standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
      {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
      {standard_component_specs.PUSH_DESTINATION_KEY: proto_utils.proto_to_json(destination),
       standard_component_specs.CUSTOM_CONFIG_KEY: "null"})
  files = [os.path.relpath(os.path.join(root, name), str(tmp_path / "serving"))
           for root, _, names in os.walk(str(tmp_path / "serving")) for name in names]
  return pushed.get_int_custom_property("pushed"), files


def _check(verdict, name):
  found = [c for c in verdict["checks"] if c["name"] == name]
  assert len(found) == 1, verdict
  return found[0]


def test_dynamic_range_candidate_is_blessed(tmp_path, candidate, small_dense_model,
                                            digits_examples, digits_schema):
  pipelines = []

  def make_pipeline():
    pipelines.append(beam.Pipeline(argv=["--direct_num_workers=1"]))
    return pipelines[-1]

  context = base_beam_executor.BaseBeamExecutor.Context(make_beam_pipeline_fn=make_pipeline)
  evaluation, blessing, verdict = _run(tmp_path, candidate, small_dense_model,
                                       digits_examples, context=context)

  assert len(pipelines) == 1  # TFMA ran on the executor's Beam pipeline
  assert verdict["blessed"] is True, verdict["summary"]
  assert blessing_lib.is_blessed(blessing)
  validations = tfma.load_validation_result(evaluation.uri)  # TFMA's own loader
  assert validations.validation_ok and not validations.metric_validations_per_slice
  assert verdict[executor.SIZE_BASIS_KEY] == executor.SIZE_BASIS
  assert not os.path.exists(os.path.join(blessing.uri, blessing_lib.NOT_BLESSED_FILE))
  assert blessing.get_int_custom_property(blessing_lib.CURRENT_MODEL_ID_KEY) == candidate.id
  assert blessing.get_string_custom_property(blessing_lib.CURRENT_MODEL_KEY) == candidate.uri
  assert {c["name"] for c in verdict["checks"]} == {gate.ACCURACY_DROP, gate.CLASS_DROP,
                                                    gate.COMPRESSION_RATIO}

  # The evaluation is TFMA's own output, one run holding both models.
  by_model = {}
  for name in (spec.CANDIDATE_MODEL_NAME, spec.DENSE_MODEL_NAME):
    result = tfma.load_eval_result(evaluation.uri, model_name=name)
    [(slice_key, overall)] = result.slicing_metrics
    assert slice_key == ()
    values = overall[""][""]
    assert values[executor.EXAMPLE_COUNT_METRIC]["doubleValue"] == 360
    by_model[name] = values[executor.ACCURACY_METRIC]["doubleValue"]
  assert by_model[spec.DENSE_MODEL_NAME] > 0.85
  assert abs(by_model[spec.CANDIDATE_MODEL_NAME] - by_model[spec.DENSE_MODEL_NAME]) <= 0.02
  assert executor.read_overall_metrics(evaluation.uri)[spec.CANDIDATE_MODEL_NAME][
      executor.ACCURACY_METRIC] == pytest.approx(by_model[spec.CANDIDATE_MODEL_NAME])

  # The paired outcomes cover the same 360 examples and give the same accuracies; the
  # verdict reports the drop with its interval and n.
  counts = executor.paired_counts(executor.read_paired_outcomes(evaluation.uri),
                                  spec.DENSE_MODEL_NAME, spec.CANDIDATE_MODEL_NAME)
  assert counts.n == 360
  assert counts.baseline_accuracy == pytest.approx(by_model[spec.DENSE_MODEL_NAME])
  assert counts.candidate_accuracy == pytest.approx(by_model[spec.CANDIDATE_MODEL_NAME])
  drop_check = _check(verdict, gate.ACCURACY_DROP)
  assert drop_check["decision"] == gate.CONFIDENT and drop_check["n"] == 360
  assert drop_check["ci_low"] <= drop_check["drop"] <= drop_check["ci_high"] <= 0.03
  assert drop_check["ci_high"] > 0.01  # never [0, 0], whatever the counts
  assert verdict["measured"][gate.DENSE_PAIRED_COUNTS] == counts.to_dict()

  # TFMA's dense accuracy is the Keras model's accuracy on the eval split.
  schema = examples_lib.load_schema(digits_schema)
  sample = examples_lib.read_sample(digits_examples, "eval", schema, "label", 1000)
  keras_model = model_io.load_keras_model(small_dense_model.uri, compile=False)
  predicted = np.argmax(keras_model.predict(sample["image"], verbose=0), axis=1)
  assert by_model[spec.DENSE_MODEL_NAME] == pytest.approx(
      np.mean(predicted == sample["label"].ravel()), abs=1e-6)

  # The blessing carries the figures the gate used.
  assert blessing.get_float_custom_property(spec.CANDIDATE_ACCURACY_PROPERTY) == pytest.approx(
      by_model[spec.CANDIDATE_MODEL_NAME])
  assert blessing.get_float_custom_property(spec.DENSE_ACCURACY_PROPERTY) == pytest.approx(
      by_model[spec.DENSE_MODEL_NAME])
  dense_bytes = len(_convert(small_dense_model, "none"))
  gzip_bytes = candidate.get_int_custom_property(converter_spec.TFLITE_GZIP_BYTES_PROPERTY)
  assert verdict["measured"][gate.DENSE_TFLITE_BYTES] == dense_bytes
  assert verdict["measured"][gate.CANDIDATE_GZIP_BYTES] == gzip_bytes
  assert blessing.get_float_custom_property(spec.COMPRESSION_RATIO_PROPERTY) == pytest.approx(
      dense_bytes / gzip_bytes)
  assert dense_bytes / gzip_bytes > 1.5

  # The stock Pusher accepts the blessing and pushes the TFLite model.
  pushed, files = _push(tmp_path, candidate, blessing)
  assert pushed == 1
  assert [os.path.basename(f) for f in files] == [model_io.TFLITE_FILE_NAME]


def test_compression_below_the_minimum_is_not_blessed(tmp_path, candidate, small_dense_model,
                                                      digits_examples):
  evaluation, blessing, verdict = _run(tmp_path, candidate, small_dense_model, digits_examples,
                                       **{spec.MIN_COMPRESSION_RATIO_KEY: 100.0})
  assert not blessing_lib.is_blessed(blessing)
  validations = tfma.load_validation_result(evaluation.uri)  # TFMA's own loader
  assert not validations.validation_ok
  [failure] = validations.metric_validations_per_slice[0].failures
  assert failure.message == verdict["reasons"][0]
  assert failure.metric_key.name == gate.COMPRESSION_RATIO
  assert failure.metric_threshold.value_threshold.lower_bound.value == 100.0
  assert failure.metric_value.double_value.value == pytest.approx(
      blessing.get_float_custom_property(spec.COMPRESSION_RATIO_PROPERTY))
  assert blessing.get_int_custom_property(blessing_lib.BLESSED_KEY) == 0
  assert os.path.exists(os.path.join(blessing.uri, blessing_lib.NOT_BLESSED_FILE))
  assert [r.split()[0] for r in verdict["reasons"]] == [gate.COMPRESSION_RATIO]
  assert _check(verdict, gate.ACCURACY_DROP)["passed"] is True
  assert blessing.get_int_custom_property(blessing_lib.CURRENT_MODEL_ID_KEY) == candidate.id
  assert _push(tmp_path, candidate, blessing) == (0, [])


def test_sparsity_not_blessed_blocks_the_candidate(tmp_path, candidate, small_dense_model,
                                                   digits_examples):
  sparsity = _sparsity_blessing(str(tmp_path / "sparsity"), False, small_dense_model)
  _, blessing, verdict = _run(tmp_path, candidate, small_dense_model, digits_examples,
                              sparsity=sparsity)
  assert not blessing_lib.is_blessed(blessing)
  assert verdict["reasons"] == ["sparsity NOT_BLESSED by SparsityValidator"]
  assert _check(verdict, gate.SPARSITY)["passed"] is False


def test_much_better_production_model_blocks_the_candidate(tmp_path, weak_dense_model,
                                                           production, digits_examples):
  weak = _tflite_artifact(str(tmp_path / "weak_candidate"), _convert(weak_dense_model, "float16"),
                          24)
  evaluation, blessing, verdict = _run(tmp_path, weak, weak_dense_model, digits_examples,
                                       production=production)
  assert not blessing_lib.is_blessed(blessing)
  assert blessing.get_int_custom_property(blessing_lib.CURRENT_MODEL_ID_KEY) == weak.id
  assert blessing.get_int_custom_property("baseline_model_id") == production.id
  # The candidate matches its own dense model; it is blocked by production alone.
  assert _check(verdict, gate.ACCURACY_DROP)["passed"] is True
  production_check = _check(verdict, gate.PRODUCTION_DROP)
  assert production_check["passed"] is False and production_check["measured"] > 0.1
  assert production_check["n"] == 360 and production_check["ci_low"] > 0.03  # clearly over
  assert [r.split()[0] for r in verdict["reasons"]] == [gate.PRODUCTION_DROP]
  assert blessing.get_float_custom_property(spec.PRODUCTION_ACCURACY_PROPERTY) > 0.85
  production_result = tfma.load_eval_result(evaluation.uri, model_name=spec.PRODUCTION_MODEL_NAME)
  assert production_result.slicing_metrics[0][1][""][""][executor.ACCURACY_METRIC][
      "doubleValue"] == pytest.approx(verdict["measured"][gate.PRODUCTION_ACCURACY])


def test_a_candidate_that_lost_one_class_is_refused_by_class(tmp_path, small_dense_model,
                                                            digits_examples):
  """A real TFLite candidate: the dense model with class 3's output bias lowered by 20. Its
  overall drop (~10 pp) is confidently within a 20 pp budget, yet class 3 is lost."""
  keras_model = model_io.load_keras_model(small_dense_model.uri, compile=False)
  kernel, bias = keras_model.layers[-1].get_weights()
  bias[3] -= 20.0
  keras_model.layers[-1].set_weights([kernel, bias])
  lost = _tflite_artifact(str(tmp_path / "lost_class"), conversion.convert(
      keras_model, conversion.ConversionConfig(quantization="dynamic")), 26)
  _, blessing, verdict = _run(tmp_path, lost, small_dense_model, digits_examples,
                              **{spec.MAX_ACCURACY_DROP_KEY: 0.2})
  assert not blessing_lib.is_blessed(blessing)
  assert _check(verdict, gate.ACCURACY_DROP)["passed"] is True
  class_check = _check(verdict, gate.CLASS_DROP)
  counts = class_check["counts"]   # class 3's table: the candidate never answers 3
  assert class_check["passed"] is False and counts["candidate_only"] == counts["both"] == 0
  # Every class-3 example the dense model gets right is lost (the dense model is trained
  # unseeded: about 25-30 of the ~36, so only a majority is fixed here).
  assert counts["baseline_only"] > counts["n"] / 2
  (reason,) = verdict["reasons"]
  assert reason.startswith("class_drop: class 3: drop +")
  assert sum(c["n"] for c in verdict["measured"][gate.DENSE_CLASS_PAIRED_COUNTS].values()) == 360


def _rounded(value):
  """`value` with every float rounded to 6 decimals (nested dicts and lists)."""
  if isinstance(value, float):
    return round(value, 6)
  if isinstance(value, dict):
    return {k: _rounded(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_rounded(v) for v in value]
  return value


class _PerExampleExecutor(executor.Executor):
  BATCHED = False  # TFMA's per-example metrics and the per-example paired outcomes step


def test_batched_evaluation_gives_the_per_example_verdict_and_metrics(
    tmp_path, weak_dense_model, small_dense_model, production, digits_examples):
  """Three models, a candidate worse than production: the batched metric and TFMA's
  per-example path give the same TFMA metrics, paired outcomes and verdict."""
  weak = _tflite_artifact(str(tmp_path / "weak_candidate"), _convert(weak_dense_model, "float16"),
                          25)
  runs = {name: _run(tmp_path / name, weak, small_dense_model, digits_examples,
                     production=production, executor_class=executor_class)
          for name, executor_class in (("batched", executor.Executor),
                                       ("per_example", _PerExampleExecutor))}
  (batched_eval, _, batched), (per_example_eval, _, per_example) = (runs["batched"],
                                                                    runs["per_example"])
  assert batched["blessed"] is False and per_example["blessed"] is False
  # TFMA's per-example accuracy is a float32 Keras metric; the batched one counts exactly.
  assert _rounded(batched) == _rounded(per_example)
  assert batched["measured"][gate.PRODUCTION_PAIRED_COUNTS] == per_example["measured"][
      gate.PRODUCTION_PAIRED_COUNTS]
  assert _check(batched, gate.PRODUCTION_DROP)["n"] == 360
  assert (executor.read_paired_outcomes(batched_eval.uri)
          == executor.read_paired_outcomes(per_example_eval.uri))
  batched_metrics = executor.read_overall_metrics(batched_eval.uri)
  per_example_metrics = executor.read_overall_metrics(per_example_eval.uri)
  for model in (spec.CANDIDATE_MODEL_NAME, spec.DENSE_MODEL_NAME, spec.PRODUCTION_MODEL_NAME):
    for metric in (executor.EXAMPLE_COUNT_METRIC, executor.ACCURACY_METRIC):
      assert batched_metrics[model][metric] == pytest.approx(
          per_example_metrics[model][metric], abs=1e-6), (model, metric)
    result = tfma.load_eval_result(batched_eval.uri, model_name=model)
    assert result.slicing_metrics[0][1][""][""][executor.EXAMPLE_COUNT_METRIC][
        "doubleValue"] == 360


@pytest.mark.parametrize("latency_ratio, blessed", [(0.4, True), (None, False)])
def test_latency_ratio_is_gated_from_the_candidate_property(tmp_path, small_dense_model,
                                                            digits_examples, latency_ratio,
                                                            blessed):
  model = _tflite_artifact(str(tmp_path / "latency_candidate"),
                           _convert(small_dense_model, "dynamic"), 24)
  if latency_ratio is not None:
    model.set_float_custom_property(converter_spec.LATENCY_RATIO_PROPERTY, latency_ratio)
  _, blessing, verdict = _run(tmp_path, model, small_dense_model, digits_examples,
                              **{spec.MAX_LATENCY_RATIO_KEY: 0.5})
  assert verdict["blessed"] is blessed, verdict["summary"]
  if blessed:
    assert _check(verdict, gate.LATENCY_RATIO)["measured"] == 0.4
    assert blessing.get_float_custom_property(spec.LATENCY_RATIO_PROPERTY) == 0.4
  else:
    assert verdict["reasons"] == [
        "metric latency_ratio could not be computed (needed by latency_ratio)"]
    assert not blessing.has_custom_property(spec.LATENCY_RATIO_PROPERTY)


def test_dense_model_not_blessed_upstream_blocks_the_candidate(tmp_path, candidate,
                                                              small_dense_model, digits_examples):
  upstream = standard_artifacts.ModelBlessing()   # as TFX's Evaluator writes a refusal
  upstream.uri = str(tmp_path / "dense_blessing")
  blessing_lib.write_blessing(upstream, False, small_dense_model, {})
  _, blessing, verdict = _run(tmp_path, candidate, small_dense_model, digits_examples,
                              dense_blessing=upstream)
  assert not blessing_lib.is_blessed(blessing)
  assert verdict["reasons"] == ["dense model NOT blessed by its Evaluator"]
  assert _check(verdict, gate.ACCURACY_DROP)["passed"] is True


def test_failed_evaluation_is_not_blessed_with_the_reason(tmp_path, small_dense_model,
                                                          digits_examples):
  broken = _tflite_artifact(str(tmp_path / "broken"), b"not a flatbuffer" * 64, 25)
  _, blessing, verdict = _run(tmp_path, broken, small_dense_model, digits_examples)
  assert not blessing_lib.is_blessed(blessing)
  assert os.path.exists(os.path.join(blessing.uri, blessing_lib.NOT_BLESSED_FILE))
  assert verdict["reasons"][0].startswith("evaluation failed: ")
  assert any("metric candidate_accuracy could not be computed" in r for r in verdict["reasons"])
  assert blessing.get_int_custom_property(blessing_lib.CURRENT_MODEL_ID_KEY) == broken.id


def test_missing_candidate_tflite_raises_naming_the_input(tmp_path, small_dense_model,
                                                          digits_examples):
  with pytest.raises(model_io.ModelError, match=r"^model: no TFLite model at .*tflite"):
    _run(tmp_path, small_dense_model, small_dense_model, digits_examples)


def test_a_dense_model_as_production_is_refused_naming_the_typed_lookup(
    tmp_path, candidate, small_dense_model, digits_examples):
  # What a production lookup answered by TFX Evaluator's blessing would hand the gate.
  with pytest.raises(model_io.ModelError, match=r"^baseline_model: the production model .* is "
                     r"no TFLite model .*production_resolver\(\).*KubeflowV2DagRunner"):
    _run(tmp_path, candidate, small_dense_model, digits_examples, production=small_dense_model)


def test_missing_split_raises_naming_it(tmp_path, candidate, small_dense_model, digits_examples):
  with pytest.raises(examples_lib.DataError, match="split 'validation'"):
    _run(tmp_path, candidate, small_dense_model, digits_examples,
         **{spec.EVAL_SPLIT_KEY: "validation"})


def _with_roles(model, uses):
  """A copy of the `model` artifact whose data_roles property records `uses`."""
  copy = standard_artifacts.Model()
  copy.mlmd_artifact.CopyFrom(model.mlmd_artifact)
  copy.set_string_custom_property(roles.DATA_ROLES_PROPERTY, roles.encode(uses))
  return copy


# TFLiteConverter told to check agreement on the gate's split, in a template project (train and
# eval only).
_CONVERTER_DEFAULT_USES = roles.converter_uses(
    converter_settings.TFLiteConverterSettings(agreement_split="eval"))


def test_a_split_that_shaped_the_candidate_is_refused_before_any_work(tmp_path, small_dense_model,
                                                                     digits_examples):
  # No TFLite file at all: the roles are checked first, from the artifacts' properties.
  nothing = _with_roles(small_dense_model, _CONVERTER_DEFAULT_USES)
  nothing.uri = str(tmp_path / "not_converted")
  with pytest.raises(roles.DataRoleError) as error:
    _run(tmp_path, nothing, small_dense_model, digits_examples)
  message = str(error.value)
  assert message.startswith("eval_split: the gate would judge on split 'eval', which shaped the "
                            "model it judges: TFLiteConverter passes or fails the conversion on "
                            "it (agreement_split='eval')")
  assert roles.SELECTION_SPLIT_SNIPPET in message  # the examples have train and eval only
  assert not os.path.exists(tmp_path / "blessing")
  # A dense model trained on the gate's split is refused the same way.
  trained_on_eval = _with_roles(small_dense_model, [
      roles.Use("eval", roles.FIT, "Trainer", "train_args", "trains on it")])
  with pytest.raises(roles.DataRoleError, match="Trainer trains on it"):
    _run(tmp_path, nothing, trained_on_eval, digits_examples)


def test_shared_splits_accepted_explicitly_are_recorded_in_the_verdict(
    tmp_path, candidate, small_dense_model, digits_examples, caplog):
  shared = _with_roles(candidate, _CONVERTER_DEFAULT_USES)
  _, blessing, verdict = _run(tmp_path, shared, small_dense_model, digits_examples,
                              allow_shared_splits=1)
  record = {"split": "eval", roles.ALLOW_SHARED_SPLITS: True,
            "uses": ["TFLiteConverter passes or fails the conversion on it "
                     "(agreement_split='eval')"]}
  assert verdict[roles.SHARED_SPLITS_KEY] == record
  assert json.loads(blessing.get_string_custom_property(roles.SHARED_SPLITS_KEY)) == record
  assert "judging on split 'eval', which shaped the candidate" in caplog.text
  # Uses of other splits do not concern the gate.
  elsewhere = _with_roles(candidate, roles.converter_uses(
      converter_settings.TFLiteConverterSettings(agreement_split="selection")))
  _, blessing, verdict = _run(tmp_path / "elsewhere", elsewhere, small_dense_model,
                              digits_examples)
  assert roles.SHARED_SPLITS_KEY not in verdict
  assert not blessing.has_custom_property(roles.SHARED_SPLITS_KEY)


def _channels():
  return dict(model=types.Channel(type=standard_artifacts.Model),
              dense_model=types.Channel(type=standard_artifacts.Model),
              examples=types.Channel(type=standard_artifacts.Examples))


def test_component_declares_the_gate():
  evaluator = component.CompressionEvaluator(
      **_channels(), baseline_model=types.Channel(type=standard_artifacts.Model),
      sparsity_blessing=types.Channel(type=blessing_lib.SparsityBlessing),
      dense_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
      min_compression_ratio=4, max_relative_accuracy_drop=0.02)
  evaluator.with_beam_pipeline_args(["--direct_num_workers=2"])
  assert evaluator.exec_properties[spec.MIN_COMPRESSION_RATIO_KEY] == 4.0
  assert evaluator.exec_properties[spec.MAX_RELATIVE_ACCURACY_DROP_KEY] == 0.02
  assert evaluator.exec_properties[spec.MAX_LATENCY_RATIO_KEY] == 0.0
  assert evaluator.executor_spec.beam_pipeline_args == ["--direct_num_workers=2"]
  assert evaluator.outputs[spec.BLESSING_KEY].type is blessing_lib.CompressionBlessing
  assert issubclass(blessing_lib.CompressionBlessing, standard_artifacts.ModelBlessing)
  assert blessing_lib.CompressionBlessing.TYPE_NAME != standard_artifacts.ModelBlessing.TYPE_NAME
  # Its JSON form (tfx.types.Artifact.to_json_dict) names its class; that name loads it back.
  blessing = blessing_lib.CompressionBlessing()
  blessing.uri = "/tmp/blessing"
  loaded = artifact_lib.Artifact.from_json_dict(blessing.to_json_dict())
  assert type(loaded) is blessing_lib.CompressionBlessing and loaded.uri == "/tmp/blessing"
  # The stock Pusher takes the gate's blessing channel (TFX checks the channel's type).
  pusher = tfx_v1.components.Pusher(
      model=_channels()["model"], model_blessing=evaluator.outputs[spec.BLESSING_KEY],
      push_destination=tfx_v1.proto.PushDestination(
          filesystem=tfx_v1.proto.PushDestination.Filesystem(base_directory="/tmp/serving")))
  assert pusher.inputs["model_blessing"].type is blessing_lib.CompressionBlessing
  assert evaluator.outputs[spec.EVALUATION_KEY].type == standard_artifacts.ModelEvaluation
  assert evaluator.exec_properties[spec.ACCURACY_DECISION_KEY] == gate.CONFIDENT
  assert evaluator.exec_properties[spec.MIN_ACCURACY_KEY] == 0.0
  assert set(evaluator.inputs) == {spec.MODEL_KEY, spec.DENSE_MODEL_KEY, spec.EXAMPLES_KEY,
                                   spec.BASELINE_MODEL_KEY, spec.SPARSITY_BLESSING_KEY,
                                   spec.DENSE_BLESSING_KEY}


@pytest.mark.parametrize("kwargs, message", [
    ({"min_compression_ratio": 1.0}, "min_compression_ratio must be > 1, got 1.0"),
    ({"max_accuracy_drop": 2.0}, r"max_accuracy_drop must be in \[0, 1\], got 2.0"),
    ({"max_relative_accuracy_drop": -0.5}, "max_relative_accuracy_drop must be in"),
    ({"label_key": ""}, "label_key must be a non-empty string .*, got ''"),
    ({"eval_split": ""}, "eval_split must be a non-empty string .*, got ''"),
    ({"max_latency_ratio": -1.0}, r"max_latency_ratio must be >= 0 \(0 turns it off\), got -1.0"),
    ({"accuracy_decision": "mean"},
     r"accuracy_decision must be one of \['point', 'confident'\], got 'mean'"),
    ({"min_accuracy": 2.0}, r"min_accuracy must be in \[0, 1\]"),
])
def test_component_rejects_bad_parameters(kwargs, message):
  with pytest.raises(ValueError, match=message):
    component.CompressionEvaluator(**_channels(), **kwargs)


def test_gate_predicts_with_xnnpack_where_stock_tfma_does_not(small_dense_model):
  """The gate's TFLite DoFn builds its interpreter with XNNPack (one DELEGATE node)."""
  from tensorflow_model_analysis.extractors import tflite_predict_extractor  # pylint: disable=g-import-not-at-top
  model_bytes = _convert(small_dense_model, "dynamic")
  resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
  ours = extractors.TFLitePredictionDoFn(tfma.EvalConfig(), {})._make_interpreter(  # pylint: disable=protected-access
      model_content=model_bytes, experimental_op_resolver_type=resolver)
  stock = tflite_predict_extractor.TFLitePredictionDoFn(tfma.EvalConfig(), {})._make_interpreter(  # pylint: disable=protected-access
      model_content=model_bytes, experimental_op_resolver_type=resolver)
  for interpreter in (ours, stock):
    interpreter.allocate_tensors()
  ops = lambda i: [op["op_name"] for op in i._get_ops_details()]  # pylint: disable=protected-access
  assert "DELEGATE" in ops(ours)
  assert "DELEGATE" not in ops(stock)


def test_whole_batch_inputs_predict_as_tfma_does(tmp_path, small_dense_model, digits_arrays):
  """The gate's DoFn with `whole_batch_inputs` gives TFMA's predictions, batch after batch of
  changing sizes, and takes TFMA's way for a feature that is not one numeric array."""
  from tensorflow_model_analysis import constants as tfma_constants  # pylint: disable=g-import-not-at-top
  artifact = _tflite_artifact(str(tmp_path / "int8"), _convert(small_dense_model, "dynamic"), 26)
  config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(model_type="tf_lite")])
  shared = {"": tfma.default_eval_shared_model(
      eval_saved_model_path=model_io.serving_dir(artifact.uri), eval_config=config)}
  whole, tfma_way = (extractors.TFLitePredictionDoFn(config, shared, whole_batch_inputs=flag)
                     for flag in (True, False))
  for do_fn in (whole, tfma_way):
    do_fn.setup()
  images, _ = digits_arrays
  assert extractors._whole_batch_inputs(whole, {"image": images[:3]}) is not None  # pylint: disable=protected-access
  start = 0
  for size in (37, 1, 200, 37):
    batch = {tfma_constants.FEATURES_KEY: {"image": images[start:start + size]}}
    start += size
    [ours] = whole._batch_reducible_process(batch)  # pylint: disable=protected-access
    [theirs] = tfma_way._batch_reducible_process(batch)  # pylint: disable=protected-access
    assert ours[tfma_constants.PREDICTIONS_KEY].shape == (size, 10)
    np.testing.assert_array_equal(ours[tfma_constants.PREDICTIONS_KEY],
                                  theirs[tfma_constants.PREDICTIONS_KEY])
  # A list of arrays per example (not one array): TFMA's way, the same predictions.
  listed = {tfma_constants.FEATURES_KEY: {"image": list(images[:5])}}
  assert extractors._whole_batch_inputs(whole, listed[tfma_constants.FEATURES_KEY]) is None  # pylint: disable=protected-access
  np.testing.assert_array_equal(
      whole._batch_reducible_process(listed)[0][tfma_constants.PREDICTIONS_KEY],  # pylint: disable=protected-access
      tfma_way._batch_reducible_process(listed)[0][tfma_constants.PREDICTIONS_KEY])  # pylint: disable=protected-access


@pytest.mark.parametrize("uses, eval_split, named", [
    # PruneTrainer allocating per-layer sparsity by sensitivity on the gate's split.
    (roles.prune_trainer_uses(prune_settings.PruneTrainerSettings(allocation="sensitivity")),
     "eval", "PruneTrainer allocates per-layer sparsity by each layer's sensitivity on it "
             "(eval_split='eval')"),
    # The gate judging on the split PruneTrainer fine-tuned on.
    (roles.prune_trainer_uses(prune_settings.PruneTrainerSettings()), "train",
     "PruneTrainer fine-tunes on it (train_split='train')"),
    # The converter passing its conversion on the gate's split.
    (roles.converter_uses(converter_settings.TFLiteConverterSettings(agreement_split="eval")),
     "eval", "TFLiteConverter passes or fails the conversion on it (agreement_split='eval')"),
])
def test_each_role_the_issue_names_is_refused_by_the_gate_from_the_artifacts(
    tmp_path, small_dense_model, digits_examples, uses, eval_split, named):
  """The three combinations, as the upstream components record them on the candidate: the
  gate refuses each before reading any file (the candidate has none)."""
  candidate = _with_roles(small_dense_model, uses)
  candidate.uri = str(tmp_path / "not_converted")
  with pytest.raises(roles.DataRoleError) as error:
    _run(tmp_path, candidate, small_dense_model, digits_examples,
         **{spec.EVAL_SPLIT_KEY: eval_split})
  assert str(error.value).startswith(f"eval_split: the gate would judge on split '{eval_split}'")
  assert named in str(error.value)
  assert not os.path.exists(tmp_path / "blessing")
