"""The tfx-bonsai components (installed as `tfx_bonsai.components`)."""
from tfx_bonsai.components.common.blessing import SparsityBlessing
from tfx_bonsai.components.compression_evaluator.component import CompressionEvaluator
from tfx_bonsai.components.prune_trainer.component import PruneTrainer
from tfx_bonsai.components.sparsity_validator.component import SparsityValidator
from tfx_bonsai.components.tflite_converter.component import TFLiteConverter

__all__ = ["CompressionEvaluator", "PruneTrainer", "SparsityBlessing", "SparsityValidator",
           "TFLiteConverter"]
