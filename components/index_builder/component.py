"""IndexBuilder: embed the whole catalogue with the trained item tower.

Two-tower retrieval indexes items once and answers queries by nearest-neighbour
search. This component is that indexing step in the pipeline: it embeds every
item of the cleaned catalogue with the item tower (a Beam job, so a large
catalogue spreads over workers), writes the `retrieval` SavedModel (exact
top-k with stock TF ops, servable by stock TF Serving) and the ANN index
beside it. The evaluator scores that index and the pusher serves it, so the
catalogue is embedded once per model.
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec

from components import artifacts
from components.index_builder import executor
from components.index_builder import spec
from contracts import config_io
from retrieval import config as index_config
from retrieval.config import IndexConfig


class IndexBuilder(base_beam_component.BaseBeamComponent):
  """Builds the `retrieval` model and ANN index over the whole catalogue.

  ## Example
  ```
  index_builder = IndexBuilder(
      model=trainer.outputs["model"],
      catalog=mining.outputs["cleaned_catalog"],
      config=pipeline_config.index)
  ```

  Component `outputs` contains:
   - `index`: RetrievalIndex, `<uri>/retrieval/` (a SavedModel) with the ANN
     index in `assets.extra/index/`.
  """

  SPEC_CLASS = spec.IndexBuilderSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self,
               model: types.BaseChannel,
               catalog: types.BaseChannel,
               config: Optional[IndexConfig] = None):
    """Constructs an IndexBuilder.

    Args:
      model: Trainer's `Model`; towers under
        `<uri>/Format-Serving/{query_tower,item_tower}`.
      catalog: the cleaned `Catalog` (`catalog.csv`) mining wrote.
      config: index kind, k and embedding batch size; `IndexConfig()`
        defaults when None.
    """
    config = config or IndexConfig()
    index_config.check_config(config)
    super().__init__(spec=spec.IndexBuilderSpec(
        **{
            spec.MODEL_KEY: model,
            spec.CATALOG_KEY: catalog,
            spec.INDEX_KEY: types.Channel(type=artifacts.RetrievalIndex),
        },
        **config_io.to_parameters(config)))
