"""SparsityValidator: blesses a model only when its weights are as sparse as required."""
from typing import Mapping, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec

from tfx_bonsai.components.sparsity_validator import executor
from tfx_bonsai.components.sparsity_validator import sparsity
from tfx_bonsai.components.sparsity_validator import spec


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
               min_sparsity: float = 0.85,
               per_layer_min_sparsity: Optional[Mapping[str, float]] = None,
               tolerance: float = 0.01,
               include_all_tensors: bool = False,
               sparsity_m_by_n: str = ""):
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
    """
    sparsity.check_fraction(spec.MIN_SPARSITY_KEY, min_sparsity)
    sparsity.check_fraction(spec.TOLERANCE_KEY, tolerance)
    per_layer = dict(per_layer_min_sparsity or {})
    for layer, minimum in per_layer.items():
      if not isinstance(layer, str) or not layer:
        raise ValueError(f"{spec.PER_LAYER_MIN_SPARSITY_KEY} keys must be layer names, "
                         f"got {layer!r}")
      per_layer[layer] = sparsity.check_fraction(
          f"{spec.PER_LAYER_MIN_SPARSITY_KEY}['{layer}']", minimum)
    if include_all_tensors not in (True, False):
      raise ValueError(f"{spec.INCLUDE_ALL_TENSORS_KEY} must be True or False, "
                       f"got {include_all_tensors!r}")
    sparsity.parse_m_by_n(sparsity_m_by_n, spec.SPARSITY_M_BY_N_KEY)
    super().__init__(spec.SparsityValidatorSpec(
        model=model,
        tflite_model=tflite_model,
        min_sparsity=float(min_sparsity),
        per_layer_min_sparsity=per_layer or None,
        tolerance=float(tolerance),
        include_all_tensors=int(bool(include_all_tensors)),
        sparsity_m_by_n=sparsity_m_by_n,
        report=types.Channel(type=spec.SparsityValidatorSpec.OUTPUTS[spec.REPORT_KEY].type),
        blessing=types.Channel(type=spec.SparsityValidatorSpec.OUTPUTS[spec.BLESSING_KEY].type)))
