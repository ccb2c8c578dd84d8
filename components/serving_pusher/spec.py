"""Keys and spec of ServingPusher, shared by the component and executor."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts

# Inputs: the towers, the `retrieval` model and index built from them, and
# the evaluator's blessing of that pair.
MODEL_KEY = "model"
INDEX_KEY = "index"
MODEL_BLESSING_KEY = "model_blessing"
# The run's mined examples and cleaned catalogue: their queries and rows
# become each pushed version's warm-up requests.
EXAMPLES_KEY = "examples"
CATALOG_KEY = "catalog"
# Optional: the statistics of the run's logs, pushed inside the query tower
# version as the next run's drift reference.
LOGS_STATISTICS_KEY = "logs_statistics"
# Output: the stock Pusher's record of what was pushed.
PUSHED_MODEL_KEY = "pushed_model"
# Root of the TF Serving model directory (local path or URI).
SERVING_DIR_KEY = "serving_dir"


class ServingPusherSpec(types.ComponentSpec):
  """Inputs, outputs and parameters of ServingPusher."""
  PARAMETERS = {
      SERVING_DIR_KEY: ExecutionParameter(type=str),
  }
  INPUTS = {
      MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      INDEX_KEY: ChannelParameter(type=artifacts.RetrievalIndex),
      MODEL_BLESSING_KEY: ChannelParameter(
          type=standard_artifacts.ModelBlessing),
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      CATALOG_KEY: ChannelParameter(type=artifacts.Catalog),
      LOGS_STATISTICS_KEY: ChannelParameter(
          type=standard_artifacts.ExampleStatistics, optional=True),
  }
  OUTPUTS = {
      PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel),
  }
