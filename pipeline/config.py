"""The pipeline's typed configuration: loaded from YAML, overridden with key.path=value, validated.

Every error is a ConfigError naming the key path (e.g. `pruning.target_sparsity`) and the
allowed values, raised before any pipeline work starts.
"""
import copy
import dataclasses
import difflib
import logging
import os
import re
import typing
from typing import Any, Dict, List, Optional

import yaml

from tfx_bonsai.components.common import roles
from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.compression_evaluator import settings as evaluator_settings
from tfx_bonsai.components.prune_trainer import settings as prune_settings
from tfx_bonsai.components.sparsity_validator import settings as sparsity_settings
from tfx_bonsai.components.tflite_converter import settings as converter_settings
from tfx_bonsai.pipeline import models


class ConfigError(ValueError):
  """An invalid configuration value, naming its key path and what is allowed."""


@dataclasses.dataclass
class DataConfig:
  path: str = ""                      # ExampleGen input_base
  format: str = "tfrecord"            # tfrecord | csv
  embedded: str = ""                  # "" | models.EMBEDDED: export the embedded set to `path` first
  label_key: str = "label"
  schema: str = ""                    # a schema.pbtxt: ImportSchemaGen instead of
                                      # StatisticsGen + SchemaGen ("": infer it each run)
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


# pruning.search's placeholders for "the gate's value" (search_budget, search_decision).
GATES_BUDGET = -1.0   # search.max_accuracy_drop < 0: the gate's max_accuracy_drop
GATES_DECISION = ""   # search.accuracy_decision "": the gate's accuracy_decision


def _section(name: str, settings_cls, group: str = "", extra=(), defaults=None):
  """The YAML section of a component: its settings fields whose config path is in `group`,
  with their types and defaults (`defaults` overrides some), plus `extra` config-only fields."""
  paths = settings_cls.config_paths()
  hints = settings_cls.types()
  fields = []
  for f in dataclasses.fields(settings_cls):
    path = paths.get(f.name)
    if path is None or (path.rsplit(".", 1)[0] if "." in path else "") != group:
      continue
    key = path.rsplit(".", 1)[-1]
    if defaults and key in defaults:
      default = dataclasses.field(default_factory=lambda v=defaults[key]: copy.deepcopy(v))
    elif f.default_factory is not dataclasses.MISSING:
      default = dataclasses.field(default_factory=f.default_factory)
    else:
      default = dataclasses.field(default=f.default)
    fields.append((key, hints[f.name], default))
  return dataclasses.make_dataclass(name, fields + list(extra), module=__name__)


SearchSection = _section(
    "SearchSection", prune_settings.PruneTrainerSettings, "search",
    extra=[("enabled", bool, dataclasses.field(default=False))],
    defaults={"levels": list(prune_settings.DEFAULT_SEARCH_LEVELS),
              "max_accuracy_drop": GATES_BUDGET,
              "accuracy_decision": GATES_DECISION})
CollaborativeSection = _section("CollaborativeSection", prune_settings.PruneTrainerSettings,
                                "collaborative")
# pruning.selection_split and conversion.agreement_split pick which of the pipeline's SPLITS
# plays the selection role; they are wired into PruneTrainer's eval_split and TFLiteConverter's
# agreement_split (config-only keys: the pipeline's default is its selection split, where the
# components on their own default to the stock ExampleGen's 'eval').
PruningSection = _section("PruningSection", prune_settings.PruneTrainerSettings, extra=[
    # validation and the search; never the gate's split
    ("selection_split", str, dataclasses.field(default=SELECTION_SPLIT)),
    ("search", SearchSection, dataclasses.field(default_factory=SearchSection)),
    ("collaborative", CollaborativeSection, dataclasses.field(default_factory=CollaborativeSection))])
SparsitySection = _section("SparsitySection", sparsity_settings.SparsityValidatorSettings)
ConversionSection = _section("ConversionSection", converter_settings.TFLiteConverterSettings,
                             extra=[("agreement_split", str,
                                      dataclasses.field(default=SELECTION_SPLIT))])
GateSection = _section("GateSection", evaluator_settings.CompressionEvaluatorSettings)


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
  """Checks every value with the components' own settings rules; raises ConfigError."""
  if not config.pipeline_name:
    raise ConfigError("pipeline_name: must be a non-empty string")
  if not config.pipeline_root:
    raise ConfigError("pipeline_root: must be set (a directory or gs:// URI for the run's artifacts)")
  if not config.data.path:
    raise ConfigError("data.path: must be set (the directory ExampleGen reads)")
  if config.data.format not in ("tfrecord", "csv"):
    raise ConfigError(f"data.format: must be one of ['tfrecord', 'csv'], got '{config.data.format}'")
  problem = models.embedded_problem(config.data.embedded)
  if problem:
    raise ConfigError(f"data.embedded: {problem}")
  if not config.data.embedded and "://" not in config.data.path and not os.path.isdir(config.data.path):
    raise ConfigError(f"data.path: '{config.data.path}' is not a directory")
  if not config.data.label_key:
    raise ConfigError("data.label_key: must name the label feature")
  if config.data.schema:
    validate_schema(config.data.schema, config.data.label_key)
  for key in ("train_buckets", "selection_buckets", "eval_buckets"):
    if getattr(config.data, key) < 1:
      raise ConfigError(f"data.{key}: must be >= 1, got {getattr(config.data, key)}")
  for path, value in (("pruning.selection_split", config.pruning.selection_split),
                      ("conversion.agreement_split", config.conversion.agreement_split),
                      ("gate.eval_split", config.gate.eval_split)):
    if value not in SPLITS:
      raise ConfigError(f"{path}: must be one of {list(SPLITS)}, got '{value}'")
  if bool(config.trainer.run_fn) == bool(config.trainer.module_file):
    raise ConfigError("trainer: set exactly one of trainer.run_fn (an importable path) or "
                      "trainer.module_file (a file with run_fn)")
  for key in ("train_steps", "eval_steps"):
    if getattr(config.trainer, key) < 1:
      raise ConfigError(f"trainer.{key}: must be >= 1, got {getattr(config.trainer, key)}")
  for section, make in _COMPONENT_SETTINGS.items():
    try:
      make(config).validate()
    except settings_lib.SettingsError as e:
      raise _config_error(section, type(make(config)), e) from e
  _validate_data_roles(config)
  if config.pruning.collaborative.qat_epochs and config.conversion.quantization != "int8":
    raise ConfigError("pruning.collaborative.qat_epochs: quantization-aware training needs "
                      f"conversion.quantization 'int8', got '{config.conversion.quantization}'")
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


# The YAML key that sets each upstream use's split (absent: wired by the pipeline to `train`).
_ROLE_KEYS = {("Trainer", "eval_args"): "pruning.selection_split",
              ("PruneTrainer", "eval_split"): "pruning.selection_split",
              ("TFLiteConverter", "agreement_split"): "conversion.agreement_split"}


def data_uses(config: BonsaiConfig) -> List[roles.Use]:
  """Every split the pipeline's components before the gate fit or select on (roles.Use)."""
  trainer = [roles.Use(TRAIN_SPLIT, roles.FIT, "Trainer", "train_args", "trains on it"),
             roles.Use(config.pruning.selection_split, roles.SELECTION, "Trainer", "eval_args",
                       "validates on it (its run_fn may stop early there)")]
  return (trainer + roles.prune_trainer_uses(prune_trainer_settings(config))
          + roles.converter_uses(tflite_converter_settings(config)))


def _validate_data_roles(config: BonsaiConfig) -> None:
  """Refuses a gate.eval_split that a component before the gate fits or selects on, unless
  gate.allow_shared_splits (then logs it; the gate records it in its verdict)."""
  split = config.gate.eval_split
  shared = roles.on_split(data_uses(config), split)
  if not shared:
    return
  used = "; ".join(f"{u.component} {u.purpose}" + (
      f" ({_ROLE_KEYS[u.component, u.parameter]}='{split}')"
      if (u.component, u.parameter) in _ROLE_KEYS else "") for u in dict.fromkeys(shared))
  if config.gate.allow_shared_splits:
    logging.getLogger(__name__).warning(
        "gate.allow_shared_splits: the gate judges on '%s', which shaped the model: %s", split,
        used)
    return
  keys = [k for k in dict.fromkeys(_ROLE_KEYS.get((u.component, u.parameter)) for u in shared) if k]
  if keys:
    other = next(s for s in SPLITS if s not in (split, TRAIN_SPLIT))
    way = f"set {' and '.join(keys)} to another split (e.g. '{other}')"
  else:
    unused = [s for s in SPLITS if not roles.on_split(data_uses(config), s)]
    way = f"set gate.eval_split to a split nothing upstream uses ({', '.join(map(repr, unused))})"
  raise ConfigError(
      f"{(keys or ['gate.eval_split'])[0]}: the gate would judge on split '{split}' "
      f"(gate.eval_split), which shaped the model it judges: {used}. Its accuracy there is "
      f"biased upwards; {way} so the gate judges on examples nothing upstream saw, or accept "
      "the bias with gate.allow_shared_splits: true (logged, and recorded in the verdict)")


def read_schema(path: str, key: str = "data.schema"):
  """The TFMD Schema in the local text file `path`; ConfigError naming `key`."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise ConfigError(f"{key}: no such file '{path}' (a schema.pbtxt, e.g. the one SchemaGen "
                      "wrote in an earlier run; a relative path is taken from the current "
                      "directory)")
  with open(path) as f:
    try:
      return text_format.Parse(f.read(), schema_pb2.Schema())
    except (text_format.ParseError, UnicodeDecodeError) as e:
      raise ConfigError(f"{key}: '{path}' is not a TFMD Schema in text format "
                        f"(schema.pbtxt): {e}") from e


def validate_schema(path: str, label_key: str, key: str = "data.schema") -> None:
  """A schema file ImportSchemaGen can use: parses, has the label. A gs:// (or other remote)
  URI is read by ImportSchemaGen when the run starts, so it is not checked here."""
  if "://" in path:
    return
  schema = read_schema(path, key)
  names = [f.name for f in schema.feature]
  if not names:
    raise ConfigError(f"{key}: '{path}' has no features")
  if label_key not in names:
    raise ConfigError(f"{key}: '{path}' has no feature '{label_key}' (data.label_key); "
                      f"its features are {names}")


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


# The pipeline's component ids (create_pipeline), for runner.resources.
COMPONENT_IDS = ("ImportExampleGen", "CsvExampleGen", "StatisticsGen", "SchemaGen",
                 "ImportSchemaGen", "Trainer", "PruneTrainer", "TFLiteConverter",
                 "SparsityValidator", "CompressionEvaluator", "Pusher")
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


def search_decision(config: BonsaiConfig) -> str:
  """The search's accuracy_decision: its own, or the gate's when empty."""
  return config.pruning.search.accuracy_decision or config.gate.accuracy_decision


# Config keys the pipeline wires into settings fields outside their component's section.
_WIRED = {"label_key": "data.label_key", "sparsity_m_by_n": "pruning.sparsity_m_by_n"}


def _config_error(section: str, settings_cls, error: settings_lib.SettingsError) -> ConfigError:
  """The settings error as `section.key: message`, naming the YAML key."""
  path = settings_cls.config_paths().get(error.key)
  if path is not None:
    return ConfigError(f"{section}.{path}: {error.message}")
  if error.key in _WIRED:
    return ConfigError(f"{_WIRED[error.key]}: {error.message}")
  return ConfigError(f"{section}: {error}")


def _section_values(section, settings_cls, group: str = "") -> Dict[str, Any]:
  """{settings field: value} for the fields a YAML section (or its `group`) sets."""
  values = {}
  for name, path in settings_cls.config_paths().items():
    prefix, _, key = path.rpartition(".")
    if prefix == group:
      values[name] = copy.deepcopy(getattr(section, key))
  return values


def prune_trainer_settings(config: BonsaiConfig) -> prune_settings.PruneTrainerSettings:
  """PruneTrainer's settings from `pruning:` (search only when `pruning.search.enabled`)."""
  cls = prune_settings.PruneTrainerSettings
  values = dict(_section_values(config.pruning, cls),
                **_section_values(config.pruning.collaborative, cls, "collaborative"))
  if config.pruning.search.enabled:
    values.update(_section_values(config.pruning.search, cls, "search"),
                  search_accuracy_decision=search_decision(config))
  # The budget PruneTrainer refuses a collapse past, searching or not.
  values["search_max_accuracy_drop"] = search_budget(config)
  return cls(label_key=config.data.label_key, train_split=TRAIN_SPLIT,
             eval_split=config.pruning.selection_split, **values)


def sparsity_validator_settings(config: BonsaiConfig) -> sparsity_settings.SparsityValidatorSettings:
  cls = sparsity_settings.SparsityValidatorSettings
  return cls(sparsity_m_by_n=config.pruning.sparsity_m_by_n,
             **_section_values(config.sparsity, cls))


def tflite_converter_settings(config: BonsaiConfig) -> converter_settings.TFLiteConverterSettings:
  cls = converter_settings.TFLiteConverterSettings
  return cls(label_key=config.data.label_key, representative_split=TRAIN_SPLIT,
             agreement_split=config.conversion.agreement_split,
             **_section_values(config.conversion, cls))


def compression_evaluator_settings(
    config: BonsaiConfig) -> evaluator_settings.CompressionEvaluatorSettings:
  cls = evaluator_settings.CompressionEvaluatorSettings
  return cls(label_key=config.data.label_key, **_section_values(config.gate, cls))


# YAML section -> the settings of the component it configures.
# The gate first: PruneTrainer's budget defaults to the gate's.
_COMPONENT_SETTINGS = {
    "gate": compression_evaluator_settings,
    "pruning": prune_trainer_settings,
    "sparsity": sparsity_validator_settings,
    "conversion": tflite_converter_settings,
}


def search_config(config: BonsaiConfig) -> prune_settings.SearchConfig:
  """The search as the pure module takes it (levels from the config even when disabled)."""
  s = config.pruning.search
  return prune_settings.SearchConfig(
      levels=tuple(s.levels), max_accuracy_drop=search_budget(config), max_trials=s.max_trials,
      time_budget_s=s.time_budget_s, epochs_per_trial=s.epochs_per_trial,
      accuracy_decision=search_decision(config), max_layer_sparsity=s.max_layer_sparsity)


def runtime_parameter_keys() -> List[str]:
  """The YAML keys whose value can be a pipeline RuntimeParameter (set at submit time).

  The scalar settings of the four components, e.g. `gate.max_accuracy_drop`; each
  component checks the value it gets when the run starts.
  """
  keys = []
  for section, make in _COMPONENT_SETTINGS.items():
    cls = typing.get_type_hints(make)["return"]
    keys += settings_lib.section_keys(cls, section)
  return keys


def runtime_parameter_defaults(config: BonsaiConfig, keys: List[str]) -> Dict[str, Any]:
  """{pipeline parameter name: the value its component gets from the config} for YAML keys
  (booleans as 0/1): the search's "the gate's" placeholders (max_accuracy_drop < 0,
  accuracy_decision "") resolved as the component's settings resolve them."""
  values = {}
  for section, make in _COMPONENT_SETTINGS.items():
    settings = make(config)
    for name, path in type(settings).config_paths().items():
      values[f"{section}.{path}"] = getattr(settings, name)
  defaults = {}
  for key in keys:
    value = values[key]
    defaults[runtime_parameter_name(key)] = int(value) if isinstance(value, bool) else value
  return defaults


def runtime_parameter_name(key: str) -> str:
  """The pipeline parameter's name for a YAML key: `gate.max_accuracy_drop` -> `gate_max_accuracy_drop`."""
  return key.replace(".", "_")


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
