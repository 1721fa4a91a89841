"""CompressionEvaluator's settings: every parameter's name, type, default and rules (no TF here).

`CompressionEvaluatorSettings` is the one definition: the ComponentSpec's PARAMETERS, the
component's defaults, the executor, `gate.decide` (as `GateConfig`) and the pipeline's
`gate:` section all use it.
"""
import dataclasses
from typing import Any, Dict, List, Optional

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.common.settings import setting


_SLICING_SPEC = ("TFMA SlicingSpecs, e.g. [{feature_keys: [color]}, {feature_values: "
                 "{size: large}}]")


def _slicing_specs(specs) -> Optional[str]:
  for spec in specs:
    if not isinstance(spec, dict) or not spec or set(spec) - {"feature_keys", "feature_values"}:
      return (f"must be a list of {_SLICING_SPEC} (the overall slice is always checked), "
              f"got {spec!r}")
    keys, values = spec.get("feature_keys", []), spec.get("feature_values", {})
    if (not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys)
        or not isinstance(values, dict)
        or not all(isinstance(k, str) and k and isinstance(v, (str, int))
                   for k, v in values.items())):
      return f"must be a list of {_SLICING_SPEC}, got {spec!r}"
  return None


@dataclasses.dataclass(frozen=True)
class CompressionEvaluatorSettings(settings_lib.Settings):
  """Thresholds of the gate, and what it evaluates on.

  max_accuracy_drop: absolute accuracy the candidate may lose against the dense model
    (and against the production model, when there is one), in [0, 1].
  max_relative_accuracy_drop: fraction of the dense accuracy the candidate may lose,
    in [0, 1); 0 turns the check off.
  min_compression_ratio: dense float TFLite bytes / candidate gzipped bytes, > 1.
  max_latency_ratio: candidate latency / dense float TFLite latency (batch 1, 1 thread)
    the candidate may have, >= 0; 0 turns the check off.
  label_key: the label feature (integer class ids, or the regression target; a transformed
    feature with a transform_graph); eval_split: the split evaluated.
  allow_shared_splits: judge on `eval_split` even when an upstream model says it fitted or
    selected on it (its `data_roles` property); off (default): refuse.
  accuracy_decision: `confident` (the upper end of the paired 95% interval on each accuracy
    drop, or error increase, must be within the budget) or `point` (the point drop must be).
  min_accuracy: the candidate's accuracy must be at least this, in [0, 1]; 0 turns it off
    (classifier heads).
  max_class_drop: the accuracy any one class (label) may lose against the dense model, in
    [0, 1]; refused only when some class (or slice of `slicing_specs`) is confidently over it
    (a one-sided score test per class and slice, Holm-adjusted across them); 0 turns it off
    (classifier heads).
  slicing_specs: TFMA SlicingSpecs as dicts ({"feature_keys": [...]} and/or
    {"feature_values": {...}}): slices of the eval examples checked like the classes.
  head: what the output means (HEADS; "auto" reads the dense model).
  metric: "" (accuracy; MAE for regression), "accuracy", "mae" or "rmse". With "mae" or
    "rmse" (a regression head) the accuracy checks are replaced by `metric_increase` and
    `production_increase`.
  max_metric_increase: how much the error metric may grow over the dense (and the
    production) model, in the metric's units, >= 0.
  model_fn, module_file: the Trainer module's model-building function, when the dense
    model was exported with tf.saved_model.save (see PruneTrainer).
  """
  label_key: str = setting("label", check=settings_lib.non_empty("label"),
                           config=settings_lib.NOT_IN_CONFIG)
  # The pipeline's gate.eval_split (one of its splits, seen by nothing before the gate); not a
  # RuntimeParameter: the pipeline refuses, when it is built, a split upstream fits or selects on.
  eval_split: str = setting("eval", check=settings_lib.non_empty("eval"), runtime=False)
  # Judge on a split an upstream component fitted or selected on (its `data_roles`), accepting
  # the bias: logged, and recorded in the verdict. Off: the gate refuses such a split.
  allow_shared_splits: bool = setting(False, runtime=False)
  max_accuracy_drop: float = setting(settings_lib.DEFAULT_MAX_ACCURACY_DROP,
                                     check=settings_lib.fraction())
  max_relative_accuracy_drop: float = setting(
      0.0, check=settings_lib.fraction(high_open=True, note=" (0 turns it off)"))
  min_compression_ratio: float = setting(10.0, check=settings_lib.greater_than(1))
  max_latency_ratio: float = setting(0.0, check=settings_lib.at_least(0, " (0 turns it off)"))
  accuracy_decision: str = setting(settings_lib.CONFIDENT,
                                   check=settings_lib.one_of(settings_lib.ACCURACY_DECISIONS))
  min_accuracy: float = setting(0.0, check=settings_lib.fraction(note=" (0 turns it off)"))
  max_class_drop: float = setting(0.1, check=settings_lib.fraction(note=" (0 turns it off)"))
  slicing_specs: List[Dict[str, Any]] = setting(default_factory=list, check=_slicing_specs,
                                                runtime=False)
  head: str = setting("auto", check=settings_lib.one_of(settings_lib.HEADS))
  metric: str = setting("", check=settings_lib.metric_name)
  max_metric_increase: float = setting(0.0, check=settings_lib.at_least(0))
  model_fn: str = setting("", config=settings_lib.NOT_IN_CONFIG)
  module_file: str = setting("", config=settings_lib.NOT_IN_CONFIG)

  def check_together(self, known) -> None:
    problem = known("head", "metric") and settings_lib.head_problem(self.head, self.metric)
    if problem:
      raise self.error(*problem)
