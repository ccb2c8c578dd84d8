"""ServingPusher: the stock Pusher's contract for MMSE's three SavedModels.

TFX's Pusher copies one model directory to `<base>/<version>/`. MMSE serves
three models side by side (`query_tower`, `item_tower`, `retrieval`), each of
which TF Serving expects at `<serving_dir>/<name>/<version>/`, plus a
`models.config` naming them. This component keeps the Pusher's behaviour -
push only what the evaluator blessed, record a PushedModel - with that layout.
"""
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components.index_builder.component import RetrievalIndex
from components.serving_pusher import executor


class ServingPusherSpec(types.ComponentSpec):
  PARAMETERS = {
      # Root of the TF Serving model directory (local path or URI).
      "serving_dir": component_spec.ExecutionParameter(type=str),
  }
  INPUTS = {
      "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
      "index": component_spec.ChannelParameter(type=RetrievalIndex),
      "model_blessing": component_spec.ChannelParameter(
          type=standard_artifacts.ModelBlessing),
  }
  OUTPUTS = {
      "pushed_model": component_spec.ChannelParameter(
          type=standard_artifacts.PushedModel),
  }


class ServingPusher(base_component.BaseComponent):
  """Pushes query_tower, item_tower and retrieval when the model is blessed."""

  SPEC_CLASS = ServingPusherSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, model: types.BaseChannel, index: types.BaseChannel,
               model_blessing: types.BaseChannel, serving_dir: str):
    super().__init__(
        spec=ServingPusherSpec(
            model=model,
            index=index,
            model_blessing=model_blessing,
            serving_dir=serving_dir,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
