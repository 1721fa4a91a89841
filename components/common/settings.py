"""Component settings: each parameter's name, type, default and rules, defined once.

A component's settings are one frozen dataclass (a `Settings`) in a module that imports
neither TensorFlow nor TFX. Its fields are the component's execution parameters: the
ComponentSpec's PARAMETERS, the constructor's defaults, the executor's reading of
exec_properties and the pipeline's YAML section are all derived from it.

Field rules sit in the field (`setting(default, check=...)`); rules across fields in the
class's `check_together(known)`. A broken rule raises a `SettingsError` carrying the
parameter's name (`key`) and the bare `message`, so that a component says
"target_sparsity must be in [0, 1), got 1.5" and the YAML config
"pruning.target_sparsity: must be in [0, 1), got 1.5".

A field may hold a TFX `RuntimeParameter` (its value is known only when the pipeline
runs): `validate()` then skips that field, and every rule across fields that involves it;
the executor validates the resolved values with the same class.
"""
import dataclasses
import json
import math
import typing
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Tuple

# The YAML path of a field, relative to its section: the field's own name unless given;
# NOT_IN_CONFIG for parameters the pipeline wires itself (label key, split names).
SAME_NAME = "<same>"
NOT_IN_CONFIG = None
Check = Callable[[Any], Optional[str]]

# How an accuracy drop is decided against its budget, by the gate (CompressionEvaluator's
# accuracy_decision) and the search (PruneTrainer's search_accuracy_decision), on paired
# outcomes (common/stats.py).
POINT = "point"            # the point drop must be within the budget
CONFIDENT = "confident"    # the upper end of its paired 95% interval must be within the budget
ACCURACY_DECISIONS = (POINT, CONFIDENT)
# The accuracy budget: the gate's max_accuracy_drop and PruneTrainer's search_max_accuracy_drop
# default to it, so a search wired by hand aims at the budget the gate will judge by.
DEFAULT_MAX_ACCURACY_DROP = 0.01


class SettingsError(ValueError):
  """A parameter value its component cannot use; `key` names it, `message` says what is allowed."""

  def __init__(self, key: str, message: Optional[str] = None):
    if message is None:  # a sentence on its own, naming no single parameter
      key, message = "", key
    super().__init__(f"{key} {message}" if key else message)
    self.key = key
    self.message = message


def setting(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
            check: Optional[Check] = None, config: Optional[str] = SAME_NAME,
            runtime: bool = True) -> Any:
  """A settings field.

  check: value -> None when allowed, else the message ("must be >= 1, got 0").
  config: its key path in the pipeline's YAML section (e.g. "search.levels"), or None.
  runtime: whether a scalar field may be a RuntimeParameter.
  """
  return dataclasses.field(default=default, default_factory=default_factory,
                           metadata={"check": check, "config": config, "runtime": runtime})


def is_runtime_parameter(value: Any) -> bool:
  """True for a tfx RuntimeParameter (recognised as TFX's own component_spec does)."""
  return value.__class__.__name__ == "RuntimeParameter"


def _type_message(tp, value) -> Optional[str]:
  """None when `value` is of type `tp` (ints count as floats), else the message."""
  origin = typing.get_origin(tp)
  if origin in (list, tuple):
    (item,) = typing.get_args(tp)[:1]
    if not isinstance(value, (list, tuple)):
      return f"must be a list, got {value!r}"
    for v in value:
      problem = _type_message(item, v)
      if problem:
        return f"items {problem}"
    return None
  if origin in (dict, Mapping, typing.Mapping) or tp in (dict,):
    key_type, item = typing.get_args(tp)
    if not isinstance(value, Mapping):
      return f"must be a mapping, got {value!r}"
    for k, v in value.items():
      problem = _type_message(key_type, k) or _type_message(item, v)
      if problem:
        return f"entries {problem}"
    return None
  if tp is bool:
    return None if value in (True, False) else f"must be True or False, got {value!r}"
  if tp is int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    return None if ok else f"must be an integer, got {value!r}"
  if tp is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return None if ok else f"must be a number, got {value!r}"
  if tp is str:
    return None if isinstance(value, str) else f"must be a string, got {value!r}"
  return None


class Settings:
  """Base of the settings dataclasses (declare them `@dataclasses.dataclass(frozen=True)`)."""

  @classmethod
  def types(cls) -> Dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

  @classmethod
  def defaults(cls) -> Dict[str, Any]:
    return {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}

  @classmethod
  def runtime_keys(cls) -> Tuple[str, ...]:
    """The fields that may be RuntimeParameters: the scalar ones not marked otherwise."""
    types = cls.types()
    return tuple(f.name for f in dataclasses.fields(cls)
                 if f.metadata.get("runtime", True) and types[f.name] in (bool, int, float, str))

  @classmethod
  def config_paths(cls) -> Dict[str, str]:
    """{field: its key path in the YAML section} for the fields the YAML config sets."""
    paths = {}
    for f in dataclasses.fields(cls):
      path = f.metadata.get("config", SAME_NAME)
      if path is not NOT_IN_CONFIG:
        paths[f.name] = f.name if path == SAME_NAME else path
    return paths

  def replace(self, **changes) -> "Settings":
    return dataclasses.replace(self, **changes)

  def as_dict(self) -> Dict[str, Any]:
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

  def runtime(self) -> FrozenSet[str]:
    """The fields holding RuntimeParameters."""
    return frozenset(name for name, value in self.as_dict().items() if is_runtime_parameter(value))

  def validate(self) -> "Settings":
    """Returns self; raises SettingsError naming the first invalid field and what is allowed.

    Fields holding RuntimeParameters are skipped, and so is every rule across fields that
    reads one of them.
    """
    runtime = self.runtime()
    types = self.types()
    for f in dataclasses.fields(self):
      if f.name in runtime:
        if f.name not in self.runtime_keys():
          raise SettingsError(f.name, "cannot be a RuntimeParameter: it is not a scalar")
        continue
      value = getattr(self, f.name)
      problem = _type_message(types[f.name], value)
      if problem is None and f.metadata.get("check"):
        problem = f.metadata["check"](value)
      if problem:
        raise self.error(f.name, problem)
    known = frozenset(types) - runtime
    self.check_together(lambda *names: known.issuperset(names))
    return self

  def check_together(self, known: Callable[..., bool]) -> None:
    """Rules across fields; `known(*names)` is False while any of them is a RuntimeParameter."""

  @classmethod
  def error(cls, key: str, message: str) -> SettingsError:
    """The error a rule raises; subclasses return their own SettingsError subclass."""
    return SettingsError(key, message)

  @classmethod
  def from_exec_properties(cls, exec_properties: Mapping[str, Any]) -> "Settings":
    """The settings an executor was given, validated.

    Absent or None values take the default; TFX may hand lists and dicts as JSON text,
    booleans as 0/1 and floats as ints.
    """
    values = {}
    for name, tp in cls.types().items():
      value = exec_properties.get(name)
      if value is None:
        continue
      origin = typing.get_origin(tp)
      if origin is not None and isinstance(value, str):
        value = json.loads(value) if value.strip() not in ("", "null") else None
        if value is None:
          continue
      if tp is bool and value in (0, 1):
        value = bool(value)
      elif tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
      elif origin in (list, tuple):
        value = list(value)
      elif origin is not None:
        value = dict(value)
      values[name] = value
    return cls(**values).validate()

  def to_exec_properties(self) -> Dict[str, Any]:
    """The ComponentSpec's parameter values: booleans as 0/1, numbers as their type."""
    types = self.types()
    values = {}
    for name, value in self.as_dict().items():
      if not is_runtime_parameter(value):
        tp = types[name]
        if tp is bool:
          value = int(value)
        elif tp is float:
          value = float(value)
        elif typing.get_origin(tp) in (list, tuple):
          (item,) = typing.get_args(tp)[:1]
          value = [float(v) if item is float else v for v in value]
        elif typing.get_origin(tp) is not None:
          _, item = typing.get_args(tp)
          value = {k: float(v) if item is float else v for k, v in value.items()}
      values[name] = value
    return values


# Field rules: each returns None when the value is allowed, else the message.
def fraction(low_open: bool = False, high_open: bool = False, note: str = "") -> Check:
  """In [0, 1] (or with open ends): e.g. `fraction(high_open=True)` for [0, 1)."""
  text = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}{note}"

  def check(value):
    low_ok = value > 0.0 if low_open else value >= 0.0
    high_ok = value < 1.0 if high_open else value <= 1.0
    return None if low_ok and high_ok else f"must be in {text}, got {value!r}"
  return check


def at_least(minimum: float, note: str = "") -> Check:
  def check(value):
    ok = value >= minimum and math.isfinite(value)
    return None if ok else f"must be >= {minimum}{note}, got {value!r}"
  return check


def greater_than(minimum: float, note: str = "") -> Check:
  def check(value):
    ok = value > minimum and math.isfinite(value)
    return None if ok else f"must be > {minimum}{note}, got {value!r}"
  return check


def one_of(choices: Iterable[str]) -> Check:
  choices = tuple(choices)

  def check(value):
    return None if value in choices else f"must be one of {list(choices)}, got {value!r}"
  return check


def non_empty(example: str) -> Check:
  def check(value):
    return None if value else f"must be a non-empty string (e.g. {example!r}), got {value!r}"
  return check


def m_by_n(value: str) -> Optional[str]:
  """'' or 'M:N' with 0 < M < N (TFMOT's sparsity_m_by_n)."""
  return None if value == "" or parse_m_by_n(value) else (
      f"must be '' or 'M:N' with 0 < M < N (e.g. '2:4'), got {value!r}")


def parse_m_by_n(value: str) -> Optional[Tuple[int, int]]:
  """'M:N' -> (M, N); None for '' or when not of that form."""
  parts = str(value).replace(" ", "").split(":")
  if len(parts) != 2 or not all(p.isdigit() for p in parts):
    return None
  m, n = int(parts[0]), int(parts[1])
  return (m, n) if 0 < m < n else None


# Heads: what a model's output means (heads.py scores them; these names are its and the
# settings' one definition, here because settings modules import no numpy).
HEADS = ("auto", "multiclass", "multiclass_logits", "binary", "binary_logits", "regression")
METRICS = ("accuracy", "mae", "rmse")
ERROR_METRICS = ("mae", "rmse")


def metric_name(value: str) -> Optional[str]:
  """'' (the head's default) or one of METRICS."""
  return None if value == "" or value in METRICS else (
      f"must be one of {list(METRICS)} (or '' for the head's default), got {value!r}")


def head_problem(head: str, metric: str = "") -> Optional[Tuple[str, str]]:
  """(field, message) when `head` or `metric` is not allowed, or they do not go together."""
  if head not in HEADS:
    return "head", f"must be one of {list(HEADS)}, got {head!r}"
  problem = metric_name(metric)
  if problem:
    return "metric", problem
  if metric and head == "regression" and metric not in ERROR_METRICS:
    return "metric", (f"must be one of {list(ERROR_METRICS)} for head 'regression', "
                      f"got {metric!r}")
  if metric in ERROR_METRICS and head not in ("regression", "auto"):
    return "metric", f"{metric!r} needs head 'regression'; a {head!r} head is scored by 'accuracy'"
  return None


def section_keys(settings_cls: type, section: str) -> List[str]:
  """The YAML keys (`section.path`) of a settings class's runtime-capable fields."""
  paths = settings_cls.config_paths()
  return [f"{section}.{paths[name]}" for name in settings_cls.runtime_keys() if name in paths]
