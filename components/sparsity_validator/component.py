"""SparsityValidator: blesses a model only when its weights are as sparse as required."""
from typing import Mapping, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec

from tfx_bonsai.components.common import params
from tfx_bonsai.components.sparsity_validator import executor
from tfx_bonsai.components.sparsity_validator import settings
from tfx_bonsai.components.sparsity_validator import spec

_DEFAULTS = settings.SparsityValidatorSettings


class SparsityValidator(base_component.BaseComponent):
  """Measures the sparsity of `model` (a Keras SavedModel), and of its TFLite, and gates on it.

  Outputs `report` (ModelEvaluation: `sparsity.json` and `index.html`) and `blessing`
  (a SparsityBlessing: written like Evaluator's ModelBlessing, plus the float property
  `global_sparsity`; its own type keeps it out of production-model lookups).
  """
  SPEC_CLASS = spec.SparsityValidatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               model: types.BaseChannel,
               tflite_model: Optional[types.BaseChannel] = None,
               min_sparsity: float = _DEFAULTS.min_sparsity,
               per_layer_min_sparsity: Optional[Mapping[str, float]] = None,
               tolerance: float = _DEFAULTS.tolerance,
               include_all_tensors: bool = _DEFAULTS.include_all_tensors,
               sparsity_m_by_n: str = _DEFAULTS.sparsity_m_by_n,
               follow_pruning: bool = _DEFAULTS.follow_pruning):
    """Args:
      model: a Model channel (Trainer's or PruneTrainer's output).
      tflite_model: optional, TFLiteConverter's `tflite_model` from `model`: its weight
        tensors must reach `min_sparsity` too (proof the zeros survived conversion).
      min_sparsity: minimum fraction of zeros over prunable kernels, in [0, 1].
      per_layer_min_sparsity: layer name -> minimum kernel sparsity, each in [0, 1].
      tolerance: absolute slack under every minimum, in [0, 1].
      include_all_tensors: count biases and BatchNorm tensors in the global figure.
      sparsity_m_by_n: "" or "M:N" (as PruneTrainer/TFMOT): at least M zeros in every N
        consecutive kernel weights along the input channels.
      follow_pruning: when PruneTrainer's search chose the level, require that level
        instead of a higher `min_sparsity`.
    The parameters are the fields of `settings.SparsityValidatorSettings` (types,
    defaults, rules); scalar ones may be `tfx.dsl.experimental.RuntimeParameter`s
    (booleans of ptype int), checked when the run starts.
    """
    if per_layer_min_sparsity is not None:
      per_layer_min_sparsity = dict(per_layer_min_sparsity)
    chosen = params.component_settings(settings.SparsityValidatorSettings, locals())
    outputs = spec.SparsityValidatorSpec.OUTPUTS
    super().__init__(spec.SparsityValidatorSpec(
        model=model, tflite_model=tflite_model,
        report=types.Channel(type=outputs[spec.REPORT_KEY].type),
        blessing=types.Channel(type=outputs[spec.BLESSING_KEY].type),
        **chosen.to_exec_properties()))
