"""Keys and spec of IndexBuilder, shared by the component and executor.

One execution parameter per `IndexConfig` field, typed as the field
(`config_io.parameter_types`), so a knob has one name from the config to the
executor.
"""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts
from contracts import config_io
from retrieval.config import IndexConfig

# Inputs: the Trainer's towers and the cleaned catalogue mining wrote.
MODEL_KEY = "model"
CATALOG_KEY = "catalog"
# Output: `retrieval/` (SavedModel with the ANN index in assets.extra/index/).
INDEX_KEY = "index"

# Custom properties of the index artifact.
NUM_ITEMS_PROPERTY = "num_items"
EMBEDDING_DIM_PROPERTY = "embedding_dim"
INDEX_KIND_PROPERTY = "index_kind"
K_PROPERTY = "k"
SET_ASIDE_PROPERTY = "catalog_rows_set_aside"

PARAMETER_TYPES = config_io.parameter_types(IndexConfig)


class IndexBuilderSpec(types.ComponentSpec):
  """Inputs, outputs and parameters of IndexBuilder."""
  PARAMETERS = {
      name: ExecutionParameter(type=kind)
      for name, kind in PARAMETER_TYPES.items()
  }
  INPUTS = {
      MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      CATALOG_KEY: ChannelParameter(type=artifacts.Catalog),
  }
  OUTPUTS = {
      INDEX_KEY: ChannelParameter(type=artifacts.RetrievalIndex),
  }
