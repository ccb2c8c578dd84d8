"""Keys and spec of DataGate, shared by the component and executor.

One execution parameter per `ValidationConfig` field (`config_io`), plus
where the served data's statistics are and how to name the inputs.
"""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts
from contracts import config_io
from validation import schemas
from validation.config import ValidationConfig

# Inputs, per input of the pipeline (`schemas.INPUTS`): its statistics, the
# schema it was checked against and ExampleValidator's anomalies.
STATISTICS_SUFFIX = "_statistics"
SCHEMA_SUFFIX = "_schema"
ANOMALIES_SUFFIX = "_anomalies"
# Optional: the latest blessed model. The gate does not read it; it makes
# a new blessing (a new served version to compare with) invalidate a
# cached gate.
LATEST_BLESSED_MODEL_KEY = "latest_blessed_model"
# Outputs.
REPORT_KEY = "report"
# Parameters besides the config: the serving dir whose newest release is
# the drift reference, and JSON {input: {"files": ..., "schema": ...}}
# naming what the user gave, for messages.
SERVING_DIR_KEY = "serving_dir"
SOURCES_KEY = "sources"

REPORT_FILE = "data_gate.json"  # Inside the DataGateReport artifact.
# In the report: the log examples ExampleGen wrote, over every split, as the
# logs' statistics count them; the evaluator compares mining's rows read.
LOGS_EXAMPLES = "logs_examples"
DRIFT_SPLIT = "train"  # The logs split compared with the served data's.
ANOMALIES_FILE = "SchemaDiff.pb"  # ExampleValidator's, per split.
STATISTICS_FILE = "FeatureStats.pb"  # StatisticsGen's, per split.

PARAMETER_TYPES = config_io.parameter_types(ValidationConfig)


def key(input_name: str, suffix: str) -> str:
  return f"{input_name}{suffix}"


class DataGateSpec(types.ComponentSpec):
  """Inputs, outputs and parameters of DataGate."""
  PARAMETERS = {
      **{name: ExecutionParameter(type=kind)
         for name, kind in PARAMETER_TYPES.items()},
      SERVING_DIR_KEY: ExecutionParameter(type=str),
      SOURCES_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
      **{key(name, suffix): ChannelParameter(type=kind)
         for name in schemas.INPUTS
         for suffix, kind in (
             (STATISTICS_SUFFIX, standard_artifacts.ExampleStatistics),
             (SCHEMA_SUFFIX, standard_artifacts.Schema),
             (ANOMALIES_SUFFIX, standard_artifacts.ExampleAnomalies))},
      LATEST_BLESSED_MODEL_KEY: ChannelParameter(
          type=standard_artifacts.Model, optional=True),
  }
  OUTPUTS = {
      REPORT_KEY: ChannelParameter(type=artifacts.DataGateReport),
  }
