"""Each setting is defined once: spec PARAMETERS, constructor defaults, executor and YAML agree."""
import dataclasses
import inspect

import pytest
from tfx import types

from tfx_bonsai.components.common import settings as settings_lib
from tfx_bonsai.components.compression_evaluator import component as evaluator_component
from tfx_bonsai.components.compression_evaluator import settings as evaluator_settings
from tfx_bonsai.components.compression_evaluator import spec as evaluator_spec
from tfx_bonsai.components.prune_trainer import component as prune_component
from tfx_bonsai.components.prune_trainer import settings as prune_settings
from tfx_bonsai.components.prune_trainer import spec as prune_spec
from tfx_bonsai.components.sparsity_validator import component as validator_component
from tfx_bonsai.components.sparsity_validator import settings as validator_settings
from tfx_bonsai.components.sparsity_validator import spec as validator_spec
from tfx_bonsai.components.tflite_converter import component as converter_component
from tfx_bonsai.components.tflite_converter import settings as converter_settings
from tfx_bonsai.components.tflite_converter import spec as converter_spec
from tfx_bonsai.pipeline import config as config_lib

COMPONENTS = [
    # (component, settings, spec module, YAML section)
    (prune_component.PruneTrainer, prune_settings.PruneTrainerSettings, prune_spec, "pruning"),
    (validator_component.SparsityValidator, validator_settings.SparsityValidatorSettings,
     validator_spec, "sparsity"),
    (converter_component.TFLiteConverter, converter_settings.TFLiteConverterSettings,
     converter_spec, "conversion"),
    (evaluator_component.CompressionEvaluator,
     evaluator_settings.CompressionEvaluatorSettings, evaluator_spec, "gate"),
]
IDS = [c[0].__name__ for c in COMPONENTS]
BASE = {"pipeline_root": "runs/x/pipeline", "push": {"destination": "runs/x/serving"},
        "data": {"path": "runs/x/data", "embedded": "digits"}}


def _channels(component_cls):
  """Channels for the component's required inputs."""
  spec_cls = component_cls.SPEC_CLASS
  return {name: types.Channel(type=p.type) for name, p in spec_cls.INPUTS.items()
          if not p.optional}


def _yaml_value(section, path: str):
  node = section
  for part in path.split("."):
    node = getattr(node, part)
  return node


@pytest.mark.parametrize("component_cls, settings_cls, spec_module, section", COMPONENTS, ids=IDS)
def test_spec_parameters_and_constants_are_the_settings_fields(component_cls, settings_cls,
                                                               spec_module, section):
  fields = {f.name for f in dataclasses.fields(settings_cls)}
  assert set(component_cls.SPEC_CLASS.PARAMETERS) == fields
  # The spec module's parameter-name constants name settings fields (no stray copies).
  constants = {value for name, value in vars(spec_module).items()
               if name.endswith("_KEY") and value not in component_cls.SPEC_CLASS.INPUTS
               and value not in component_cls.SPEC_CLASS.OUTPUTS}
  assert constants <= fields, constants - fields


@pytest.mark.parametrize("component_cls, settings_cls, spec_module, section", COMPONENTS, ids=IDS)
def test_constructor_defaults_are_the_settings_defaults(component_cls, settings_cls, spec_module,
                                                        section):
  defaults = settings_cls.defaults()
  signature = inspect.signature(component_cls.__init__).parameters
  assert set(defaults) <= set(signature)
  for name, default in defaults.items():
    given = signature[name].default
    # None stands for the default where it is mutable (a list, a dict) or empty.
    assert given == default or (given is None and (isinstance(default, (list, dict))
                                                   or default == "")), name
  component = component_cls(**_channels(component_cls),
                            **({"quantization": "dynamic"}
                               if component_cls is converter_component.TFLiteConverter else {}))
  expected = settings_cls(**({"quantization": "dynamic"}
                             if component_cls is converter_component.TFLiteConverter else {}))
  assert component.exec_properties == expected.to_exec_properties()


@pytest.mark.parametrize("component_cls, settings_cls, spec_module, section", COMPONENTS, ids=IDS)
def test_yaml_defaults_are_the_settings_defaults(component_cls, settings_cls, spec_module, section):
  """The drift this catches: conversion.sparse_weights defaulted to true in the YAML only."""
  yaml_section = getattr(config_lib.BonsaiConfig(), section)
  defaults = settings_cls.defaults()
  for name, path in settings_cls.config_paths().items():
    if path.startswith("search."):  # the YAML's search defaults: levels to try, the gate's budget
      continue
    assert _yaml_value(yaml_section, path) == defaults[name], f"{section}.{path}"


def test_conversion_sparse_weights_defaults_agree():
  config = config_lib.load(base=BASE)
  assert config.conversion.sparse_weights is False
  assert config_lib.tflite_converter_settings(config).sparse_weights is False


@pytest.mark.parametrize("override, component_cls, arguments, key", [
    # Both accepted by the config before, refused by the component with a traceback.
    ("gate.max_relative_accuracy_drop=1.0", evaluator_component.CompressionEvaluator,
     {"max_relative_accuracy_drop": 1.0}, "max_relative_accuracy_drop"),
    # Never checked by the config before.
    ("conversion.max_abs_error=0", converter_component.TFLiteConverter,
     {"max_abs_error": 0.0, "quantization": "dynamic"}, "max_abs_error"),
    ("conversion.max_abs_error=-0.5", converter_component.TFLiteConverter,
     {"max_abs_error": -0.5, "quantization": "dynamic"}, "max_abs_error"),
    ("sparsity.tolerance=1.5", validator_component.SparsityValidator, {"tolerance": 1.5},
     "tolerance"),
    ("pruning.collaborative.learning_rate=0", prune_component.PruneTrainer,
     {"collaborative_learning_rate": 0.0}, "collaborative_learning_rate"),
    # Issue 13's heads and metrics, settings fields like the others.
    ("pruning.head=sigmoid", prune_component.PruneTrainer, {"head": "sigmoid"}, "head"),
    ("pruning.metric=mse", prune_component.PruneTrainer, {"metric": "mse"}, "metric"),
    ("conversion.head=sigmoid", converter_component.TFLiteConverter,
     {"head": "sigmoid", "quantization": "dynamic"}, "head"),
    ("gate.metric=mse", evaluator_component.CompressionEvaluator, {"metric": "mse"}, "metric"),
    ("gate.max_metric_increase=-0.1", evaluator_component.CompressionEvaluator,
     {"max_metric_increase": -0.1}, "max_metric_increase"),
])
def test_config_and_component_refuse_the_same_values_with_the_same_message(
    override, component_cls, arguments, key):
  with pytest.raises(settings_lib.SettingsError) as from_component:
    component_cls(**_channels(component_cls), **arguments)
  assert from_component.value.key == key
  section_key = override.split("=")[0]
  with pytest.raises(config_lib.ConfigError) as from_config:
    config_lib.load(base=BASE, overrides=[override])
  assert str(from_config.value) == f"{section_key}: {from_component.value.message}"
  assert str(from_component.value) == f"{key} {from_component.value.message}"


def test_max_relative_accuracy_drop_of_one_is_refused_by_the_config():
  with pytest.raises(config_lib.ConfigError,
                     match=r"^gate.max_relative_accuracy_drop: must be in \[0, 1\) \(0 turns it "
                           r"off\), got 1.0$"):
    config_lib.load(base=BASE, overrides=["gate.max_relative_accuracy_drop=1.0"])


def test_conversion_max_abs_error_is_checked_by_the_config():
  with pytest.raises(config_lib.ConfigError, match=r"^conversion.max_abs_error: must be > 0, got 0.0$"):
    config_lib.load(base=BASE, overrides=["conversion.max_abs_error=0"])


def test_runtime_parameter_keys_are_the_scalar_settings_in_yaml():
  keys = config_lib.runtime_parameter_keys()
  assert {"gate.max_accuracy_drop", "pruning.target_sparsity", "conversion.quantization",
          "conversion.sparse_weights", "sparsity.min_sparsity",
          "pruning.collaborative.clusters"} <= set(keys)
  assert "pruning.include_layers" not in keys            # a list
  assert "sparsity.per_layer_min_sparsity" not in keys   # a mapping
  assert not any(k.endswith("label_key") for k in keys)  # wired from data.label_key


def test_head_and_metric_must_go_together():
  with pytest.raises(settings_lib.SettingsError,
                     match=r"^metric must be one of \['mae', 'rmse'\] for head 'regression', "
                           r"got 'accuracy'$"):
    evaluator_settings.CompressionEvaluatorSettings(head="regression", metric="accuracy").validate()
  with pytest.raises(config_lib.ConfigError,
                     match=r"^pruning.metric: 'mae' needs head 'regression'; a 'binary' head is "
                           r"scored by 'accuracy'$"):
    config_lib.load(base=BASE, overrides=["pruning.head=binary", "pruning.metric=mae"])
  config = config_lib.load(base=BASE, overrides=["gate.head=regression", "gate.metric=rmse",
                                                 "gate.max_metric_increase=0.2"])
  gate = config_lib.compression_evaluator_settings(config)
  assert (gate.head, gate.metric, gate.max_metric_increase) == ("regression", "rmse", 0.2)
