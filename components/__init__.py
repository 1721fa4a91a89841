"""tfx-bonsai components: prune, validate, convert and gate Keras models in TFX.

TensorFlow Model Optimization supports Keras 2 only, so this package selects the
legacy Keras (tf_keras) before TensorFlow is imported. This is the one place that
sets it; `pipeline` imports this package first.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

from components.evaluator.component import CompressionEvaluator  # noqa: E402
from components.prune_trainer.component import PruneTrainer  # noqa: E402
from components.sparsity_validator.component import SparsityValidator  # noqa: E402
from components.tflite_converter.component import TFLiteConverter  # noqa: E402

__all__ = ["CompressionEvaluator", "PruneTrainer", "SparsityValidator", "TFLiteConverter"]
