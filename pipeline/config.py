"""The pipeline's typed configuration: loaded from YAML, overridden with key.path=value, validated.

Every error is a ConfigError naming the key path (e.g. `pruning.target_sparsity`) and the
allowed values, raised before any pipeline work starts.
"""
import dataclasses
import difflib
import os
import re
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
  train_buckets: int = 4              # hash split train:eval
  eval_buckets: int = 1


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
      default_factory=lambda: [0.9, 0.95, 0.97, 0.98, 0.99, 0.995])
  max_accuracy_drop: float = -1.0     # < 0: the gate's max_accuracy_drop
  max_trials: int = 8
  time_budget_s: float = 0.0          # 0: no limit
  epochs_per_trial: int = 2


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


@dataclasses.dataclass
class GateSection:
  max_accuracy_drop: float = 0.01
  max_relative_accuracy_drop: float = 0.0
  min_compression_ratio: float = 10.0
  max_latency_ratio: float = 0.0


@dataclasses.dataclass
class PushSection:
  destination: str = ""               # filesystem path or gs:// URI


@dataclasses.dataclass
class ResourceSection:
  """Machine resources of one component's task on Vertex AI / Kubeflow (0 / "": the default)."""
  cpu: float = 0.0                    # vCPUs, e.g. 8
  memory_gb: float = 0.0              # GB, e.g. 32
  accelerator: str = ""               # e.g. NVIDIA_TESLA_T4, NVIDIA_L4
  accelerator_count: int = 0


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
  # Vertex AI: the run's VPC network (projects/NUMBER/global/networks/NAME), CMEK key
  # (projects/P/locations/L/keyRings/R/cryptoKeys/K), experiment, and labels.
  network: str = ""
  encryption_key: str = ""
  experiment: str = ""
  labels: Dict[str, str] = dataclasses.field(default_factory=dict)
  # Per-component resources, by component id: {PruneTrainer: {cpu: 8, memory_gb: 32}}.
  resources: Dict[str, ResourceSection] = dataclasses.field(default_factory=dict)
  # Component settings compiled as runtime parameters (Kubeflow / Vertex), so that each run
  # or schedule can set them: `bonsai submit --param gate.max_accuracy_drop=0.02`.
  runtime_parameters: List[str] = dataclasses.field(default_factory=list)


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
  if config.data.train_buckets < 1 or config.data.eval_buckets < 1:
    raise ConfigError("data.train_buckets and data.eval_buckets: must be >= 1")
  if bool(config.trainer.run_fn) == bool(config.trainer.module_file):
    raise ConfigError("trainer: set exactly one of trainer.run_fn (an importable path) or "
                      "trainer.module_file (a file with run_fn)")
  for key in ("train_steps", "eval_steps"):
    if getattr(config.trainer, key) < 1:
      raise ConfigError(f"trainer.{key}: must be >= 1, got {getattr(config.trainer, key)}")
  fields = dataclasses.asdict(config.pruning)
  fields.pop("search")
  fields.pop("collaborative")
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
  if not config.push.destination:
    raise ConfigError("push.destination: must be set (a directory or gs:// URI)")
  if _inside(config.push.destination, config.pipeline_root):
    raise ConfigError(f"push.destination: '{config.push.destination}' is inside pipeline_root "
                      f"'{config.pipeline_root}'; choose a directory outside it")
  runners = ("local", "kubeflow", "vertex")
  if config.runner.type not in runners:
    raise ConfigError(f"runner.type: must be one of {list(runners)}, got '{config.runner.type}'")
  _validate_vertex_options(config.runner)
  _validate_runtime_parameters(config)
  return config


# Sections whose scalar settings can be runtime parameters (they feed component parameters).
RUNTIME_SECTIONS = ("pruning", "sparsity", "conversion", "gate")


def runtime_parameter_keys() -> List[str]:
  """The config keys that `runner.runtime_parameters` accepts (int, float and str settings)."""
  keys = []
  hints = typing.get_type_hints(BonsaiConfig)
  for section in RUNTIME_SECTIONS:
    section_hints = typing.get_type_hints(hints[section])
    keys += [f"{section}.{f.name}" for f in dataclasses.fields(hints[section])
             if section_hints[f.name] in (int, float, str)]
  return keys


def runtime_parameter_name(key: str) -> str:
  """The compiled pipeline's parameter name of a config key: `gate.max_accuracy_drop` ->
  `gate_max_accuracy_drop` (KFP names take no dots)."""
  return key.replace(".", "_")


def _validate_runtime_parameters(config: BonsaiConfig) -> None:
  keys = config.runner.runtime_parameters
  if not keys:
    return
  if config.runner.type == "local":
    raise ConfigError("runner.runtime_parameters: only for runner.type 'vertex' or 'kubeflow' "
                      "(a local run takes its values from the config)")
  allowed = runtime_parameter_keys()
  for key in keys:
    if key not in allowed:
      close = difflib.get_close_matches(key, allowed, n=1)
      hint = f"; did you mean '{close[0]}'?" if close else ""
      raise ConfigError(f"runner.runtime_parameters: '{key}' cannot be a runtime parameter{hint} "
                        f"(allowed: {', '.join(allowed)})")


def with_runtime_parameters(config: BonsaiConfig) -> BonsaiConfig:
  """A copy of `config` whose `runner.runtime_parameters` settings are TFX RuntimeParameters
  (defaulting to the configured values), for create_pipeline to pass to the components."""
  from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top
  sections = {}
  for key in config.runner.runtime_parameters:
    section, name = key.split(".")
    value = getattr(config, section).__dict__[name]
    sections.setdefault(section, {})[name] = tfx.dsl.experimental.RuntimeParameter(
        name=runtime_parameter_name(key), ptype=type(value), default=value)
  return dataclasses.replace(config, **{
      section: dataclasses.replace(getattr(config, section), **fields)
      for section, fields in sections.items()})


# The pipeline's component ids (create_pipeline), for runner.resources.
COMPONENT_IDS = ("ImportExampleGen", "CsvExampleGen", "StatisticsGen", "SchemaGen", "Trainer",
                 "PruneTrainer", "TFLiteConverter", "SparsityValidator", "CompressionEvaluator",
                 "Pusher")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
_KMS_KEY = re.compile(r"projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+")
_NETWORK = re.compile(r"projects/[0-9]+/global/networks/[^/]+")


def _validate_vertex_options(runner: RunnerSection) -> None:
  for key, value in runner.labels.items():
    if not _LABEL_KEY.fullmatch(key):
      raise ConfigError(f"runner.labels.{key}: a label key must start with a lowercase letter and "
                        "have at most 63 lowercase letters, digits, '_' or '-'")
    if not _LABEL_VALUE.fullmatch(value):
      raise ConfigError(f"runner.labels.{key}: the value '{value}' must have at most 63 lowercase "
                        "letters, digits, '_' or '-'")
  if runner.encryption_key and not _KMS_KEY.fullmatch(runner.encryption_key):
    raise ConfigError("runner.encryption_key: must be a Cloud KMS key name "
                      "projects/P/locations/L/keyRings/R/cryptoKeys/K, "
                      f"got '{runner.encryption_key}'")
  if runner.network and not _NETWORK.fullmatch(runner.network):
    raise ConfigError("runner.network: must be projects/PROJECT_NUMBER/global/networks/NAME, "
                      f"got '{runner.network}'")
  for component, r in runner.resources.items():
    where = f"runner.resources.{component}"
    if component not in COMPONENT_IDS:
      close = difflib.get_close_matches(component, COMPONENT_IDS, n=1)
      hint = f"; did you mean '{close[0]}'?" if close else ""
      raise ConfigError(f"{where}: not a component of the pipeline{hint} "
                        f"(allowed: {', '.join(COMPONENT_IDS)})")
    if r.cpu < 0 or r.memory_gb < 0:
      raise ConfigError(f"{where}: cpu and memory_gb must be >= 0 (0: the default), "
                        f"got cpu={r.cpu}, memory_gb={r.memory_gb}")
    if bool(r.accelerator) != (r.accelerator_count > 0):
      raise ConfigError(f"{where}: accelerator and accelerator_count go together "
                        f"(e.g. NVIDIA_TESLA_T4 and 1), got '{r.accelerator}' and "
                        f"{r.accelerator_count}")
    if r.accelerator and not re.fullmatch(r"[A-Z][A-Z0-9_]+", r.accelerator):
      raise ConfigError(f"{where}.accelerator: must be a Vertex accelerator type such as "
                        f"NVIDIA_TESLA_T4 or NVIDIA_L4, got '{r.accelerator}'")


def search_budget(config: BonsaiConfig) -> float:
  """The search's accuracy budget: its own, or the gate's when negative."""
  own = config.pruning.search.max_accuracy_drop
  return config.gate.max_accuracy_drop if own < 0 else own


def search_config(config: BonsaiConfig):
  from tfx_bonsai.components.prune_trainer import search  # pylint: disable=g-import-not-at-top
  s = config.pruning.search
  return search.SearchConfig(levels=tuple(s.levels), max_accuracy_drop=search_budget(config),
                             max_trials=s.max_trials, time_budget_s=s.time_budget_s,
                             epochs_per_trial=s.epochs_per_trial)


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
