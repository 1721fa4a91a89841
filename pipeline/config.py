"""The pipeline's typed configuration: loaded from YAML, overridden with key.path=value, validated.

Every error is a ConfigError naming the key path (e.g. `pruning.target_sparsity`) and the
allowed values, raised before any pipeline work starts.
"""
import dataclasses
import difflib
import os
import typing
from typing import Any, Dict, List, Optional

import yaml


class ConfigError(ValueError):
  """An invalid configuration value, naming its key path and what is allowed."""


@dataclasses.dataclass
class DataConfig:
  path: str = ""                      # ExampleGen input_base
  format: str = "tfrecord"            # tfrecord | csv
  embedded: str = ""                  # "" | "digits": export the embedded set to `path` first
  label_key: str = "label"
  train_buckets: int = 4              # hash split train:selection:eval
  selection_buckets: int = 1
  eval_buckets: int = 1


# The three roles of the data, one split each (ExampleGen's hash split):
TRAIN_SPLIT = "train"          # fits (Trainer, PruneTrainer)
SELECTION_SPLIT = "selection"  # the search's levels, PruneTrainer's validation, the
                               # Trainer's eval and the converter's agreement check
EVAL_SPLIT = "eval"            # the gate's, seen by nothing else
SPLITS = (TRAIN_SPLIT, SELECTION_SPLIT, EVAL_SPLIT)


@dataclasses.dataclass
class TrainerConfig:
  run_fn: str = "tfx_bonsai.pipeline.models.digits_trainer.run_fn"   # importable run_fn, or
  module_file: str = ""                                   # a module file with run_fn
  train_steps: int = 180
  eval_steps: int = 12
  custom_config: Dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SearchSection:
  enabled: bool = False
  levels: List[float] = dataclasses.field(
      default_factory=lambda: [0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.997, 0.998])
  max_accuracy_drop: float = -1.0     # < 0: the gate's max_accuracy_drop
  max_trials: int = 8
  time_budget_s: float = 0.0          # 0: no limit
  epochs_per_trial: int = 2
  accuracy_decision: str = ""         # "": the gate's accuracy_decision
  max_layer_sparsity: float = 0.999   # per-layer cap of the search's global magnitude allocation


@dataclasses.dataclass
class CollaborativeSection:
  clusters: int = 0                   # 0: off; sparsity-preserving clustering to N values
  cluster_epochs: int = 1
  qat_epochs: int = 0                 # 0: off; sparsity-preserving QAT (PQAT / PCQAT)
  learning_rate: float = 1e-4


@dataclasses.dataclass
class PruningSection:
  target_sparsity: float = 0.9
  initial_sparsity: float = 0.5
  schedule: str = "polynomial"
  epochs: int = 4
  begin_step: int = 0
  end_step: int = 0
  frequency: int = 0
  batch_size: int = 32
  learning_rate: float = 1e-3
  include_layers: List[str] = dataclasses.field(default_factory=list)
  exclude_layers: List[str] = dataclasses.field(default_factory=list)
  sparsity_m_by_n: str = ""
  pruning_policy: str = ""
  allocation: str = "uniform"
  selection_split: str = SELECTION_SPLIT   # validation and the search; never the gate's split
  search: SearchSection = dataclasses.field(default_factory=SearchSection)
  collaborative: CollaborativeSection = dataclasses.field(default_factory=CollaborativeSection)


@dataclasses.dataclass
class SparsitySection:
  min_sparsity: float = 0.85
  tolerance: float = 0.01
  per_layer_min_sparsity: Dict[str, float] = dataclasses.field(default_factory=dict)
  include_all_tensors: bool = False


@dataclasses.dataclass
class ConversionSection:
  quantization: str = "int8"
  sparse_weights: bool = True
  int8_io: bool = False
  representative_examples: int = 200
  agreement_examples: int = 360
  min_agreement: float = 0.98
  max_abs_error: float = 0.05
  agreement_split: str = SELECTION_SPLIT


@dataclasses.dataclass
class GateSection:
  max_accuracy_drop: float = 0.01
  max_relative_accuracy_drop: float = 0.0
  min_compression_ratio: float = 10.0
  max_latency_ratio: float = 0.0
  accuracy_decision: str = "confident"   # confident | point
  min_accuracy: float = 0.0              # 0: off
  eval_split: str = EVAL_SPLIT


@dataclasses.dataclass
class PushSection:
  destination: str = ""               # filesystem path or gs:// URI


@dataclasses.dataclass
class RunnerSection:
  type: str = "local"                 # local | kubeflow | vertex
  beam_args: List[str] = dataclasses.field(default_factory=lambda: [
      "--direct_running_mode=multi_processing", "--direct_num_workers=0"])
  enable_cache: bool = True
  image: str = ""
  project: str = ""
  region: str = ""
  service_account: str = ""
  kfp_host: str = ""


@dataclasses.dataclass
class BonsaiConfig:
  pipeline_name: str = "bonsai"
  pipeline_root: str = ""
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
  pruning: PruningSection = dataclasses.field(default_factory=PruningSection)
  sparsity: SparsitySection = dataclasses.field(default_factory=SparsitySection)
  conversion: ConversionSection = dataclasses.field(default_factory=ConversionSection)
  gate: GateSection = dataclasses.field(default_factory=GateSection)
  push: PushSection = dataclasses.field(default_factory=PushSection)
  runner: RunnerSection = dataclasses.field(default_factory=RunnerSection)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.pipeline_root, "metadata.sqlite")

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)


def _type_name(tp) -> str:
  origin = typing.get_origin(tp)
  if origin is list:
    return "a list"
  if origin is dict:
    return "a mapping"
  if dataclasses.is_dataclass(tp):
    return "a mapping"
  return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


class _Raw(str):
  """A --set value as typed: parsed as YAML unless the key is a string (so 2:4 stays '2:4')."""


def _coerce(tp, value, path: str):
  """`value` as type `tp`, or ConfigError naming `path` and the expected type."""
  if isinstance(value, _Raw):
    value = str(value) if tp is str else yaml.safe_load(value) if value.strip() else ""
  if dataclasses.is_dataclass(tp):
    return _build(tp, value, path + ".")
  origin = typing.get_origin(tp)
  wrong = ConfigError(f"{path}: must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")
  if origin is list:
    if not isinstance(value, list):
      raise wrong
    (item,) = typing.get_args(tp)
    return [_coerce(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
  if origin is dict:
    if not isinstance(value, dict):
      raise wrong
    _, item = typing.get_args(tp)
    return {str(k): _coerce(item, v, f"{path}.{k}") for k, v in value.items()}
  if tp is Any:
    return value
  if tp is bool:
    if not isinstance(value, bool):
      raise wrong
    return value
  if tp is int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise wrong
    return value
  if tp is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise wrong
    return float(value)
  if tp is str:
    if not isinstance(value, str):
      if isinstance(value, int) and path.endswith("m_by_n"):
        raise ConfigError(f"{path}: must be a quoted string such as '2:4' (unquoted, YAML reads "
                          f"2:4 as the number {value})")
      raise wrong
    return value
  raise wrong


def _build(cls, data, prefix: str):
  if data is None:
    data = {}
  if not isinstance(data, dict):
    raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a mapping, got {data!r}")
  hints = typing.get_type_hints(cls)
  names = [f.name for f in dataclasses.fields(cls)]
  for key in data:
    if key not in names:
      close = difflib.get_close_matches(str(key), names, n=1)
      hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
      raise ConfigError(f"{prefix}{key}: unknown key{hint} (allowed: {', '.join(names)})")
  return cls(**{k: _coerce(hints[k], v, prefix + k) for k, v in data.items()})


def _set(tree: Dict[str, Any], assignment: str) -> None:
  """Applies one `key.path=value` override (value parsed as YAML) to a plain dict."""
  if "=" not in assignment:
    raise ConfigError(f"--set {assignment}: expected key.path=value")
  key, raw = assignment.split("=", 1)
  parts = key.strip().split(".")
  node = tree
  for part in parts[:-1]:
    node = node.setdefault(part, {})
    if not isinstance(node, dict):
      raise ConfigError(f"--set {assignment}: '{part}' is not a section")
  node[parts[-1]] = _Raw(raw)


def _inside(path: str, root: str) -> bool:
  if "://" in path or "://" in root:
    return path.rstrip("/").startswith(root.rstrip("/") + "/") or path.rstrip("/") == root.rstrip("/")
  path, root = os.path.abspath(path), os.path.abspath(root)
  return path == root or path.startswith(root + os.sep)


def validate(config: BonsaiConfig) -> BonsaiConfig:
  """Checks values across sections with the components' own rules; raises ConfigError."""
  # pylint: disable=g-import-not-at-top  (the component modules import TensorFlow)
  from tfx_bonsai.components.prune_trainer import pruning
  from tfx_bonsai.components.tflite_converter import conversion
  if not config.pipeline_name:
    raise ConfigError("pipeline_name: must be a non-empty string")
  if not config.pipeline_root:
    raise ConfigError("pipeline_root: must be set (a directory or gs:// URI for the run's artifacts)")
  if not config.data.path:
    raise ConfigError("data.path: must be set (the directory ExampleGen reads)")
  if config.data.format not in ("tfrecord", "csv"):
    raise ConfigError(f"data.format: must be one of ['tfrecord', 'csv'], got '{config.data.format}'")
  if config.data.embedded not in ("", "digits"):
    raise ConfigError(f"data.embedded: must be one of ['', 'digits'], got '{config.data.embedded}'")
  if not config.data.embedded and "://" not in config.data.path and not os.path.isdir(config.data.path):
    raise ConfigError(f"data.path: '{config.data.path}' is not a directory")
  if not config.data.label_key:
    raise ConfigError("data.label_key: must name the label feature")
  for key in ("train_buckets", "selection_buckets", "eval_buckets"):
    if getattr(config.data, key) < 1:
      raise ConfigError(f"data.{key}: must be >= 1, got {getattr(config.data, key)}")
  for path, value in (("pruning.selection_split", config.pruning.selection_split),
                      ("conversion.agreement_split", config.conversion.agreement_split),
                      ("gate.eval_split", config.gate.eval_split)):
    if value not in SPLITS:
      raise ConfigError(f"{path}: must be one of {list(SPLITS)}, got '{value}'")
  if config.pruning.search.enabled and config.pruning.selection_split == config.gate.eval_split:
    raise ConfigError(
        f"pruning.selection_split: the search would select on '{config.gate.eval_split}', the "
        "split the gate then reports (gate.eval_split); choose another split, e.g. "
        f"'{SELECTION_SPLIT}', so the gate judges on examples the search never saw")
  if bool(config.trainer.run_fn) == bool(config.trainer.module_file):
    raise ConfigError("trainer: set exactly one of trainer.run_fn (an importable path) or "
                      "trainer.module_file (a file with run_fn)")
  for key in ("train_steps", "eval_steps"):
    if getattr(config.trainer, key) < 1:
      raise ConfigError(f"trainer.{key}: must be >= 1, got {getattr(config.trainer, key)}")
  if config.gate.accuracy_decision not in ("point", "confident"):
    raise ConfigError("gate.accuracy_decision: must be one of ['point', 'confident'], "
                      f"got '{config.gate.accuracy_decision}'")
  fields = dataclasses.asdict(config.pruning)
  fields.pop("search")
  fields.pop("collaborative")
  fields.pop("selection_split")
  try:
    pruning.PruningConfig(**{**fields, "include_layers": tuple(config.pruning.include_layers),
                             "exclude_layers": tuple(config.pruning.exclude_layers)}).validate()
    if config.pruning.search.enabled:
      search_config(config).validate()
    collaborative_config(config).validate()
  except pruning.PruningError as e:
    raise ConfigError(f"pruning.{e}") from e
  if config.pruning.collaborative.qat_epochs and config.conversion.quantization != "int8":
    raise ConfigError("pruning.collaborative.qat_epochs: quantization-aware training needs "
                      f"conversion.quantization 'int8', got '{config.conversion.quantization}'")
  s = config.sparsity
  if not 0.0 <= s.min_sparsity <= 1.0:
    raise ConfigError(f"sparsity.min_sparsity: must be in [0, 1], got {s.min_sparsity}")
  if not 0.0 <= s.tolerance < 1.0:
    raise ConfigError(f"sparsity.tolerance: must be in [0, 1), got {s.tolerance}")
  for layer, value in s.per_layer_min_sparsity.items():
    if not 0.0 <= value <= 1.0:
      raise ConfigError(f"sparsity.per_layer_min_sparsity.{layer}: must be in [0, 1], got {value}")
  c = config.conversion
  if c.quantization not in conversion.QUANTIZATIONS:
    raise ConfigError(f"conversion.quantization: must be one of {list(conversion.QUANTIZATIONS)}, "
                      f"got '{c.quantization}'")
  if c.int8_io and c.quantization != "int8":
    raise ConfigError("conversion.int8_io: needs conversion.quantization 'int8', "
                      f"got '{c.quantization}'")
  for key in ("representative_examples", "agreement_examples"):
    if getattr(c, key) < 1:
      raise ConfigError(f"conversion.{key}: must be >= 1, got {getattr(c, key)}")
  if not 0.0 < c.min_agreement <= 1.0:
    raise ConfigError(f"conversion.min_agreement: must be in (0, 1], got {c.min_agreement}")
  g = config.gate
  if not 0.0 <= g.max_accuracy_drop <= 1.0:
    raise ConfigError(f"gate.max_accuracy_drop: must be in [0, 1], got {g.max_accuracy_drop}")
  if not 0.0 <= g.max_relative_accuracy_drop <= 1.0:
    raise ConfigError("gate.max_relative_accuracy_drop: must be in [0, 1] (0 turns it off), "
                      f"got {g.max_relative_accuracy_drop}")
  if not g.min_compression_ratio > 1.0:
    raise ConfigError(f"gate.min_compression_ratio: must be > 1, got {g.min_compression_ratio}")
  if not 0.0 <= g.max_latency_ratio < float("inf"):
    raise ConfigError("gate.max_latency_ratio: must be >= 0 (0 turns it off), "
                      f"got {g.max_latency_ratio}")
  if not 0.0 <= g.min_accuracy <= 1.0:
    raise ConfigError(f"gate.min_accuracy: must be in [0, 1] (0 turns it off), got {g.min_accuracy}")
  if not config.push.destination:
    raise ConfigError("push.destination: must be set (a directory or gs:// URI)")
  if _inside(config.push.destination, config.pipeline_root):
    raise ConfigError(f"push.destination: '{config.push.destination}' is inside pipeline_root "
                      f"'{config.pipeline_root}'; choose a directory outside it")
  runners = ("local", "kubeflow", "vertex")
  if config.runner.type not in runners:
    raise ConfigError(f"runner.type: must be one of {list(runners)}, got '{config.runner.type}'")
  return config


def search_budget(config: BonsaiConfig) -> float:
  """The search's accuracy budget: its own, or the gate's when negative."""
  own = config.pruning.search.max_accuracy_drop
  return config.gate.max_accuracy_drop if own < 0 else own


def search_config(config: BonsaiConfig):
  from tfx_bonsai.components.prune_trainer import search  # pylint: disable=g-import-not-at-top
  s = config.pruning.search
  return search.SearchConfig(levels=tuple(s.levels), max_accuracy_drop=search_budget(config),
                             max_trials=s.max_trials, time_budget_s=s.time_budget_s,
                             epochs_per_trial=s.epochs_per_trial,
                             accuracy_decision=s.accuracy_decision or config.gate.accuracy_decision,
                             max_layer_sparsity=s.max_layer_sparsity)


def collaborative_config(config: BonsaiConfig):
  from tfx_bonsai.components.prune_trainer import collaborative  # pylint: disable=g-import-not-at-top
  c = config.pruning.collaborative
  return collaborative.CollaborativeConfig(clusters=c.clusters, cluster_epochs=c.cluster_epochs,
                                           qat_epochs=c.qat_epochs, learning_rate=c.learning_rate)


def load(path: Optional[str] = None, overrides: Optional[List[str]] = None,
         base: Optional[Dict[str, Any]] = None) -> BonsaiConfig:
  """The validated configuration from a YAML file (or `base`), with `key.path=value` overrides.

  Relative paths in `pipeline_root`, `data.path`, `push.destination` and
  `trainer.module_file` are taken relative to the current directory.
  """
  tree: Dict[str, Any] = dict(base or {})
  if path is not None:
    if not os.path.isfile(path):
      raise ConfigError(f"--config: no such file '{path}'")
    with open(path) as f:
      try:
        tree = yaml.safe_load(f) or {}
      except yaml.YAMLError as e:
        raise ConfigError(f"--config {path}: not valid YAML: {e}") from e
  for assignment in overrides or []:
    _set(tree, assignment)
  return validate(_build(BonsaiConfig, tree, ""))
