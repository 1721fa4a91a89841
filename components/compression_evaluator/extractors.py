"""The gate's TFMA extractors: TFMA's defaults, with a prediction step that mixes model types.

TFMA 0.52's default extractors refuse to mix `tf_lite` with other model types, so the
prediction step chains TFMA's own TFLite and model-signature DoFns, one model at a time
(`_MixedPredictions`), and stores every model's predictions keyed by model name as TFMA's
multi-model extractors do. TFLite models are predicted with XNNPack on
(`TFLitePredictionDoFn`). Given an output path, a last step writes the paired outcomes
(`PAIRED_OUTCOMES_FILE`): how many examples had each pattern of (model right?) over the
models, from which the gate computes its paired drops. With `batched`, the extracts stay
one per record batch for the batched metric (`metrics.py`), which counts those patterns
itself.
"""
import collections
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

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
from tfx.utils import io_utils
from tfx_bsl.tfxio import tensor_adapter

from tfx_bonsai.components.common import heads

_PER_MODEL_PREDICTIONS = "_compression_evaluator_predictions"
# Beside TFMA's files in the evaluation: how many examples had each pattern of
# (model right?) over the models, for the gate's paired comparisons.
PAIRED_OUTCOMES_FILE = "paired_outcomes.json"


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

  def __init__(self, eval_config: config_pb2.EvalConfig,
               eval_shared_models: Dict[str, tfma.EvalSharedModel],
               whole_batch_inputs: bool = False):
    super().__init__(eval_config=eval_config, eval_shared_models=eval_shared_models)
    self._whole_batch_inputs = whole_batch_inputs

  def _make_interpreter(self, **kwargs) -> tf.lite.Interpreter:
    kwargs.pop("experimental_op_resolver_type", None)
    return tf.lite.Interpreter(num_threads=1, **kwargs)

  def _batch_reducible_process(self, element):
    """With `whole_batch_inputs`, each input is the batch's feature array reshaped at once;
    TFMA reshapes and checks for None example by example (about 45 us per example on a
    784-float image, more than a third of the int8 inference). Features that are not one
    numeric array per batch (missing, ragged) take TFMA's way."""
    if not self._whole_batch_inputs or len(self._eval_config.model_specs) != 1:
      return super()._batch_reducible_process(element)
    inputs = _whole_batch_inputs(self, element[tfma_constants.FEATURES_KEY])
    if inputs is None:
      return super()._batch_reducible_process(element)
    interpreter = self._interpreters[""]
    resized = False
    for detail, value in inputs:
      if tuple(value.shape) != tuple(detail["shape"]):
        interpreter.resize_tensor_input(detail["index"], value.shape)
        resized = True
    if resized or not getattr(self, "_allocated", False):
      interpreter.allocate_tensors()
      self._allocated = True
    for detail, value in inputs:
      params = detail["quantization_parameters"]
      interpreter.set_tensor(detail["index"], self._quantize(
          value, params["scales"], params["zero_points"], detail["dtype"]))
    interpreter.invoke()
    outputs = {}
    for detail in interpreter.get_output_details():
      params = detail["quantization_parameters"]
      outputs[detail["name"]] = self._post_process_result(self._dequantize(
          interpreter.get_tensor(detail["index"]), params["scales"], params["zero_points"]))
    result = dict(element)
    result[tfma_constants.PREDICTIONS_KEY] = (next(iter(outputs.values())) if len(outputs) == 1
                                              else outputs)
    return [result]

  def _quantize(self, tensor, scale, zero_point, dtype):
    # TFMA passes unquantized inputs through as they are: int64 features into int32 inputs.
    return np.asarray(super()._quantize(tensor, scale, zero_point, dtype)).astype(dtype)


def _whole_batch_inputs(do_fn: TFLitePredictionDoFn, features) -> Optional[List[Tuple]]:
  """[(input detail, the batch's array in the input's shape)], or None when a feature is
  missing or not one numeric array of the same batch size."""
  inputs, sizes = [], set()
  for detail in do_fn._interpreters[""].get_input_details():  # pylint: disable=protected-access
    value = features.get(do_fn._get_input_name_from_input_detail(detail))  # pylint: disable=protected-access
    if not isinstance(value, np.ndarray) or value.dtype == object or value.ndim == 0:
      return None
    shape = [value.shape[0], *detail["shape"][1:]]
    if int(np.prod(shape)) != value.size:
      return None
    inputs.append((detail, value.reshape(shape)))
    sizes.add(value.shape[0])
  return inputs if len(sizes) == 1 else None


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
                      eval_shared_models: Dict[str, tfma.EvalSharedModel],
                      whole_batch_inputs: bool = False):
  """Every model's predictions keyed by model name, as TFMA's multi-model extractors store them.
  With `whole_batch_inputs`, TFLite inputs are set from each batch's arrays at once."""
  for model_spec in eval_config.model_specs:
    name = model_spec.name
    single = {"": eval_shared_models[name]}
    if model_spec.model_type == tfma_constants.TF_LITE:
      do_fn = TFLitePredictionDoFn(
          eval_config=config_pb2.EvalConfig(model_specs=[model_spec]), eval_shared_models=single,
          whole_batch_inputs=whole_batch_inputs)
    else:
      do_fn = model_util.ModelSignaturesDoFn(
          model_specs=[model_spec], eval_shared_models=single,
          output_keypath=[tfma_constants.PREDICTIONS_KEY],
          signature_names={"": [model_spec.signature_name]}, prefer_dict_outputs=False)
    extracts = (extracts
                | f"Predict[{name}]" >> beam.ParDo(do_fn)
                | f"Stash[{name}]" >> beam.Map(_stash, name))
  return extracts | "CollectPredictions" >> beam.Map(_unstash)


def _label_of(extracts, model_name: str):
  labels = extracts[tfma_constants.LABELS_KEY]
  return labels[model_name] if isinstance(labels, dict) else labels


def is_correct(prediction, label, head: str = heads.MULTICLASS) -> bool:
  """Is the head's decision the label? Top-1 of several class scores; one score is on the
  label's side of the head's threshold: 0.5 for a probability (binary), 0 for a logit
  (binary_logits). Regression heads have no right or wrong (HeadError)."""
  if head == heads.REGRESSION:
    raise heads.HeadError("paired outcomes need a classifier head; a 'regression' head is "
                          "compared by its error metric")
  scores = np.asarray(prediction, dtype=np.float64).reshape(-1)
  labels = np.asarray(label).reshape(-1)
  if labels.size != 1:
    raise ValueError(f"paired outcomes need one label per example, got {labels.size}")
  label = int(labels[0])
  if scores.size == 1:
    return int(scores[0] > (0.0 if head == heads.BINARY_LOGITS else 0.5)) == label
  return int(np.argmax(scores)) == label


def _outcome(extracts, model_names: Sequence[str], head: str = heads.MULTICLASS
             ) -> Tuple[int, Tuple[bool, ...]]:
  """(the example's class, each model right?)."""
  predictions = extracts[tfma_constants.PREDICTIONS_KEY]
  label = int(np.asarray(_label_of(extracts, model_names[0])).reshape(-1)[0])
  return label, tuple(is_correct(predictions[name], _label_of(extracts, name), head)
                      for name in model_names)


def _write_outcomes(counts: List[Tuple[Tuple[int, Tuple[bool, ...]], int]],
                    model_names: Sequence[str], path: str) -> None:
  overall, classes = collections.Counter(), {}
  for (label, pattern), n in counts:
    pattern = tuple(int(x) for x in pattern)
    overall[pattern] += n
    classes.setdefault(str(label), collections.Counter())[pattern] += n
  data = {"models": list(model_names),
          "patterns": [[list(p), int(n)] for p, n in sorted(overall.items())],
          "classes": {label: [[list(p), int(n)] for p, n in sorted(c.items())]
                      for label, c in sorted(classes.items(), key=lambda item: int(item[0]))}}
  io_utils.write_string_file(path, json.dumps(data, indent=2))


@beam.ptransform_fn
def _WritePairedOutcomes(extracts, model_names: Sequence[str],  # pylint: disable=invalid-name
                         output_path: str, head: str = heads.MULTICLASS):
  """Passes `extracts` through; on the side, counts each (model right?) pattern to a file."""
  _ = (extracts
       | "Outcome" >> beam.Map(_outcome, list(model_names), head)
       | "CountPatterns" >> beam.combiners.Count.PerElement()
       | "ToList" >> beam.combiners.ToList()
       | "Write" >> beam.Map(_write_outcomes, list(model_names),
                             os.path.join(output_path, PAIRED_OUTCOMES_FILE)))
  return extracts


def make_extractors(eval_config: config_pb2.EvalConfig,
                    eval_shared_models: Dict[str, tfma.EvalSharedModel],
                    tensor_adapter_config: tensor_adapter.TensorAdapterConfig,
                    transform_uri: Optional[str] = None, output_path: Optional[str] = None,
                    head: str = heads.MULTICLASS, batched: bool = False):
  """TFMA's default extractors for TFLite models, with the mixed-model prediction step.

  With `transform_uri` (a TransformGraph), transformed features join the raw ones first.
  With `output_path`, a last step writes the paired outcomes file there, each model right
  or wrong as `head` decides (a classifier head). With `batched`, TFLite inputs are set from
  each batch's arrays at once, and the extracts stay one per
  record batch (no UnbatchExtractor, no per-example outcome step) for batched metrics
  (`metrics.PairedAccuracy`, which also counts the paired outcomes): `output_path` is then
  not used, and the slicing must be overall only.
  """
  if batched:
    slicing = [s for s in eval_config.slicing_specs if s != config_pb2.SlicingSpec()]
    if slicing or eval_config.cross_slicing_specs:
      raise ValueError("batched extracts are sliced overall only; the EvalConfig has slicing "
                       f"specs {[str(s).strip() for s in slicing]}")
  transform = [] if not transform_uri else [tfma_extractor.Extractor(
      stage_name="TransformFeatures",
      ptransform=beam.ParDo(TransformFeaturesDoFn(transform_uri)))]
  paired = []
  if output_path is not None and not batched:
    paired = [tfma_extractor.Extractor(
        stage_name="WritePairedOutcomes",
        ptransform=_WritePairedOutcomes(  # pylint: disable=no-value-for-parameter
            model_names=[m.name for m in eval_config.model_specs], output_path=output_path,
            head=head))]
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
              eval_config=eval_config, eval_shared_models=eval_shared_models,
              whole_batch_inputs=batched)),
      *([] if batched else [unbatch_extractor.UnbatchExtractor()]),
      slice_key_extractor.SliceKeyExtractor(eval_config=eval_config, materialize=not batched),
  ] + paired
