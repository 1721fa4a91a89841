"""Settings on the TFX side: ComponentSpec PARAMETERS and constructor values from a Settings class."""
import typing
from typing import Any, Dict, List, Type

from tfx.types import component_spec

from tfx_bonsai.components.common import settings as settings_lib


def execution_parameters(
    settings_cls: Type[settings_lib.Settings]) -> Dict[str, component_spec.ExecutionParameter]:
  """A ComponentSpec's PARAMETERS: one per settings field (booleans as int, lists and dicts typed).

  Every parameter is optional: an absent one takes the settings default in the executor.
  """
  parameters = {}
  for name, tp in settings_cls.types().items():
    if tp is bool:
      tp = int
    elif typing.get_origin(tp) in (list, tuple):
      tp = List[typing.get_args(tp)[0]]
    elif typing.get_origin(tp) is not None:
      tp = Dict[typing.get_args(tp)[0], typing.get_args(tp)[1]]
    parameters[name] = component_spec.ExecutionParameter(type=tp, optional=True)
  return parameters


def component_settings(settings_cls: Type[settings_lib.Settings],
                       values: Dict[str, Any]) -> settings_lib.Settings:
  """The validated settings a component was constructed with.

  `values` may hold other names (a constructor's locals()); None takes the default.
  Plain values are checked now; a RuntimeParameter must have its field's type (bools as
  int) and is checked by the executor once the pipeline run resolves it.
  """
  types = settings_cls.types()
  values = {name: value for name, value in values.items()
            if name in types and value is not None}
  for name, value in values.items():
    if settings_lib.is_runtime_parameter(value):
      expected = int if types[name] is bool else types[name]
      if name not in settings_cls.runtime_keys():
        raise settings_cls.error(name, "cannot be a RuntimeParameter (only scalar parameters can)")
      if value.ptype is not expected:
        raise settings_cls.error(
            name, f"must be a RuntimeParameter of ptype {expected.__name__}, got "
                  f"{getattr(value.ptype, '__name__', value.ptype)}")
  return settings_cls(**values).validate()
