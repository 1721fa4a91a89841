"""CompressionEvaluator: the gate the stock Pusher obeys for compressed (TFLite) models."""
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec

from tfx_bonsai.components.common import params
from tfx_bonsai.components.compression_evaluator import executor
from tfx_bonsai.components.compression_evaluator import settings
from tfx_bonsai.components.compression_evaluator import spec

_DEFAULTS = settings.CompressionEvaluatorSettings


class CompressionEvaluator(base_beam_component.BaseBeamComponent):
  """Measures the candidate TFLite model against the dense model (and the one in
  production) with TFMA on Beam, and blesses it only when it is small and accurate enough.

  Outputs `evaluation` (ModelEvaluation; `tfma.load_eval_result(uri, model_name=...)`
  with model names "candidate", "dense", "production") and `blessing` (a CompressionBlessing:
  TFX's ModelBlessing under its own type, written as Evaluator writes it, with `verdict.json`
  (each accuracy drop with its paired 95% interval and the number of examples) and float
  properties `candidate_accuracy`, `dense_accuracy`, `compression_ratio`, and `latency_ratio`
  when the candidate has it).
  Beam options come from the pipeline or `.with_beam_pipeline_args()`.
  """
  SPEC_CLASS = spec.CompressionEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self,
               model: types.BaseChannel,
               dense_model: types.BaseChannel,
               examples: types.BaseChannel,
               baseline_model: Optional[types.BaseChannel] = None,
               sparsity_blessing: Optional[types.BaseChannel] = None,
               label_key: str = _DEFAULTS.label_key,
               max_accuracy_drop: float = _DEFAULTS.max_accuracy_drop,
               max_relative_accuracy_drop: float = _DEFAULTS.max_relative_accuracy_drop,
               min_compression_ratio: float = _DEFAULTS.min_compression_ratio,
               eval_split: str = _DEFAULTS.eval_split,
               max_latency_ratio: float = _DEFAULTS.max_latency_ratio,
               transform_graph: Optional[types.BaseChannel] = None,
               head: str = _DEFAULTS.head,
               metric: str = _DEFAULTS.metric,
               max_metric_increase: float = _DEFAULTS.max_metric_increase,
               model_fn: str = _DEFAULTS.model_fn,
               module_file: Optional[str] = None,
               accuracy_decision: str = _DEFAULTS.accuracy_decision,
               min_accuracy: float = _DEFAULTS.min_accuracy,
               max_class_drop: float = _DEFAULTS.max_class_drop,
               slicing_specs: Optional[List[Dict[str, Any]]] = None,
               dense_blessing: Optional[types.BaseChannel] = None,
               allow_shared_splits: bool = _DEFAULTS.allow_shared_splits):
    """Args:
      model: the candidate, a TFLiteConverter output (`Format-Serving/tflite`).
      dense_model: the Trainer's Model (Keras SavedModel taking serialized tf.Examples).
      examples: Examples with the `eval_split` split.
      baseline_model: the model in production (a blessed TFLiteConverter output, e.g.
        from a Resolver with LatestBlessedModelStrategy); optional.
      sparsity_blessing: SparsityValidator's SparsityBlessing; optional.
      label_key: the label feature (integer class ids).
      max_accuracy_drop: absolute accuracy the candidate may lose against the dense
        and the production model, in [0, 1].
      max_relative_accuracy_drop: fraction of the dense accuracy it may lose, in [0, 1);
        0 turns the check off.
      min_compression_ratio: dense float TFLite bytes / candidate gzipped bytes, > 1.
      eval_split: the split to evaluate on.
      max_latency_ratio: the candidate's batch-1, 1-thread latency / the dense float
        TFLite's (TFLiteConverter's `latency_ratio` property) may be at most this, >= 0;
        0 turns the check off.
      transform_graph: Transform's graph, when the TFLite models take transformed
        features: the gate applies it to the raw eval examples for them (the dense
        model's serving signature does its own). `label_key` may be a transformed feature.
      head: what the output means (HEADS; "auto" reads the dense model).
      metric: "" (accuracy; MAE for regression), "accuracy", "mae" or "rmse".
      max_metric_increase: for regression, how much MAE/RMSE may grow over the dense
        and the production model, >= 0.
      model_fn, module_file: the Trainer module's model-building function, when the dense
        model was exported with tf.saved_model.save (see PruneTrainer).
      accuracy_decision: `confident` (default): an accuracy drop passes only when the upper
        end of its paired 95% interval is within `max_accuracy_drop` (an error increase:
        `max_metric_increase`); `point`: when the point drop is.
      min_accuracy: the candidate's accuracy must be at least this, in [0, 1]; 0 is off.
      max_class_drop: refused when some class's paired accuracy drop is confidently over
        this (Holm across the classes), in [0, 1]; 0 is off (classifier heads).
      slicing_specs: TFMA SlicingSpecs as dicts (`feature_keys`, `feature_values`): slices
        checked against `max_class_drop` like the classes.
      dense_blessing: the dense model's ModelBlessing from a TFX Evaluator upstream;
        optional. When given, the candidate is blessed only if the dense model was.
      allow_shared_splits: judge on `eval_split` even when the candidate's or the dense
        model's `data_roles` property says it was fitted or selected on it (logged, and
        recorded in the verdict as `shared_splits`); default False: the gate refuses, naming
        the uses and how to add a `selection` split.
    The parameters are the fields of `settings.CompressionEvaluatorSettings` (types,
    defaults, rules); each scalar one but `eval_split` may be a
    `tfx.dsl.experimental.RuntimeParameter`, checked when the run starts.
    """
    chosen = params.component_settings(settings.CompressionEvaluatorSettings, locals())
    outputs = spec.CompressionEvaluatorSpec.OUTPUTS
    super().__init__(spec.CompressionEvaluatorSpec(
        model=model, dense_model=dense_model, examples=examples,
        baseline_model=baseline_model, sparsity_blessing=sparsity_blessing,
        transform_graph=transform_graph,
        dense_blessing=dense_blessing,
        evaluation=types.Channel(type=outputs[spec.EVALUATION_KEY].type),
        blessing=types.Channel(type=outputs[spec.BLESSING_KEY].type),
        **chosen.to_exec_properties()))
