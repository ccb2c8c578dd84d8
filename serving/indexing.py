"""`mmse index`: re-index a new or changed catalogue without retraining.

The towers embed any item from its raw features, so a catalogue change needs
new item embeddings, not a new model: this embeds the catalogue with the
latest pushed pair of towers and writes a NEW version of `retrieval` beside
them: the exact SavedModel (`model.export`) plus the ANN index in its
`assets.extra/index/`, with the query tower's warm-up requests.
`serving_layout.publish_release` writes the version aside and renames it
into place, so a polling server never sees half of it, and the server swaps
it in while it keeps answering.
"""
import logging
import os
import time
from typing import Any, Dict, Optional

from contracts import catalog as catalog_lib
from contracts import serving_layout
from contracts import serving_warmup
from retrieval import ann
from retrieval import embedding
from retrieval.config import IndexConfig


def build_index(serving_dir: str, catalog_csv: str,
                kind: str = IndexConfig.kind, k: Optional[int] = None,
                params: Optional[Dict[str, Any]] = None,
                batch_size: int = IndexConfig.batch_size) -> int:
  """Writes a new `retrieval` version over `catalog_csv`; returns it.

  Args:
    serving_dir: the pushed serving directory (`<name>/<version>/`).
    catalog_csv: `item_id,title[,side features]`: every retrievable item,
      read with `contracts.catalog` (a duplicate item_id is set aside with a
      warning, the smallest row kept).
    kind: ANN index kind: scann, faiss or exact.
    k: items per query; `IndexConfig.k` by default, capped at the catalogue
      size.
    params: overrides of the index kind's default parameters.
    batch_size: items per item-tower call.
  """
  from model import export  # pylint: disable=g-import-not-at-top
  if kind not in ann.KINDS:
    raise ValueError(f"Unknown index kind {kind!r}; one of {ann.KINDS}")
  started = time.monotonic()
  catalog = catalog_lib.read_catalog(catalog_csv)
  towers = serving_layout.latest_release_dirs(serving_dir)
  item_dir = towers[serving_layout.ITEM_TOWER]
  query_dir = towers[serving_layout.QUERY_TOWER]
  logging.info("Embedding %d items of %s with %s", len(catalog), catalog_csv,
               item_dir)
  item_embeddings = embedding.embed_catalog(
      embedding.load_signature(item_dir), catalog.columns, batch_size)
  k = min(k or IndexConfig.k, len(catalog))

  def write(staging_dir: str) -> None:
    export.export_retrieval_model(query_dir, catalog.item_ids,
                                  item_embeddings, staging_dir, k)
    ann.write_index(serving_layout.index_dir(staging_dir), catalog.item_ids,
                    item_embeddings, k, kind=kind, params=params,
                    titles=catalog.titles, query_tower_dir=query_dir)
    # `retrieval` takes what the query tower takes: its warm-up queries.
    warmup = serving_warmup.read(query_dir)
    for request in warmup:
      request.model_spec.name = serving_layout.RETRIEVAL
    if warmup:
      serving_warmup.write(staging_dir, warmup)

  version = serving_layout.publish_release(
      serving_dir, {serving_layout.RETRIEVAL: write})
  logging.info("Wrote %s version %d (%s index, top-%d over %d items) in "
               "%.1fs", serving_layout.RETRIEVAL, version, kind, k,
               len(catalog), time.monotonic() - started)
  return version
