"""Beam job: catalogue rows -> item-tower embeddings -> retrieval model + index.

The ANN index is written inside the `retrieval` SavedModel's
`assets.extra/index/` (TF Serving ignores that folder), so the pusher moves
model and index together as one version, and `mmse index` writes the same
layout when only the catalogue changes.
"""
import os
from typing import Any, Dict, List

import apache_beam as beam
from absl import logging
import numpy as np
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from evaluation import embedding
from model import catalog as catalog_lib
from model import export
from model import features
from serving import ann
from tfx_pipeline import configs


def _batches(catalog: catalog_lib.Catalog, batch_size: int):
  size = len(catalog["item_id"])
  for start in range(0, size, batch_size):
    yield start, {k: v[start:start + batch_size] for k, v in catalog.items()}


class _EmbedBatch(beam.DoFn):
  """Embeds one batch of items; each worker loads the item tower once."""

  def __init__(self, item_tower_dir: str, shard_dir: str):
    self._item_tower_dir = item_tower_dir
    self._shard_dir = shard_dir
    self._tower = None

  def setup(self):
    self._tower = embedding.load_signature(self._item_tower_dir)

  def process(self, element):
    start, batch = element
    vectors = embedding.embed_catalog(self._tower, batch,
                                      batch_size=len(batch["item_id"]))
    path = os.path.join(self._shard_dir, f"{start:012d}.npy")
    with fileio.open(path, "wb") as f:
      np.save(f, vectors.astype(np.float32))
    yield path


def embed_catalog_with_beam(pipeline: beam.Pipeline, item_tower_dir: str,
                            catalog: catalog_lib.Catalog, batch_size: int,
                            shard_dir: str) -> None:
  """Adds the embedding step to `pipeline`; shards land in `shard_dir`."""
  _ = (pipeline
       | "CatalogBatches" >> beam.Create(list(_batches(catalog, batch_size)))
       | "Reshuffle" >> beam.Reshuffle()
       | "EmbedItems" >> beam.ParDo(_EmbedBatch(item_tower_dir, shard_dir)))


def read_shards(shard_dir: str) -> np.ndarray:
  # Shard names are zero-padded start offsets: sorted order is catalogue order.
  paths = sorted(fileio.glob(os.path.join(shard_dir, "*.npy")))
  parts = []
  for path in paths:
    with fileio.open(path, "rb") as f:
      parts.append(np.load(f))
  return np.concatenate(parts, axis=0)


class Executor(base_beam_executor.BaseBeamExecutor):
  """Embeds the catalogue, exports `retrieval` and its index."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    model = artifact_utils.get_single_instance(input_dict["model"])
    catalog_artifact = artifact_utils.get_single_instance(input_dict["catalog"])
    index = artifact_utils.get_single_instance(output_dict["index"])
    serving = os.path.join(model.uri, "Format-Serving")

    catalog = catalog_lib.read_catalog_examples(catalog_artifact.uri)
    num_items = len(catalog["item_id"])
    logging.info("Embedding %d catalogue items", num_items)
    shard_dir = os.path.join(index.uri, ".embedding_shards")
    fileio.makedirs(shard_dir)
    with self._make_beam_pipeline() as pipeline:
      embed_catalog_with_beam(pipeline,
                              os.path.join(serving, configs.ITEM_TOWER),
                              catalog, exec_properties["batch_size"],
                              shard_dir)
    item_embeddings = read_shards(shard_dir)
    fileio.rmtree(shard_dir)
    if item_embeddings.shape[0] != num_items:
      raise RuntimeError(f"Embedded {item_embeddings.shape[0]} of "
                         f"{num_items} catalogue items")

    k = min(exec_properties["retrieval_k"], num_items)
    query_tower_dir = os.path.join(serving, configs.QUERY_TOWER)
    retrieval_dir = os.path.join(index.uri, configs.RETRIEVAL)
    export.export_retrieval_model(
        query_tower_dir=query_tower_dir,
        item_ids=catalog[features.ITEM_ID],
        item_embeddings=item_embeddings,
        export_dir=retrieval_dir,
        k=k)
    kind = exec_properties["index_kind"]
    ann.write_index(
        os.path.join(retrieval_dir, ann.INDEX_SUBDIR),
        catalog[features.ITEM_ID], item_embeddings, k, kind=kind,
        titles=catalog[features.TITLE], query_tower_dir=query_tower_dir)
    index.set_int_custom_property("num_items", num_items)
    index.set_int_custom_property("embedding_dim", item_embeddings.shape[1])
    index.set_string_custom_property("index_kind", kind)
    logging.info("Exported exact top-%d retrieval and a %s index over %d "
                 "items", k, kind, num_items)
