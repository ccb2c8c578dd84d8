"""IndexBuilder: embed the whole catalogue with the trained item tower.

Two-tower retrieval indexes items once and answers queries by nearest-neighbour
search. This component is that indexing step in the pipeline: it embeds every
catalogue item with the item tower (a Beam job, so a large catalogue spreads
over workers), writes the `retrieval` SavedModel (exact top-k with stock TF
ops, servable by stock TF Serving) and the ANN index beside it.
"""
from tfx import types
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact
from tfx.types import component_spec
from tfx.types import standard_artifacts

from components.index_builder import executor
from tfx_pipeline import configs


class RetrievalIndex(artifact.Artifact):
  """`<uri>/retrieval/`: SavedModel + `assets.extra/index/` ANN files."""
  # `namespace.Title`: the form Kubeflow Pipelines v2 requires.
  TYPE_NAME = "mmse.RetrievalIndex"


class IndexBuilderSpec(types.ComponentSpec):
  PARAMETERS = {
      "retrieval_k": component_spec.ExecutionParameter(type=int),
      # scann (default), faiss, or exact.
      "index_kind": component_spec.ExecutionParameter(type=str),
      "batch_size": component_spec.ExecutionParameter(type=int),
  }
  INPUTS = {
      "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
      "catalog": component_spec.ChannelParameter(
          type=standard_artifacts.Examples),
  }
  OUTPUTS = {
      "index": component_spec.ChannelParameter(type=RetrievalIndex),
  }


class IndexBuilder(base_beam_component.BaseBeamComponent):
  """Builds the `retrieval` model and ANN index over the whole catalogue."""

  SPEC_CLASS = IndexBuilderSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

  def __init__(self, model: types.BaseChannel, catalog: types.BaseChannel,
               retrieval_k: int = configs.ModelConfig.retrieval_k,
               index_kind: str = "scann", batch_size: int = 1024):
    super().__init__(
        spec=IndexBuilderSpec(
            model=model,
            catalog=catalog,
            retrieval_k=retrieval_k,
            index_kind=index_kind,
            batch_size=batch_size,
            index=types.Channel(type=RetrievalIndex)))
