"""CompressionEvaluator's executor: measures the models with TFMA on Beam, sizes them,
calls `gate.decide` and writes the blessing as TFX's Evaluator does.

All models are evaluated in one TFMA run (one EvalConfig, one ModelEvaluation): the
candidate and production TFLite models (`tf_lite`) and the dense Keras SavedModel
(`tf_keras`, fed serialized tf.Examples). TFMA 0.52's default extractors refuse to
mix tf_lite with other model types, so the prediction step chains TFMA's own
TFLite and model-signature DoFns, one model at a time (`_MixedPredictions`).

A failing evaluation does not fail the component: the blessing is written
NOT_BLESSED with the reason "evaluation failed: ...", so the stock Pusher runs and
records that nothing was pushed. Missing or unusable inputs (no TFLite file, a
dense model that is not Keras) raise, naming the input.
"""
import dataclasses
import time
from typing import Any, Dict, List, Optional

from absl import logging
import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants as tfma_constants
from tensorflow_model_analysis.extractors import example_weights_extractor
from tensorflow_model_analysis.extractors import extractor as tfma_extractor
from tensorflow_model_analysis.extractors import features_extractor
from tensorflow_model_analysis.extractors import labels_extractor
from tensorflow_model_analysis.extractors import predictions_extractor
from tensorflow_model_analysis.extractors import slice_key_extractor
from tensorflow_model_analysis.extractors import tflite_predict_extractor
from tensorflow_model_analysis.extractors import unbatch_extractor
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import model_util
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx_bsl.tfxio import tensor_adapter

from tfx_bonsai.components.common import blessing as blessing_lib
from tfx_bonsai.components.common import examples as examples_lib
from tfx_bonsai.components.common import heads
from tfx_bonsai.components.common import model_io
from tfx_bonsai.components.compression_evaluator import gate
from tfx_bonsai.components.compression_evaluator import spec
from tfx_bonsai.components.tflite_converter import conversion
from tfx_bonsai.components.tflite_converter import spec as converter_spec

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
_PER_MODEL_PREDICTIONS = "_compression_evaluator_predictions"


def config_from_properties(exec_properties: Dict[str, Any]) -> gate.GateConfig:
  return gate.GateConfig(
      max_accuracy_drop=float(exec_properties[spec.MAX_ACCURACY_DROP_KEY]),
      max_relative_accuracy_drop=float(
          exec_properties.get(spec.MAX_RELATIVE_ACCURACY_DROP_KEY) or 0.0),
      min_compression_ratio=float(exec_properties[spec.MIN_COMPRESSION_RATIO_KEY]),
      max_latency_ratio=float(exec_properties.get(spec.MAX_LATENCY_RATIO_KEY) or 0.0),
      metric=_gate_metric(exec_properties.get(spec.HEAD_KEY) or heads.AUTO,
                          exec_properties.get(spec.METRIC_KEY) or ""),
      max_metric_increase=float(exec_properties.get(spec.MAX_METRIC_INCREASE_KEY) or 0.0),
  ).validate()


def _gate_metric(head: str, metric: str) -> str:
  """The gate's metric before the head is resolved: an explicit one, MAE for regression."""
  heads.validate(head, metric)
  return metric or (heads.MAE if head == heads.REGRESSION else heads.ACCURACY)


def tfma_metric(head: str, metric: str = ""):
  """(class name, config, result key) of the TFMA metric scoring a resolved `head`."""
  return _TFMA_METRICS[heads.metric_for(head, metric) if head == heads.REGRESSION else head]


def make_eval_config(label_key: str, with_production: bool, head: str = heads.MULTICLASS,
                     metric: str = "",
                     dense_type: str = tfma_constants.TF_KERAS) -> config_pb2.EvalConfig:
  """Candidate and production as `tf_lite`, dense as `dense_type` (`tf_keras`, or `tf_generic`
  for a tf.saved_model.save export) through its serving signature; the head's metric overall."""
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
  config = config_pb2.EvalConfig(
      model_specs=specs,
      metrics_specs=[config_pb2.MetricsSpec(
          model_names=names,
          metrics=[config_pb2.MetricConfig(class_name="ExampleCount"),
                   config_pb2.MetricConfig(class_name=tfma_metric(head, metric)[0],
                                           config=tfma_metric(head, metric)[1])])],
      slicing_specs=[config_pb2.SlicingSpec()])
  config.options.include_default_metrics.value = False
  return config


def _stash(extracts, model_name: str):
  """Moves this model's predictions aside so the next model's DoFn can write its own."""
  result = dict(extracts)
  per_model = dict(result.get(_PER_MODEL_PREDICTIONS) or {})
  per_model[model_name] = result.pop(tfma_constants.PREDICTIONS_KEY)
  result[_PER_MODEL_PREDICTIONS] = per_model
  return result


def _unstash(extracts):
  """Predictions keyed by model name; a single model's unkeyed, as TFMA expects them."""
  result = dict(extracts)
  per_model = result.pop(_PER_MODEL_PREDICTIONS)
  result[tfma_constants.PREDICTIONS_KEY] = (next(iter(per_model.values()))
                                            if len(per_model) == 1 else per_model)
  return result


class TFLitePredictionDoFn(tflite_predict_extractor.TFLitePredictionDoFn):
  """TFMA's TFLite prediction DoFn with TFLite's default delegates (XNNPack) on, one thread.

  TFMA 0.52 builds its interpreters with BUILTIN_WITHOUT_DEFAULT_DELEGATES (a TODO for
  b/207600661), i.e. without XNNPack: about 3x slower per example on the seed's int8 CNN,
  and not what a deployed model runs with. TFLiteConverter has already proven the
  candidate prepares and agrees under XNNPack. Beam's workers give the parallelism, so
  each interpreter uses one thread. Batches run as TFMA runs them: one invoke per batch.
  """

  def _make_interpreter(self, **kwargs) -> tf.lite.Interpreter:
    kwargs.pop("experimental_op_resolver_type", None)
    return tf.lite.Interpreter(num_threads=1, **kwargs)

  def _quantize(self, tensor, scale, zero_point, dtype):
    # TFMA passes unquantized inputs through as they are: int64 features into int32 inputs.
    return np.asarray(super()._quantize(tensor, scale, zero_point, dtype)).astype(dtype)


class TransformFeaturesDoFn(beam.DoFn):
  """Adds tf.Transform's transformed features of each batch's raw examples to its features.

  The TFLite models take transformed features (the model part of a Transform pipeline);
  the dense model's serving signature transforms raw examples itself. Transformed names
  (e.g. `fare_xf`, and a transformed label) sit beside the raw ones.
  """

  def __init__(self, transform_uri: str):
    self._uri = transform_uri
    self._layer = self._spec = None

  def setup(self):
    import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
    output = tft.TFTransformOutput(self._uri)
    self._spec = output.raw_feature_spec()
    self._layer = output.transform_features_layer()

  def process(self, extracts):
    serialized = tf.constant(list(extracts[tfma_constants.INPUT_KEY]))
    transformed = self._layer(tf.io.parse_example(serialized, self._spec))
    features = dict(extracts[tfma_constants.FEATURES_KEY])
    for name, value in transformed.items():
      if isinstance(value, tf.SparseTensor):
        value = tf.sparse.to_dense(value)
      features[name] = value.numpy()
    result = dict(extracts)
    result[tfma_constants.FEATURES_KEY] = features
    yield result


@beam.ptransform_fn
def _MixedPredictions(extracts, eval_config: config_pb2.EvalConfig,  # pylint: disable=invalid-name
                      eval_shared_models: Dict[str, tfma.EvalSharedModel]):
  """Every model's predictions keyed by model name, as TFMA's multi-model extractors store them."""
  for model_spec in eval_config.model_specs:
    name = model_spec.name
    single = {"": eval_shared_models[name]}
    if model_spec.model_type == tfma_constants.TF_LITE:
      do_fn = TFLitePredictionDoFn(
          eval_config=config_pb2.EvalConfig(model_specs=[model_spec]), eval_shared_models=single)
    else:
      do_fn = model_util.ModelSignaturesDoFn(
          model_specs=[model_spec], eval_shared_models=single,
          output_keypath=[tfma_constants.PREDICTIONS_KEY],
          signature_names={"": [model_spec.signature_name]}, prefer_dict_outputs=False)
    extracts = (extracts
                | f"Predict[{name}]" >> beam.ParDo(do_fn)
                | f"Stash[{name}]" >> beam.Map(_stash, name))
  return extracts | "CollectPredictions" >> beam.Map(_unstash)


def make_extractors(eval_config: config_pb2.EvalConfig,
                    eval_shared_models: Dict[str, tfma.EvalSharedModel],
                    tensor_adapter_config: tensor_adapter.TensorAdapterConfig,
                    transform_uri: Optional[str] = None):
  """TFMA's default extractors for TFLite models, with the mixed-model prediction step.

  With `transform_uri` (a TransformGraph), transformed features join the raw ones first.
  """
  transform = [] if not transform_uri else [tfma_extractor.Extractor(
      stage_name="TransformFeatures",
      ptransform=beam.ParDo(TransformFeaturesDoFn(transform_uri)))]
  return [
      features_extractor.FeaturesExtractor(
          eval_config=eval_config,
          tensor_representations=tensor_adapter_config.tensor_representations),
      *transform,
      labels_extractor.LabelsExtractor(eval_config=eval_config),
      example_weights_extractor.ExampleWeightsExtractor(eval_config=eval_config),
      tfma_extractor.Extractor(
          stage_name=predictions_extractor.PREDICTIONS_EXTRACTOR_STAGE_NAME,
          ptransform=_MixedPredictions(  # pylint: disable=no-value-for-parameter
              eval_config=eval_config, eval_shared_models=eval_shared_models)),
      unbatch_extractor.UnbatchExtractor(),
      slice_key_extractor.SliceKeyExtractor(eval_config=eval_config),
  ]


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


class Executor(base_beam_executor.BaseBeamExecutor):
  """Evaluates candidate, dense and production models with TFMA and gates the candidate."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_from_properties(exec_properties)
    label_key = exec_properties[spec.LABEL_KEY]
    eval_split = exec_properties[spec.EVAL_SPLIT_KEY]
    candidate = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    dense = artifact_utils.get_single_instance(input_dict[spec.DENSE_MODEL_KEY])
    production = _optional(input_dict, spec.BASELINE_MODEL_KEY)
    sparsity_blessing = _optional(input_dict, spec.SPARSITY_BLESSING_KEY)
    examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
    transform_graph = _optional(input_dict, spec.TRANSFORM_GRAPH_KEY)
    evaluation = artifact_utils.get_single_instance(output_dict[spec.EVALUATION_KEY])
    blessing = artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY])

    candidate_bytes = model_io.read_tflite(candidate.uri, spec.MODEL_KEY)
    schema = examples_lib.infer_schema(examples, eval_split)  # names a missing split
    examples_lib.check_label(schema if transform_graph is None else
                             examples_lib.load_transformed_schema(transform_graph), label_key)
    if production is not None:
      model_io.read_tflite(production.uri, spec.BASELINE_MODEL_KEY)
    dense_keras = model_io.load_trainer_model(
        dense.uri, exec_properties.get(spec.MODEL_FN_KEY) or "",
        exec_properties.get(spec.MODULE_FILE_KEY), compile=False)
    head = heads.resolve(exec_properties.get(spec.HEAD_KEY) or heads.AUTO, dense_keras,
                         exec_properties.get(spec.METRIC_KEY) or "")
    if head == heads.REGRESSION and config.metric == heads.ACCURACY:
      config = dataclasses.replace(config, metric=heads.MAE)
    if head != heads.REGRESSION and config.metric != heads.ACCURACY:
      raise heads.HeadError(f"metric {config.metric!r} needs head 'regression'; the dense "
                            f"model's head is {head!r}")
    result_key = tfma_metric(head, config.metric)[2]
    keys = ((gate.CANDIDATE_ERROR, gate.DENSE_ERROR, gate.PRODUCTION_ERROR)
            if head == heads.REGRESSION else
            (gate.CANDIDATE_ACCURACY, gate.DENSE_ACCURACY, gate.PRODUCTION_ACCURACY))
    dense_tflite = conversion.convert(dense_keras, conversion.ConversionConfig(quantization="none"))
    measured: Dict[str, Any] = {
        gate.CANDIDATE_BYTES: len(candidate_bytes),
        gate.CANDIDATE_GZIP_BYTES: conversion.gzip_size(candidate_bytes),
        gate.DENSE_TFLITE_BYTES: len(dense_tflite),
        keys[0]: None,
        keys[1]: None,
    }
    if production is not None:
      measured[keys[2]] = None
    if sparsity_blessing is not None:
      measured[gate.SPARSITY_PASSED] = blessing_lib.is_blessed(sparsity_blessing)
    if candidate.has_custom_property(converter_spec.LATENCY_RATIO_PROPERTY):
      measured[gate.LATENCY_RATIO] = candidate.get_float_custom_property(
          converter_spec.LATENCY_RATIO_PROPERTY)

    errors = []
    try:
      metrics = self._evaluate(candidate, dense, production, examples, eval_split, schema,
                               label_key, evaluation.uri, head, config.metric,
                               transform_graph.uri if transform_graph else None)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("CompressionEvaluator: TFMA evaluation failed")
      errors.append(f"evaluation failed: {type(e).__name__}: {' '.join(str(e).split())[:500]}")
      metrics = {}
    for name, key in zip((spec.CANDIDATE_MODEL_NAME, spec.DENSE_MODEL_NAME,
                          spec.PRODUCTION_MODEL_NAME), keys):
      if key in measured:
        measured[key] = metrics.get(name, {}).get(result_key)

    verdict = gate.decide(measured, config, errors)
    blessing_lib.write_blessing(blessing, verdict.blessed, candidate, verdict.to_dict())
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
    logging.info("CompressionEvaluator: %s", verdict.summary_line())

  def _evaluate(self, candidate, dense, production, examples, eval_split, schema, label_key,
                output_path, head=heads.MULTICLASS, metric="",
                transform_uri=None) -> Dict[str, Dict[str, float]]:
    """Runs TFMA over the eval split; returns the overall metrics per model name."""
    eval_config = make_eval_config(
        label_key, production is not None, head, metric,
        tfma_constants.TF_KERAS if model_io.has_keras_metadata(dense.uri)
        else tfma_constants.TF_GENERIC)
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
    with self._make_beam_pipeline() as pipeline:
      _ = (pipeline
           | "ReadExamples" >> tfxio.BeamSource()
           | "ExtractEvaluateAndWriteResults" >> tfma.ExtractEvaluateAndWriteResults(
               eval_shared_model=list(shared_models.values()),
               eval_config=eval_config,
               extractors=make_extractors(eval_config, shared_models, adapter_config,
                                          transform_uri),
               output_path=output_path,
               tensor_adapter_config=adapter_config))
    seconds = time.monotonic() - start
    metrics = read_overall_metrics(output_path)
    count = metrics.get(spec.CANDIDATE_MODEL_NAME, {}).get(EXAMPLE_COUNT_METRIC, 0.0)
    logging.info("CompressionEvaluator: TFMA evaluated %d examples x %d models in %.1f s "
                 "(%.0f examples/s); overall metrics %s", count, len(paths), seconds,
                 count / seconds, metrics)
    return metrics


def _optional(input_dict: Dict[str, List[types.Artifact]], key: str) -> Optional[types.Artifact]:
  artifacts = input_dict.get(key) or []
  if len(artifacts) > 1:
    raise ValueError(f"{key} takes at most one artifact, got {len(artifacts)}")
  return artifacts[0] if artifacts else None


def _ratio(verdict: gate.Verdict) -> Optional[float]:
  return next((c.measured for c in verdict.checks if c.name == gate.COMPRESSION_RATIO), None)
