"""`mmse index`: re-index a new or changed catalogue without retraining.

The towers embed any item from its raw features, so a catalogue change needs
new item embeddings, not a new model: this embeds the catalogue with the
latest pushed item tower and writes a NEW version of `retrieval` beside the
towers: the exact SavedModel (`model.export`) plus the ANN index in its
`assets.extra/index/`. The version is written into a hidden staging
directory and renamed into place, so a polling server never sees half of
it, and the server swaps it in while it keeps answering.
"""
import logging
import os
import shutil
import time
from typing import Any, Dict, Optional, Tuple

from evaluation import embedding
from model import catalog as catalog_lib
from model import features
from serving import ann
from serving import model_registry
from tfx_pipeline import configs


def _latest(serving_dir: str, name: str) -> Tuple[int, str]:
  base = os.path.join(serving_dir, name)
  versions = model_registry.loadable_versions(base)
  if not versions:
    raise FileNotFoundError(f"No {name} version with a saved_model.pb under "
                            f"{base}")
  return versions[-1], os.path.join(base, str(versions[-1]))


def _paired_query_tower(serving_dir: str, item_version: int) -> str:
  """The query tower trained with the item tower (same pushed version)."""
  base = os.path.join(serving_dir, configs.QUERY_TOWER)
  if item_version in model_registry.loadable_versions(base):
    return os.path.join(base, str(item_version))
  version, path = _latest(serving_dir, configs.QUERY_TOWER)
  logging.warning("No query_tower version %d beside item_tower version %d; "
                  "pairing the index with query_tower version %d",
                  item_version, item_version, version)
  return path


def next_version(serving_dir: str) -> int:
  """One more than any served model's version, as the pusher numbers them."""
  versions = [
      v for name in configs.SERVED_MODELS
      for v in model_registry.loadable_versions(
          os.path.join(serving_dir, name))
  ]
  return 1 + max(versions, default=0)


def build_index(serving_dir: str, catalog_csv: str, kind: str = "scann",
                k: Optional[int] = None,
                params: Optional[Dict[str, Any]] = None,
                batch_size: int = embedding.DEFAULT_BATCH_SIZE) -> int:
  """Writes a new `retrieval` version over `catalog_csv`; returns it.

  Args:
    serving_dir: the pushed serving directory (`<name>/<version>/`).
    catalog_csv: `item_id,title[,side features]`: every retrievable item.
    kind: ANN index kind: scann, faiss or exact.
    k: items per query; `ModelConfig.retrieval_k` by default, capped at the
      catalogue size.
    params: overrides of the index kind's default parameters.
    batch_size: items per item-tower call.
  """
  from model import export  # pylint: disable=g-import-not-at-top
  if kind not in ann.KINDS:
    raise ValueError(f"Unknown index kind {kind!r}; one of {ann.KINDS}")
  started = time.monotonic()
  catalog = catalog_lib.read_catalog_csv(catalog_csv)
  item_version, item_dir = _latest(serving_dir, configs.ITEM_TOWER)
  query_dir = _paired_query_tower(serving_dir, item_version)
  item_ids = catalog[features.ITEM_ID]
  logging.info("Embedding %d items of %s with %s", len(item_ids),
               catalog_csv, item_dir)
  item_embeddings = embedding.embed_catalog(
      embedding.load_signature(item_dir), catalog, batch_size)
  k = min(k or configs.ModelConfig.retrieval_k, len(item_ids))

  version = next_version(serving_dir)
  model_dir = os.path.join(serving_dir, configs.RETRIEVAL)
  final = os.path.join(model_dir, str(version))
  # A hidden, non-integer name: servers polling the directory skip it.
  staging = os.path.join(model_dir, f".{version}.incomplete")
  if os.path.exists(staging):
    shutil.rmtree(staging)
  os.makedirs(model_dir, exist_ok=True)
  try:
    export.export_retrieval_model(query_dir, item_ids, item_embeddings,
                                  staging, k)
    ann.write_index(os.path.join(staging, ann.INDEX_SUBDIR), item_ids,
                    item_embeddings, k, kind=kind, params=params,
                    titles=catalog[features.TITLE], query_tower_dir=query_dir)
    # Fails if another writer took this version meanwhile; nothing is lost.
    os.rename(staging, final)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  logging.info("Wrote %s version %d (%s index, top-%d over %d items) in "
               "%.1fs", configs.RETRIEVAL, version, kind, k, len(item_ids),
               time.monotonic() - started)
  return version
