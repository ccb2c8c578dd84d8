"""How a config dataclass travels: to a dict, to component parameters, back.

Every package owns its knobs as a frozen dataclass (`mining.config`,
`model.config`, `retrieval.config`, `evaluation.config`). Custom components
declare one execution parameter per field (`parameter_types`) and rebuild
the dataclass in the executor (`from_parameters`); the stock Transform and
Trainer take `to_dict` in `custom_config` and the run_fn rebuilds it with
`from_dict`. So a knob has one name and one default from `--set` to the
code that reads it.
"""
import dataclasses
import json
import typing
from typing import Any, Dict, Mapping, Optional, Type, TypeVar

Config = TypeVar("Config")

_PRIMITIVES = (int, float, str, bool)


def _is_tuple(field_type) -> bool:
  return typing.get_origin(field_type) is tuple


def from_dict(cls: Type[Config],
              values: Optional[Mapping[str, Any]] = None) -> Config:
  """`cls` from a (JSON-loaded) dict; missing keys take the defaults.

  Raises ValueError on a key `cls` does not have, so a misspelt knob fails
  loudly instead of being ignored.
  """
  values = dict(values or {})
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = set(values) - names
  if unknown:
    raise ValueError(f"Unknown {cls.__name__} keys: {sorted(unknown)}; "
                     f"known: {sorted(names)}")
  for f in dataclasses.fields(cls):
    if f.name not in values:
      continue
    if isinstance(values[f.name], list):
      values[f.name] = tuple(values[f.name])
    elif f.type is float and isinstance(values[f.name], int):
      values[f.name] = float(values[f.name])  # JSON writes 0.0 as 0.
  return cls(**values)


def to_dict(config) -> Dict[str, Any]:
  """The config as a JSON-compatible dict (tuples become lists)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def parameter_types(cls) -> Dict[str, type]:
  """{field: parameter type}: primitives as they are, tuples as JSON str."""
  types = {}
  for f in dataclasses.fields(cls):
    if f.type in _PRIMITIVES:
      types[f.name] = f.type
    elif _is_tuple(f.type):
      types[f.name] = str
    else:
      raise TypeError(f"{cls.__name__}.{f.name}: {f.type} cannot travel as "
                      "a component parameter")
  return types


def to_parameters(config) -> Dict[str, Any]:
  """Execution-parameter values of `config` (see `parameter_types`)."""
  values = {}
  for f in dataclasses.fields(config):
    value = getattr(config, f.name)
    values[f.name] = (json.dumps(list(value)) if _is_tuple(f.type)
                      else f.type(value))
  return values


def from_parameters(cls: Type[Config],
                    exec_properties: Mapping[str, Any]) -> Config:
  """`cls` from an executor's exec_properties; other keys are ignored."""
  values = {}
  for f in dataclasses.fields(cls):
    value = exec_properties.get(f.name)
    if value is None:
      continue
    values[f.name] = json.loads(value) if _is_tuple(f.type) else value
  return from_dict(cls, values)
