"""Config dataclasses to component parameters and back."""
import dataclasses
from typing import Tuple

import pytest

from contracts import config_io


@dataclasses.dataclass(frozen=True)
class _Config:
  count: int = 3
  rate: float = 0.5
  name: str = "x"
  on: bool = True
  cutoffs: Tuple[int, ...] = (10, 100)


def test_parameters_round_trip():
  config = _Config(count=4, rate=1.0, cutoffs=(5,))
  assert config_io.parameter_types(_Config) == {
      "count": int, "rate": float, "name": str, "on": bool, "cutoffs": str}
  parameters = config_io.to_parameters(config)
  assert parameters["cutoffs"] == "[5]"
  assert config_io.from_parameters(_Config, {**parameters, "other": 1}) == (
      config)


def test_dict_round_trip_and_json_ints():
  config = _Config(rate=2.0)
  assert config_io.from_dict(_Config, config_io.to_dict(config)) == config
  restored = config_io.from_dict(_Config, {"rate": 0})
  assert isinstance(restored.rate, float)


def test_unknown_key_fails():
  with pytest.raises(ValueError, match="Unknown _Config keys"):
    config_io.from_dict(_Config, {"cuttofs": [1]})
