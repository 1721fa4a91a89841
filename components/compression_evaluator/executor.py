"""CompressionEvaluator's executor: measures the models with TFMA on Beam, sizes them,
calls `gate.decide` and writes the blessing as TFX's Evaluator does.

All models are evaluated in one TFMA run (one EvalConfig, one ModelEvaluation): the
candidate and production TFLite models (`tf_lite`) and the dense Keras SavedModel
(`tf_keras`, or `tf_generic` for a tf.saved_model.save export, fed serialized
tf.Examples). TFMA 0.52's default extractors refuse to mix tf_lite with other model
types, so the prediction step chains TFMA's own TFLite and model-signature DoFns, one
model at a time (`extractors.py`). For classifier heads the extracts stay batched and one
batched metric (`metrics.PairedAccuracy`) gives every model's example count and accuracy and
the paired outcomes, written beside TFMA's files as `paired_outcomes.json`.

A failing evaluation does not fail the component: the blessing is written
NOT_BLESSED with the reason "evaluation failed: ...", so the stock Pusher runs and
records that nothing was pushed. Missing or unusable inputs (no TFLite file, a
dense model that is not Keras) raise, naming the input.
"""
import collections
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence

from absl import logging
import apache_beam as beam
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.proto import config_pb2
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx_bsl.tfxio import tensor_adapter

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.common import progress
from tfx_bonsai.components.common import roles
from tfx_bonsai.components.common import stats
from tfx_bonsai.components.common import tflite
from tfx_bonsai.components.compression_evaluator import extractors
from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.components.compression_evaluator import metrics as gate_metrics
from tfx_bonsai.components.compression_evaluator import settings
from tfx_bonsai.components.compression_evaluator import spec
from tfx_bonsai.components.compression_evaluator import validation

ACCURACY_METRIC = "sparse_categorical_accuracy"
# The TFMA metric (class name, config, key in the results) that scores each head.
_TFMA_METRICS = {
    heads.MULTICLASS: ("SparseCategoricalAccuracy", "", ACCURACY_METRIC),
    heads.MULTICLASS_LOGITS: ("SparseCategoricalAccuracy", "", ACCURACY_METRIC),
    heads.BINARY: ("BinaryAccuracy", '"threshold": 0.5', "binary_accuracy"),
    heads.BINARY_LOGITS: ("BinaryAccuracy", '"threshold": 0.0', "binary_accuracy"),
    heads.MAE: ("MeanAbsoluteError", "", "mean_absolute_error"),
    heads.RMSE: ("RootMeanSquaredError", "", "root_mean_squared_error"),
}
EXAMPLE_COUNT_METRIC = "example_count"
_TELEMETRY_DESCRIPTORS = ["CompressionEvaluator"]
# What compression_ratio divides: said in verdict.json beside the figures.
SIZE_BASIS_KEY = "compression_ratio_counts"
SIZE_BASIS = ("the candidate as shipped and pushed (its file with LiteRT metadata and label "
              "file, gzipped) against the dense float TFLite file without metadata")
_PROGRESS = "compression_evaluator"  # the evaluation's progress bar
# Beside TFMA's files in the evaluation, written by the extractors' last step.
PAIRED_OUTCOMES_FILE = extractors.PAIRED_OUTCOMES_FILE


def config_from_properties(
    exec_properties: Dict[str, Any]) -> settings.CompressionEvaluatorSettings:
  """The validated settings (a RuntimeParameter's resolved value is checked here)."""
  return settings.CompressionEvaluatorSettings.from_exec_properties(exec_properties)


def tfma_metric(head: str, metric: str = ""):
  """(class name, config, result key) of the TFMA metric scoring a resolved `head`."""
  return _TFMA_METRICS[heads.metric_for(head, metric) if head == heads.REGRESSION else head]


def make_eval_config(label_key: str, with_production: bool, head: str = heads.MULTICLASS,
                     metric: str = "", dense_type: str = tfma_constants.TF_KERAS,
                     batched: bool = False,
                     slicing_specs: Sequence[Dict[str, Any]] = ()) -> config_pb2.EvalConfig:
  """Candidate and production as `tf_lite`, dense as `dense_type` (`tf_keras`, or `tf_generic`
  for a tf.saved_model.save export) through its serving signature; the head's metric overall.

  With `batched`, one batched metric, `metrics.PairedAccuracy` (`metrics.PairedError` for a
  regression head), gives the example counts, the accuracies (errors) and the paired
  outcomes (error sums; per class and per slice of `slicing_specs`), over batched extracts
  (`extractors.make_extractors(..., batched=True)`); else TFMA's ExampleCount and the head's
  metric, per example.
  """
  names = [spec.CANDIDATE_MODEL_NAME, spec.DENSE_MODEL_NAME]
  specs = [
      config_pb2.ModelSpec(name=spec.CANDIDATE_MODEL_NAME, model_type=tfma_constants.TF_LITE,
                           label_key=label_key),
      config_pb2.ModelSpec(name=spec.DENSE_MODEL_NAME, model_type=dense_type,
                           signature_name="serving_default", label_key=label_key),
  ]
  if with_production:
    names.append(spec.PRODUCTION_MODEL_NAME)
    specs.append(config_pb2.ModelSpec(name=spec.PRODUCTION_MODEL_NAME,
                                      model_type=tfma_constants.TF_LITE, label_key=label_key))
  if batched and head == heads.REGRESSION:
    metric_configs = [config_pb2.MetricConfig(
        class_name=gate_metrics.PairedError.__name__, module=gate_metrics.__name__,
        config=json.dumps({"metric": heads.metric_for(head, metric)}))]
  elif batched:
    if head not in gate_metrics.ACCURACY_NAMES:
      raise heads.HeadError(f"batched evaluation needs a classifier or regression head, one of "
                            f"{sorted(gate_metrics.ACCURACY_NAMES) + [heads.REGRESSION]}; "
                            f"got {head!r}")
    metric_configs = [config_pb2.MetricConfig(
        class_name=gate_metrics.PairedAccuracy.__name__, module=gate_metrics.__name__,
        config=json.dumps({"head": head, **({"slicing_specs": list(slicing_specs)}
                                            if slicing_specs else {})}))]
  else:
    metric_configs = [config_pb2.MetricConfig(class_name="ExampleCount"),
                      config_pb2.MetricConfig(class_name=tfma_metric(head, metric)[0],
                                              config=tfma_metric(head, metric)[1])]
  config = config_pb2.EvalConfig(
      model_specs=specs,
      metrics_specs=[config_pb2.MetricsSpec(model_names=names, metrics=metric_configs)],
      slicing_specs=[config_pb2.SlicingSpec()])
  config.options.include_default_metrics.value = False
  return config


def check_data_roles(config: settings.CompressionEvaluatorSettings, examples: types.Artifact,
                     *models: types.Artifact) -> Optional[Dict[str, Any]]:
  """Refuses (DataRoleError) to judge on a split the models' `data_roles` say shaped them.

  With `allow_shared_splits` it logs the overlap and returns its record for the verdict;
  None when there is no overlap.
  """
  uses = []
  for model in models:
    if model.has_custom_property(roles.DATA_ROLES_PROPERTY):
      uses += roles.decode(model.get_string_custom_property(roles.DATA_ROLES_PROPERTY))
  shared = list(dict.fromkeys(roles.on_split(uses, config.eval_split)))
  if not shared:
    return None
  if not config.allow_shared_splits:
    splits = artifact_utils.decode_split_names(examples.split_names or "[]")
    raise roles.DataRoleError(roles.shared_split_message(config.eval_split, shared, splits))
  logging.warning("CompressionEvaluator: judging on split '%s', which shaped the candidate (%s); "
                  "accepted by allow_shared_splits=True", config.eval_split,
                  "; ".join(u.describe() for u in shared))
  return dict(roles.shared_record(config.eval_split, shared))


def paired_counts(outcomes: Dict[str, Any], baseline: str, candidate: str,
                  label: Optional[str] = None, slice_name: Optional[str] = None
                  ) -> stats.PairedCounts:
  """The 2x2 table of `baseline` against `candidate` from a paired_outcomes.json's content,
  over all examples, those of class `label` or those of a slice."""
  models = outcomes["models"]
  i, j = models.index(baseline), models.index(candidate)
  table = collections.Counter()
  patterns = (outcomes["classes"][label] if label is not None else
              outcomes["slices"][slice_name] if slice_name is not None else outcomes["patterns"])
  for pattern, n in patterns:
    table[(bool(pattern[i]), bool(pattern[j]))] += n
  return stats.PairedCounts(n=sum(table.values()), both=table[(True, True)],
                            baseline_only=table[(True, False)],
                            candidate_only=table[(False, True)])


def read_paired_outcomes(output_path: str) -> Optional[Dict[str, Any]]:
  path = os.path.join(output_path, PAIRED_OUTCOMES_FILE)
  if not tf.io.gfile.exists(path):
    return None
  return json.loads(io_utils.read_string_file(path))


def write_paired_outcomes(output_path: str,
                          metrics: Dict[str, Dict[str, float]]) -> Optional[Dict[str, Any]]:
  """Writes `PAIRED_OUTCOMES_FILE` from the batched metric's pattern counts in `metrics`
  (`read_overall_metrics`), as the per-example path writes it; returns its content (None
  when the evaluation has no patterns)."""
  for model_metrics in metrics.values():
    outcomes = gate_metrics.patterns_from_metrics(model_metrics)
    if outcomes is not None:
      io_utils.write_string_file(os.path.join(output_path, PAIRED_OUTCOMES_FILE),
                                 json.dumps(outcomes, indent=2))
      return outcomes
  return None


def read_overall_metrics(output_path: str) -> Dict[str, Dict[str, float]]:
  """{model name: {metric name: value}} of the overall slice of a TFMA evaluation."""
  metrics: Dict[str, Dict[str, float]] = {}
  for for_slice in tfma.load_metrics(output_path):
    if for_slice.slice_key.single_slice_keys:
      continue
    for entry in for_slice.metric_keys_and_values:
      if entry.key.is_diff or not entry.value.HasField("double_value"):
        continue
      metrics.setdefault(entry.key.model_name, {})[entry.key.name] = (
          entry.value.double_value.value)
  return metrics


class Executor(tfx_evaluator_executor.Executor):
  """Evaluates candidate, dense and production models with TFMA and gates the candidate.

  It derives from TFX's Evaluator executor (a BaseBeamExecutor) for one reason: on KFP v2 /
  Vertex, TFX's container entrypoint rewrites the blessing's integer `current_model_id` into
  the model's artifact name only for Evaluator executors, and the compiled
  LatestBlessedModelStrategy resolver finds the production model by that name. Without it the
  gate never sees the production model on Vertex. `Do` is entirely its own.

  Models are evaluated on batched extracts with one batched metric (`metrics.PairedAccuracy`,
  or `metrics.PairedError` for a regression head); `BATCHED = False` keeps TFMA's per-example
  path (the benchmark's "old way"; a regression head then has no paired errors).
  """
  BATCHED = True

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_from_properties(exec_properties)
    label_key, eval_split = config.label_key, config.eval_split
    candidate = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    dense = artifact_utils.get_single_instance(input_dict[spec.DENSE_MODEL_KEY])
    production = _optional(input_dict, spec.BASELINE_MODEL_KEY)
    sparsity_blessing = _optional(input_dict, spec.SPARSITY_BLESSING_KEY)
    dense_blessing = _optional(input_dict, spec.DENSE_BLESSING_KEY)
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    transform_graph = _optional(input_dict, spec.TRANSFORM_GRAPH_KEY)
    evaluation = artifact_utils.get_single_instance(output_dict[spec.EVALUATION_KEY])
    blessing = artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY])

    shared = check_data_roles(config, examples, candidate, dense)
    failure = tflite.conversion_failure(candidate)
    if failure is not None:  # no conversion mode agreed: refused before any evaluation
      verdict = gate.Verdict(blessed=False, checks=(), reasons=(f"conversion failed: {failure}",))
      blessing_lib.write_blessing(blessing, False, candidate, verdict.to_dict())
      validation.write_validation_result(evaluation.uri, verdict)
      logging.info("CompressionEvaluator: %s", verdict.summary_line())
      return
    candidate_bytes = model_io.read_tflite(candidate.uri, spec.MODEL_KEY)
    schema = examples_lib.infer_schema(examples, eval_split)  # names a missing split
    examples_lib.check_label(schema if transform_graph is None else
                             examples_lib.load_transformed_schema(transform_graph), label_key)
    if production is not None and not tf.io.gfile.exists(model_io.tflite_path(production.uri)):
      raise model_io.ModelError(
          f"{spec.BASELINE_MODEL_KEY}: the production model {production.uri} is no TFLite "
          "model (a dense model's blessing answered the production lookup?); resolve it with "
          "tfx_bonsai.pipeline.pipeline.production_resolver() (the gate's CompressionBlessing) "
          "and compile for Vertex / Kubeflow with tfx_bonsai.pipeline.runners.kubeflow."
          "KubeflowV2DagRunner, whose queries ask for that type")
    dense_keras = model_io.load_trainer_model(dense.uri, config.model_fn,
                                              config.module_file or None, compile=False)
    head = heads.resolve(config.head, dense_keras, config.metric)
    if head != heads.REGRESSION and config.metric not in ("", heads.ACCURACY):
      raise heads.HeadError(f"metric {config.metric!r} needs head 'regression'; the dense "
                            f"model's head is {head!r}")
    # The gate's metric: accuracy, or the regression head's error metric (MAE by default).
    config = config.replace(metric=heads.metric_for(head, config.metric))
    result_key = tfma_metric(head, config.metric)[2]
    keys = ((gate.CANDIDATE_ERROR, gate.DENSE_ERROR, gate.PRODUCTION_ERROR)
            if head == heads.REGRESSION else
            (gate.CANDIDATE_ACCURACY, gate.DENSE_ACCURACY, gate.PRODUCTION_ACCURACY))
    dense_tflite = tflite.dense_float(dense_keras)
    measured: Dict[str, Any] = {
        gate.CANDIDATE_BYTES: len(candidate_bytes),
        gate.CANDIDATE_GZIP_BYTES: tflite.gzip_size(candidate_bytes),
        gate.DENSE_TFLITE_BYTES: len(dense_tflite),
        keys[0]: None,
        keys[1]: None,
    }
    if production is not None:
      measured[keys[2]] = None
    if sparsity_blessing is not None:
      measured[gate.SPARSITY_PASSED] = blessing_lib.is_blessed(sparsity_blessing)
    if dense_blessing is not None:
      measured[gate.DENSE_BLESSED] = blessing_lib.is_blessed(dense_blessing)
    if candidate.has_custom_property(tflite.LATENCY_RATIO_PROPERTY):
      measured[gate.LATENCY_RATIO] = candidate.get_float_custom_property(
          tflite.LATENCY_RATIO_PROPERTY)

    errors = []
    try:
      metrics = self._evaluate(candidate, dense, production, examples, eval_split, schema,
                               label_key, evaluation.uri, head, config.metric,
                               transform_graph.uri if transform_graph else None,
                               config.slicing_specs)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("CompressionEvaluator: TFMA evaluation failed")
      errors.append(f"evaluation failed: {type(e).__name__}: {' '.join(str(e).split())[:500]}")
      metrics = {}
    for name, key in zip((spec.CANDIDATE_MODEL_NAME, spec.DENSE_MODEL_NAME,
                          spec.PRODUCTION_MODEL_NAME), keys):
      if key in measured:
        measured[key] = metrics.get(name, {}).get(result_key)
    # Paired outcomes (classifier heads): the accuracy decisions' counts, overall and per class.
    outcomes = None if errors else read_paired_outcomes(evaluation.uri)
    if outcomes is not None:
      for name, key in ((spec.DENSE_MODEL_NAME, gate.DENSE_PAIRED_COUNTS),
                        (spec.PRODUCTION_MODEL_NAME, gate.PRODUCTION_PAIRED_COUNTS)):
        if name in outcomes["models"]:
          measured[key] = paired_counts(outcomes, name, spec.CANDIDATE_MODEL_NAME).to_dict()
      measured[gate.DENSE_CLASS_PAIRED_COUNTS] = {
          label: paired_counts(outcomes, spec.DENSE_MODEL_NAME, spec.CANDIDATE_MODEL_NAME,
                               label).to_dict()
          for label in outcomes.get("classes", {})}
      if config.slicing_specs:
        measured[gate.DENSE_SLICE_PAIRED_COUNTS] = {
            name: paired_counts(outcomes, spec.DENSE_MODEL_NAME, spec.CANDIDATE_MODEL_NAME,
                                slice_name=name).to_dict()
            for name in outcomes.get("slices", {})}
    # Paired error sums (regression heads): the error increases' intervals.
    if head == heads.REGRESSION and not errors:
      for name, key in ((spec.DENSE_MODEL_NAME, gate.DENSE_PAIRED_ERRORS),
                        (spec.PRODUCTION_MODEL_NAME, gate.PRODUCTION_PAIRED_ERRORS)):
        paired = gate_metrics.paired_errors_from_metrics(
            metrics.get(spec.CANDIDATE_MODEL_NAME, {}), config.metric, name)
        if paired is not None:
          measured[key] = paired.to_dict()

    verdict = gate.decide(measured, config, errors)
    verdict_record = verdict.to_dict()
    verdict_record[SIZE_BASIS_KEY] = SIZE_BASIS
    if shared is not None:
      verdict_record[roles.SHARED_SPLITS_KEY] = shared
      blessing.set_string_custom_property(roles.SHARED_SPLITS_KEY, json.dumps(shared))
    blessing_lib.write_blessing(blessing, verdict.blessed, candidate, verdict_record)
    validation.write_validation_result(evaluation.uri, verdict)
    if production is not None:  # as TFX's Evaluator records its baseline
      blessing.set_string_custom_property(
          evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, production.uri)
      blessing.set_int_custom_property(
          evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, production.id)
    for key, value in ((spec.CANDIDATE_ACCURACY_PROPERTY, measured.get(gate.CANDIDATE_ACCURACY)),
                       (spec.DENSE_ACCURACY_PROPERTY, measured.get(gate.DENSE_ACCURACY)),
                       (spec.PRODUCTION_ACCURACY_PROPERTY,
                        measured.get(gate.PRODUCTION_ACCURACY)),
                       (spec.COMPRESSION_RATIO_PROPERTY, _ratio(verdict)),
                       (spec.LATENCY_RATIO_PROPERTY, measured.get(gate.LATENCY_RATIO)),
                       (spec.CANDIDATE_ERROR_PROPERTY, measured.get(gate.CANDIDATE_ERROR)),
                       (spec.DENSE_ERROR_PROPERTY, measured.get(gate.DENSE_ERROR)),
                       (spec.PRODUCTION_ERROR_PROPERTY, measured.get(gate.PRODUCTION_ERROR))):
      if value is not None:
        blessing.set_float_custom_property(key, float(value))
    self._write_report(blessing, verdict, config, candidate, sparsity_blessing)
    logging.info("CompressionEvaluator: %s", verdict.summary_line())

  def _write_report(self, blessing, verdict: gate.Verdict, config: gate.GateConfig, candidate,
                    sparsity_blessing) -> None:
    """`report.html` beside `verdict.json`: the run report from what the gate knows.

    KFP v2 / Vertex show HTML only for `system.HTML` artifacts, which TFX's v2 runner cannot
    produce (README, "The report on Vertex AI / Kubeflow"); the file is one click away from
    the blessing's URI instead.
    """
    try:
      from tfx_bonsai.components.common import report  # pylint: disable=g-import-not-at-top
    except ImportError as e:  # matplotlib: the [report] extra
      logging.warning("CompressionEvaluator: no report beside the blessing: %s", e)
      return
    props = {k: candidate.get_custom_property(k) for k in (
        tflite.TFLITE_BYTES_PROPERTY, tflite.TFLITE_GZIP_BYTES_PROPERTY,
        tflite.QUANTIZATION_PROPERTY, tflite.SPARSE_WEIGHTS_PROPERTY,
        tflite.AGREEMENT_PROPERTY, tflite.AGREEMENT_KIND_PROPERTY)
             if candidate.has_custom_property(k)}
    summary = {f"candidate_{k}": v for k, v in props.items()}
    summary.update(
        run_id=getattr(self._context, "pipeline_run_id", None) or os.path.basename(blessing.uri),
        blessed=verdict.blessed, verdict=verdict.to_dict(), compression_ratio=_ratio(verdict),
        max_accuracy_drop=config.max_accuracy_drop)
    if sparsity_blessing is not None:
      sparsity_report = blessing_lib.read_verdict(sparsity_blessing) or {}
      summary.update(sparsity_report={"report": sparsity_report},
                     global_sparsity=sparsity_report.get("global_sparsity"),
                     deployed_sparsity=sparsity_report.get("deployed_sparsity"))
    io_utils.write_string_file(os.path.join(blessing.uri, report.REPORT_FILE),
                               report.render(summary, report.charts(summary)))

  def _evaluate(self, candidate, dense, production, examples, eval_split, schema, label_key,
                output_path, head=heads.MULTICLASS, metric="",
                transform_uri=None, slicing_specs=()) -> Dict[str, Dict[str, float]]:
    """Runs TFMA over the eval split; returns the overall metrics per model name."""
    batched = self.BATCHED
    eval_config = make_eval_config(
        label_key, production is not None, head, metric,
        tfma_constants.TF_KERAS if model_io.has_keras_metadata(dense.uri)
        else tfma_constants.TF_GENERIC, batched=batched, slicing_specs=slicing_specs)
    paths = {spec.CANDIDATE_MODEL_NAME: model_io.serving_dir(candidate.uri),
             spec.DENSE_MODEL_NAME: model_io.serving_dir(dense.uri)}
    if production is not None:
      paths[spec.PRODUCTION_MODEL_NAME] = model_io.serving_dir(production.uri)
    shared_models = {
        name: tfma.default_eval_shared_model(eval_saved_model_path=path, model_name=name,
                                             eval_config=eval_config)
        for name, path in paths.items()}
    tfxio = tfxio_utils.get_tfxio_factory_from_artifact(
        examples=[examples], telemetry_descriptors=_TELEMETRY_DESCRIPTORS, schema=schema,
        raw_record_column_name=tfma_constants.ARROW_INPUT_COLUMN)(
            io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], eval_split)))
    adapter_config = tensor_adapter.TensorAdapterConfig(
        arrow_schema=tfxio.ArrowSchema(), tensor_representations=tfxio.TensorRepresentations())
    start = time.monotonic()
    # The bar outside: the pipeline runs as its `with` exits.
    with progress.bar(None, f"gate: {len(paths)} models", " examples", name=_PROGRESS), \
        self._make_beam_pipeline() as pipeline:
      _ = (pipeline
           | "ReadExamples" >> tfxio.BeamSource()
           | "Progress" >> beam.Map(_count)
           | "ExtractEvaluateAndWriteResults" >> tfma.ExtractEvaluateAndWriteResults(
               eval_shared_model=list(shared_models.values()),
               eval_config=eval_config,
               extractors=extractors.make_extractors(
                   eval_config, shared_models, adapter_config, transform_uri,
                   output_path=None if head == heads.REGRESSION else output_path, head=head,
                   batched=batched),
               output_path=output_path,
               tensor_adapter_config=adapter_config))
    seconds = time.monotonic() - start
    metrics = read_overall_metrics(output_path)
    if batched:
      write_paired_outcomes(output_path, metrics)
    count = metrics.get(spec.CANDIDATE_MODEL_NAME, {}).get(EXAMPLE_COUNT_METRIC, 0.0)
    logging.info("CompressionEvaluator: TFMA evaluated %d examples x %d models in %.1f s "
                 "(%.0f examples/s); overall metrics %s", count, len(paths), seconds,
                 count / seconds, metrics)
    return metrics


def _count(record_batch):
  progress.tick(_PROGRESS, record_batch.num_rows)
  return record_batch


def _optional(input_dict: Dict[str, List[types.Artifact]], key: str) -> Optional[types.Artifact]:
  artifacts = input_dict.get(key) or []
  if len(artifacts) > 1:
    raise ValueError(f"{key} takes at most one artifact, got {len(artifacts)}")
  return artifacts[0] if artifacts else None


def _ratio(verdict: gate.Verdict) -> Optional[float]:
  return next((c.measured for c in verdict.checks if c.name == gate.COMPRESSION_RATIO), None)
