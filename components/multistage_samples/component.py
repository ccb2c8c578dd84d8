"""MultiStageSamples: the TFX component that mines training slates from logs.

The spec and keys live in `spec.py`, the Beam graph in `executor.py`, the
mining itself in the `mining` package. It is a Beam component so the
pipeline's `beam_pipeline_args` (DirectRunner locally, Dataflow in the
cloud) apply to it as to ExampleGen and Transform.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.multistage_samples import executor
from components.multistage_samples import spec
from contracts import config_io
from mining.config import MiningConfig


class MultiStageSamples(base_beam_component.BaseBeamComponent):
  """Mines multi-stage training slates from search logs.

  ## Example
  ```
  samples = MultiStageSamples(
      logs=logs_gen.outputs["examples"],
      catalog=catalog_gen.outputs["examples"],
      config=pipeline_config.mining)
  transform = Transform(examples=samples.outputs["examples"], ...)
  ```

  Component `outputs` contains:
   - `examples`: Examples with splits `train` and `eval` (by the hash of the
     query's canonical text), one slate per (query, clicked or ordered item),
     plus title pseudo-query slates in `train`; see `contracts/features.py`.
   - `report`: MiningReport with `counts.json` and `quarantine/`.
   - `cleaned_catalog`: Catalog, the catalogue mining used, as
     `catalog.csv`.
  """

  SPEC_CLASS = spec.MultiStageSamplesSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self,
               logs: types.BaseChannel,
               catalog: types.BaseChannel,
               config: Optional[MiningConfig] = None):
    """Constructs a MultiStageSamples component.

    Args:
      logs: Examples of search-log rows (one per impression); every split is
        read.
      catalog: Examples of catalogue rows (item_id, title, side features);
        every split is read.
      config: mining knobs; `MiningConfig()` defaults when None.
    """
    super().__init__(spec=spec.MultiStageSamplesSpec(
        **{
            spec.LOGS_KEY: logs,
            spec.CATALOG_KEY: catalog,
            spec.EXAMPLES_KEY: types.Channel(type=standard_artifacts.Examples),
            spec.REPORT_KEY: types.Channel(type=artifacts.MiningReport),
            spec.CLEANED_CATALOG_KEY: types.Channel(type=artifacts.Catalog),
        },
        **config_io.to_parameters(config or MiningConfig())))
