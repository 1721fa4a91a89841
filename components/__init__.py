"""The tfx-bonsai components (installed as `tfx_bonsai.components`).

The components load on first use, so that importing a TF-free part (each component's
`settings`, which the YAML config uses) does not import TensorFlow.
"""
import importlib

_WHERE = {
    "CompressionBlessing": "tfx_bonsai.components.common.blessing",
    "SparsityBlessing": "tfx_bonsai.components.common.blessing",
    "CompressionEvaluator": "tfx_bonsai.components.compression_evaluator.component",
    "PruneTrainer": "tfx_bonsai.components.prune_trainer.component",
    "SparsityValidator": "tfx_bonsai.components.sparsity_validator.component",
    "TFLiteConverter": "tfx_bonsai.components.tflite_converter.component",
}
__all__ = sorted(_WHERE)


def __getattr__(name):
  if name in _WHERE:
    return getattr(importlib.import_module(_WHERE[name]), name)
  raise AttributeError(f"module 'tfx_bonsai.components' has no attribute {name!r}")
