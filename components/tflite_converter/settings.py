"""TFLiteConverter's settings: every parameter's name, type, default and rules (no TensorFlow here).

`TFLiteConverterSettings` is the one definition: the ComponentSpec's PARAMETERS, the
component's defaults, the executor, `conversion.convert` (as `ConversionConfig`) and the
pipeline's `conversion:` section all use it.
"""
import dataclasses

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common.settings import setting

QUANTIZATIONS = ("none", "dynamic", "float16", "int8")


def _count(value) -> str:
  return None if value >= 1 else f"must be an integer >= 1, got {value!r}"


@dataclasses.dataclass(frozen=True)
class TFLiteConverterSettings(settings_lib.Settings):
  """How to convert, and how closely the TFLite model must agree with the Keras model."""
  quantization: str = setting("int8", check=settings_lib.one_of(QUANTIZATIONS))
  sparse_weights: bool = False   # TFLite's EXPERIMENTAL_SPARSITY weight encoding
  int8_io: bool = False
  representative_examples: int = setting(200, check=_count)
  representative_split: str = setting("train", check=settings_lib.non_empty("train"),
                                      config=settings_lib.NOT_IN_CONFIG)
  agreement_examples: int = setting(360, check=_count)
  agreement_split: str = setting("eval", check=settings_lib.non_empty("eval"),
                                 config=settings_lib.NOT_IN_CONFIG)
  min_agreement: float = setting(0.98, check=settings_lib.fraction(low_open=True))
  max_abs_error: float = setting(0.05, check=settings_lib.greater_than(0))
  label_key: str = setting("label", config=settings_lib.NOT_IN_CONFIG)  # "": no label
  measure_latency: bool = True
  # What the output means (settings_lib.HEADS; "auto" reads the model): classifiers are held
  # to min_agreement on decisions, regression to max_abs_error.
  head: str = setting("auto", check=settings_lib.one_of(settings_lib.HEADS))

  def check_together(self, known) -> None:
    if known("int8_io", "quantization") and self.int8_io and self.quantization != "int8":
      raise self.error("int8_io", f"needs quantization 'int8', got {self.quantization!r}")

  @property
  def mode(self) -> str:
    """A short label, e.g. `quantization='int8', sparse_weights=True`."""
    text = f"quantization={self.quantization!r}, sparse_weights={bool(self.sparse_weights)}"
    return text + (", int8_io=True" if self.int8_io else "")
