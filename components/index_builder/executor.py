"""Beam job: catalogue rows -> item-tower embeddings -> retrieval model + index.

The ANN index (with the embeddings, `embeddings.npy`) is written inside the
`retrieval` SavedModel's `assets.extra/index/` (TF Serving ignores that
folder), so the evaluator scores exactly what is served, the pusher moves
model and index together as one version, and `mmse index` writes the same
layout when only the catalogue changes.
"""
import os
from typing import Any, Dict, List

from absl import logging
import apache_beam as beam
import numpy as np
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components import artifacts
from components.index_builder import spec
from contracts import catalog as catalog_lib
from contracts import config_io
from contracts import serving_layout
from model import export
from retrieval import ann
from retrieval import config as index_config
from retrieval import embedding
from retrieval.config import IndexConfig

# Inside the index artifact while the catalogue is embedded; removed after.
_SHARD_DIR = ".embedding_shards"


class _EmbedBatch(beam.DoFn):
  """Embeds one batch of items; each worker loads the item tower once."""

  def __init__(self, item_tower_dir: str, batch_size: int, shard_dir: str):
    self._item_tower_dir = item_tower_dir
    self._batch_size = batch_size
    self._shard_dir = shard_dir
    self._tower = None

  def setup(self):
    self._tower = embedding.load_signature(self._item_tower_dir)

  def process(self, element):
    start, columns = element
    vectors = embedding.embed_catalog(self._tower, columns, self._batch_size)
    # Zero-padded start offsets: sorted shard names are catalogue order.
    path = os.path.join(self._shard_dir, f"{start:012d}.npy")
    with fileio.open(path, "wb") as f:
      np.save(f, vectors)
    yield path


def embed_catalog_with_beam(pipeline: beam.Pipeline, item_tower_dir: str,
                            catalog: catalog_lib.Catalog, batch_size: int,
                            shard_dir: str) -> None:
  """Adds the embedding step to `pipeline`; shards land in `shard_dir`."""
  _ = (pipeline
       | "CatalogBatches" >> beam.Create(list(catalog.batches(batch_size)))
       | "Reshuffle" >> beam.Reshuffle()
       | "EmbedItems" >> beam.ParDo(
           _EmbedBatch(item_tower_dir, batch_size, shard_dir)))


def read_shards(shard_dir: str) -> np.ndarray:
  """The shards' embeddings stacked in catalogue order."""
  parts = []
  for path in sorted(fileio.glob(os.path.join(shard_dir, "*.npy"))):
    with fileio.open(path, "rb") as f:
      parts.append(np.load(f))
  return np.concatenate(parts, axis=0)


class Executor(base_beam_executor.BaseBeamExecutor):
  """Embeds the catalogue, exports `retrieval` and its index."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Embeds the cleaned catalogue and writes `<index>/retrieval/`.

    Args:
      input_dict: `model` (Trainer's Model) and `catalog` (Catalog).
      output_dict: `index` (RetrievalIndex).
      exec_properties: the `IndexConfig` fields.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_io.from_parameters(IndexConfig, exec_properties)
    index_config.check_config(config)
    model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    catalog_artifact = artifact_utils.get_single_instance(
        input_dict[spec.CATALOG_KEY])
    index = artifact_utils.get_single_instance(output_dict[spec.INDEX_KEY])

    catalog = catalog_lib.read_catalog(
        os.path.join(catalog_artifact.uri, artifacts.CATALOG_FILE))
    logging.info("Embedding %d catalogue items", len(catalog))
    shard_dir = os.path.join(index.uri, _SHARD_DIR)
    fileio.makedirs(shard_dir)
    with self._make_beam_pipeline() as pipeline:
      embed_catalog_with_beam(
          pipeline,
          serving_layout.trained_tower_dir(model.uri,
                                           serving_layout.ITEM_TOWER),
          catalog, config.batch_size, shard_dir)
    item_embeddings = read_shards(shard_dir)
    fileio.rmtree(shard_dir)
    if item_embeddings.shape[0] != len(catalog):
      raise RuntimeError(f"Embedded {item_embeddings.shape[0]} of "
                         f"{len(catalog)} catalogue items")

    k = min(config.k, len(catalog))
    query_tower_dir = serving_layout.trained_tower_dir(
        model.uri, serving_layout.QUERY_TOWER)
    retrieval_dir = serving_layout.indexed_retrieval_dir(index.uri)
    export.export_retrieval_model(
        query_tower_dir=query_tower_dir,
        item_ids=catalog.item_ids,
        item_embeddings=item_embeddings,
        export_dir=retrieval_dir,
        k=k)
    ann.write_index(
        serving_layout.index_dir(retrieval_dir), catalog.item_ids,
        item_embeddings, k, kind=config.kind, titles=catalog.titles,
        query_tower_dir=query_tower_dir)
    index.set_int_custom_property(spec.NUM_ITEMS_PROPERTY, len(catalog))
    index.set_int_custom_property(spec.EMBEDDING_DIM_PROPERTY,
                                  item_embeddings.shape[1])
    index.set_string_custom_property(spec.INDEX_KIND_PROPERTY, config.kind)
    index.set_int_custom_property(spec.K_PROPERTY, k)
    index.set_int_custom_property(spec.SET_ASIDE_PROPERTY,
                                  len(catalog.set_aside))
    logging.info("Exported exact top-%d retrieval and a %s index over %d "
                 "items", k, config.kind, len(catalog))
