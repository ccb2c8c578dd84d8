"""Keys and spec of MultiStageSamples, shared by the component and executor.

One execution parameter per `MiningConfig` field, typed as the field
(`config_io.parameter_types`), so a knob has one name from the config to the
executor.
"""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts
from contracts import config_io
from mining.config import MiningConfig

# Inputs: Examples of search-log rows and of catalogue rows.
LOGS_KEY = "logs"
CATALOG_KEY = "catalog"
# Outputs: the mined slates, the report, and the catalogue as cleaned (an
# output key may not repeat an input key).
EXAMPLES_KEY = "examples"
REPORT_KEY = "report"
CLEANED_CATALOG_KEY = "cleaned_catalog"

# Layout of the MiningReport artifact.
COUNTS_FILE = "counts.json"
QUARANTINE_DIR = "quarantine"
LOGS_QUARANTINE = "logs"  # File prefixes inside QUARANTINE_DIR.
CATALOG_QUARANTINE = "catalog"

PARAMETER_TYPES = config_io.parameter_types(MiningConfig)


class MultiStageSamplesSpec(types.ComponentSpec):
  """Inputs, outputs and parameters of MultiStageSamples."""
  PARAMETERS = {
      name: ExecutionParameter(type=kind)
      for name, kind in PARAMETER_TYPES.items()
  }
  INPUTS = {
      LOGS_KEY: ChannelParameter(type=standard_artifacts.Examples),
      CATALOG_KEY: ChannelParameter(type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      REPORT_KEY: ChannelParameter(type=artifacts.MiningReport),
      CLEANED_CATALOG_KEY: ChannelParameter(type=artifacts.Catalog),
  }
