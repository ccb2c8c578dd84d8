"""DataGate: each input against its schema, the logs against the served data.

ExampleValidator finds the anomalies; this component decides what they
mean. An input that fails its schema stops the run here, before mining,
with one message in a user's words; otherwise the logs' statistics are
compared with those the served version was trained on, and the drift goes
to the evaluator's blessing through the `report` (see `executor`).
"""
import json
from typing import Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec

from components import artifacts
from components.data_gate import executor
from components.data_gate import spec
from contracts import config_io
from validation.config import ValidationConfig


class DataGate(base_component.BaseComponent):
  """Stops a run on inputs that fail their schema; measures drift.

  ## Example
  ```
  gate = DataGate(
      channels={"logs_statistics": ..., "logs_schema": ...,
                "logs_anomalies": ..., "catalog_statistics": ..., ...},
      sources={"logs": {"files": "/logs/*.csv.gz", "schema": "logs.pbtxt"},
               "catalog": {"files": "catalog.csv", "schema": ...}},
      serving_dir="/outputs/serving")
  ```

  Component `outputs` contains `report`: a DataGateReport.
  """

  SPEC_CLASS = spec.DataGateSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               channels: Dict[str, types.BaseChannel],
               sources: Dict[str, Dict[str, str]],
               serving_dir: str,
               config: Optional[ValidationConfig] = None,
               latest_blessed_model: Optional[types.BaseChannel] = None):
    """Constructs a DataGate.

    Args:
      channels: per input of `validation.schemas.INPUTS`, its
        ExampleStatistics, Schema and ExampleAnomalies, under
        `spec.key(input, suffix)`.
      sources: per input, the files and schema file a user gave (messages
        name them).
      serving_dir: where the pusher publishes; its newest release's
        training statistics are the drift reference.
      config: drift thresholds; `ValidationConfig()` when None.
      latest_blessed_model: the latest blessed `Model`, so that a cached gate
        is not reused once another model serves.
    """
    super().__init__(spec=spec.DataGateSpec(
        **channels,
        **{spec.REPORT_KEY: types.Channel(type=artifacts.DataGateReport),
           spec.LATEST_BLESSED_MODEL_KEY: latest_blessed_model,
           spec.SERVING_DIR_KEY: serving_dir,
           spec.SOURCES_KEY: json.dumps(sources, sort_keys=True)},
        **config_io.to_parameters(config or ValidationConfig())))
