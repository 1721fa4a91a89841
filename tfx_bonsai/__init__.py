"""tfx-bonsai: TFX components that prune, validate, convert and gate Keras models.

    from tfx_bonsai import PruneTrainer, SparsityValidator, TFLiteConverter, CompressionEvaluator

TensorFlow Model Optimization supports Keras 2 only, so importing this package selects
the legacy Keras (tf_keras) before TensorFlow is imported. This is the one place that
sets it. The repository's `components/` and `pipeline/` folders are installed as
`tfx_bonsai.components` and `tfx_bonsai.pipeline` (pyproject's package-dir), so nothing
here shadows, or is shadowed by, a user's own `components` or `pipeline` package.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

__version__ = "0.2.0"

__all__ = ["CompressionBlessing", "CompressionEvaluator", "PruneTrainer", "SparsityBlessing",
           "SparsityValidator", "TFLiteConverter"]


def __getattr__(name):
  """The components on first use: `bonsai run` sends TensorFlow's start-up output to its log
  file only if TensorFlow is not already imported by the time its `main` runs."""
  if name in __all__:
    from tfx_bonsai import components  # pylint: disable=g-import-not-at-top
    return getattr(components, name)
  raise AttributeError(f"module 'tfx_bonsai' has no attribute {name!r}")
