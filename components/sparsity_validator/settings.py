"""SparsityValidator's settings: every parameter's name, type, default and rules (no TF here).

`SparsityValidatorSettings` is the one definition: the ComponentSpec's PARAMETERS, the
component's defaults, the executor, `sparsity.SparsityTargets` and the pipeline's
`sparsity:` section all use it.
"""
import dataclasses
from typing import Dict

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common.settings import setting

_fraction = settings_lib.fraction()


def _per_layer(value) -> str:
  for layer, minimum in value.items():
    if not layer:
      return f"keys must be layer names, got {layer!r}"
    problem = _fraction(minimum)
    if problem:
      return f"entry {layer!r} {problem}"
  return None


@dataclasses.dataclass(frozen=True)
class SparsityValidatorSettings(settings_lib.Settings):
  """What a model must reach.

  min_sparsity: global minimum, over prunable kernels (all tensors with include_all_tensors).
  per_layer_min_sparsity: layer name -> minimum sparsity of that layer's kernel.
  tolerance: absolute slack subtracted from every minimum.
  sparsity_m_by_n: "" or "M:N" (TFMOT's sparsity_m_by_n): every N consecutive kernel
    weights along the input-channel axis hold at least M zeros. Checked on the layers of
    `per_layer_min_sparsity`, or on every prunable kernel when that is empty. The pipeline
    passes PruneTrainer's `pruning.sparsity_m_by_n`.
  follow_pruning: when PruneTrainer's search chose the model's level, the global minimum is
    that level (PruneTrainer's `target_sparsity` property) wherever it is below min_sparsity.
  """
  min_sparsity: float = setting(0.85, check=_fraction)
  per_layer_min_sparsity: Dict[str, float] = setting(default_factory=dict, check=_per_layer,
                                                     runtime=False)
  tolerance: float = setting(0.01, check=_fraction)
  include_all_tensors: bool = False
  sparsity_m_by_n: str = setting("", check=settings_lib.m_by_n, config=settings_lib.NOT_IN_CONFIG)
  follow_pruning: bool = True
