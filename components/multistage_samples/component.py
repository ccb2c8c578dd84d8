"""MultiStageSamples: the TFX component that mines training slates from logs.

Spec and artifacts live here; the Beam work is in `executor.py`. It is a Beam
component so the pipeline's `beam_pipeline_args` (DirectRunner locally,
Dataflow in the cloud) apply to it as to ExampleGen and Transform.
"""
import dataclasses
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components.multistage_samples import executor
from tfx_pipeline import configs


class MiningReport(types.Artifact):
  """What one mining run read, kept, set aside and produced.

  The log is the ground truth, so every row that did not become training data
  has to be accounted for: `counts.json` holds the counts (rows read and kept,
  rows set aside by reason, queries, examples, positives and slots by stage,
  catalogue errors) and `quarantine/` every set-aside row (gzip JSON lines:
  the row's columns plus `reason`). The headline counts are custom properties
  too, so they show in the metadata store without opening files.
  """
  TYPE_NAME = "mmse.MiningReport"  # KFP v2 wants namespace.Title.


class MultiStageSamplesSpec(types.ComponentSpec):
  """Inputs, outputs and parameters of MultiStageSamples.

  One execution parameter per `MiningConfig` field, typed as the field, so a
  knob has one name from the config to the executor.
  """
  PARAMETERS = {
      field.name: ExecutionParameter(type=field.type)
      for field in dataclasses.fields(configs.MiningConfig)
  }
  INPUTS = {
      executor.LOGS_KEY: ChannelParameter(type=standard_artifacts.Examples),
      executor.CATALOG_KEY: ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      executor.REPORT_KEY: ChannelParameter(type=MiningReport),
  }


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
   - `examples`: Examples with splits `train` and `eval` (by query hash), one
     slate per (query, clicked or ordered item); see `model/features.py`.
   - `report`: MiningReport with `counts.json` and `quarantine/`.
  """

  SPEC_CLASS = MultiStageSamplesSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self,
               logs: types.BaseChannel,
               catalog: types.BaseChannel,
               config: Optional[configs.MiningConfig] = None):
    """Constructs a MultiStageSamples component.

    Args:
      logs: Examples of search-log rows (one per impression); every split is
        read.
      catalog: Examples of catalogue rows (item_id, title, side features).
      config: mining knobs; `MiningConfig()` defaults when None.
    """
    config = config or configs.MiningConfig()
    parameters = {
        field.name: field.type(getattr(config, field.name))
        for field in dataclasses.fields(config)
    }
    super().__init__(spec=MultiStageSamplesSpec(
        logs=logs,
        catalog=catalog,
        examples=types.Channel(type=standard_artifacts.Examples),
        report=types.Channel(type=MiningReport),
        **parameters))
