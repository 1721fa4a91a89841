"""TFLiteConverter's settings: every parameter's name, type, default and rules (no TensorFlow here).

`TFLiteConverterSettings` is the one definition: the ComponentSpec's PARAMETERS, the
component's defaults, the executor, `conversion.convert` (as `ConversionConfig`) and the
pipeline's `conversion:` section all use it.
"""
import dataclasses
from typing import Dict, List, Optional

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common.settings import setting

NONE, DYNAMIC, FLOAT16, INT8, MIXED = "none", "dynamic", "float16", "int8", "mixed"


@dataclasses.dataclass(frozen=True)
class Mode:
  """What a conversion mode needs and gives: the one table the converter consults."""
  name: str
  representative_data: bool   # calibrates activation ranges on examples of the train split
  int8_io: bool               # can take int8 input/output tensors (int8_io)
  near_ties: bool             # its output may be an int8 tensor: near-tie allowance applies


# The ladder, most integer arithmetic first: full-integer int8; int8 with the layers of largest
# quantization error kept float (the quantization debugger's deny-list); int8 weights with
# float activations; float16 weights; float32.
MODES = {m.name: m for m in (
    Mode(INT8, representative_data=True, int8_io=True, near_ties=True),
    Mode(MIXED, representative_data=True, int8_io=True, near_ties=True),
    Mode(DYNAMIC, representative_data=False, int8_io=False, near_ties=False),
    Mode(FLOAT16, representative_data=False, int8_io=False, near_ties=False),
    Mode(NONE, representative_data=False, int8_io=False, near_ties=False),
)}
LADDER = tuple(MODES)
# `quantization` picks where the ladder starts ("mixed" is a fallback only: it starts from int8).
QUANTIZATIONS = (NONE, DYNAMIC, FLOAT16, INT8)
FALLBACKS = tuple(m for m in LADDER if m != INT8)
DEFAULT_FALLBACK = (MIXED, DYNAMIC, FLOAT16)


def ladder(quantization: str, fallback, int8_io: bool = False) -> List[str]:
  """The modes to try in order: `quantization`, then the milder `fallback` modes (ladder order);
  with `int8_io` only modes that keep integer input/output."""
  start = LADDER.index(quantization)
  return [quantization] + [m for m in LADDER[start + 1:] if m in fallback
                           and (MODES[m].int8_io or not int8_io)]


def _fallback(value) -> Optional[str]:
  unknown = [m for m in value if m not in FALLBACKS]
  if unknown:
    return f"items must be among {list(FALLBACKS)}, got {unknown!r}"
  if len(set(value)) != len(value):
    return f"lists a mode twice: {list(value)!r}"
  return None


def _normalization(value) -> Optional[str]:
  if not value:
    return None
  if sorted(value) != ["mean", "std"]:
    return f"must be {{}} or {{mean: [...], std: [...]}}, got keys {sorted(value)!r}"
  mean, std = value["mean"], value["std"]
  if not mean or len(mean) != len(std):
    return (f"mean and std must be non-empty lists of one length (one value, or one per "
            f"channel), got mean={mean!r}, std={std!r}")
  if any(s <= 0 for s in std):
    return f"std values must be > 0, got {std!r}"
  return None


def _input_range(value) -> Optional[str]:
  ok = not value or (len(value) == 2 and value[0] < value[1])
  return None if ok else f"must be [] or [min, max] with min < max, got {value!r}"


def _count(value) -> str:
  return None if value >= 1 else f"must be an integer >= 1, got {value!r}"


# The most near-ties any setting may count as agreeing: 5 % of the examples.
MAX_TIE_SHARE = 0.05


def _tie_share(value):
  ok = 0.0 <= value <= MAX_TIE_SHARE
  return None if ok else f"must be in [0, {MAX_TIE_SHARE}] (a cap on near-ties), got {value!r}"


@dataclasses.dataclass(frozen=True)
class TFLiteConverterSettings(settings_lib.Settings):
  """How to convert, and how closely the TFLite model must agree with the Keras model."""
  quantization: str = setting(INT8, check=settings_lib.one_of(QUANTIZATIONS))
  # Milder modes tried, in ladder order, when `quantization` does not agree ([]: none);
  # the first that agrees is kept. No mode agreeing is a failed (NOT BLESSED) conversion.
  fallback: List[str] = setting(default_factory=lambda: list(DEFAULT_FALLBACK),
                                check=_fallback)
  sparse_weights: bool = False   # TFLite's EXPERIMENTAL_SPARSITY weight encoding
  int8_io: bool = False
  representative_examples: int = setting(200, check=_count)
  representative_split: str = setting("train", check=settings_lib.non_empty("train"),
                                      config=settings_lib.NOT_IN_CONFIG)
  agreement_examples: int = setting(360, check=_count)
  # Train by default: the agreement check reads no labels, and a split it passes or fails the
  # conversion on is one the gate refuses to judge on (data roles); the YAML pipeline uses its
  # selection split.
  agreement_split: str = setting("train", check=settings_lib.non_empty("train"),
                                 config=settings_lib.NOT_IN_CONFIG)
  min_agreement: float = setting(0.98, check=settings_lib.fraction(low_open=True))
  # At most this share of the examples may count as agreeing though their classes differ:
  # those where both the Keras and the TFLite scores of the two classes are within one step
  # of the TFLite output tensor's int8 scale (int8 and mixed outputs only). Capped at
  # MAX_TIE_SHARE, so that a file agreeing on far fewer than min_agreement never passes.
  max_tie_share: float = setting(0.02, check=_tie_share)
  max_abs_error: float = setting(0.05, check=settings_lib.greater_than(0))
  label_key: str = setting("label", config=settings_lib.NOT_IN_CONFIG)  # "": no label
  measure_latency: bool = True
  # What the output means (settings_lib.HEADS; "auto" reads the model): classifiers are held
  # to min_agreement on decisions, regression to max_abs_error.
  head: str = setting("auto", check=settings_lib.one_of(settings_lib.HEADS))
  # LiteRT metadata written into the model file (metadata.py). The class names, in
  # output-index order: a list, or a file of one per line (e.g. a Transform vocabulary).
  labels: List[str] = setting(default_factory=list)
  labels_file: str = ""
  # How a raw input becomes the model's input, (raw - mean) / std, one value or one per
  # channel: {mean: [0.0], std: [255.0]}. {}: not stated (the metadata then says so).
  normalization: Dict[str, List[float]] = setting(default_factory=dict, check=_normalization)
  input_range: List[float] = setting(default_factory=list, check=_input_range)  # [min, max]
  description: str = ""   # the model's description ("": what was converted, and how)

  def check_together(self, known) -> None:
    if known("int8_io", "quantization") and self.int8_io and self.quantization != INT8:
      raise self.error("int8_io", f"needs quantization 'int8', got {self.quantization!r}")
    if known("labels", "labels_file") and self.labels and self.labels_file:
      raise self.error("labels", "and labels_file are exclusive: give the class names one way")

  @property
  def modes(self) -> List[str]:
    """The ladder this conversion climbs (see `ladder`)."""
    return ladder(self.quantization, self.fallback, self.int8_io)

  @property
  def mode(self) -> str:
    """A short label, e.g. `quantization='int8', sparse_weights=True`."""
    return self.mode_label(self.quantization)

  def mode_label(self, mode: str) -> str:
    """`mode` (a ladder step) with this conversion's options, e.g. `quantization='mixed', ...`."""
    text = f"quantization={mode!r}, sparse_weights={bool(self.sparse_weights)}"
    return text + (", int8_io=True" if self.int8_io and MODES[mode].int8_io else "")
