"""ServingPusher: the stock Pusher's contract for MMSE's three SavedModels.

TFX's Pusher copies one model directory to `<base>/<version>/`. MMSE serves
three models side by side (`query_tower`, `item_tower`, `retrieval` with its
ANN index), each at `<serving_dir>/<name>/<version>/`, plus a
`models.config` naming them (`contracts.serving_layout`). This component
keeps the Pusher's behaviour - push only what the evaluator blessed, record
a PushedModel - with that layout, and gives every pushed version TF
Serving's warm-up file (`contracts.serving_warmup`).
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components.serving_pusher import executor
from components.serving_pusher import spec


class ServingPusher(base_component.BaseComponent):
  """Pushes query_tower, item_tower and retrieval when the model is blessed.

  Component `outputs` contains:
   - `pushed_model`: PushedModel (`pushed` 1/0, `pushed_version`).
  """

  SPEC_CLASS = spec.ServingPusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model: types.BaseChannel, index: types.BaseChannel,
               model_blessing: types.BaseChannel, examples: types.BaseChannel,
               catalog: types.BaseChannel, serving_dir: str,
               logs_statistics: Optional[types.BaseChannel] = None):
    """Constructs a ServingPusher.

    Args:
      model: Trainer's `Model` (the towers).
      index: IndexBuilder's `RetrievalIndex` built from `model`.
      model_blessing: RetrievalEvaluator's blessing of `model` and `index`.
      examples: MultiStageSamples' examples, whose queries warm each
        pushed version up.
      catalog: the cleaned catalogue, whose rows warm the item tower up.
      serving_dir: the TF Serving model directory (local path or URI).
      logs_statistics: the logs' ExampleStatistics, pushed with the query
        tower as the next run's drift reference.
    """
    super().__init__(spec=spec.ServingPusherSpec(**{
        spec.MODEL_KEY: model,
        spec.INDEX_KEY: index,
        spec.MODEL_BLESSING_KEY: model_blessing,
        spec.EXAMPLES_KEY: examples,
        spec.CATALOG_KEY: catalog,
        spec.LOGS_STATISTICS_KEY: logs_statistics,
        spec.SERVING_DIR_KEY: serving_dir,
        spec.PUSHED_MODEL_KEY: types.Channel(
            type=standard_artifacts.PushedModel),
    }))
