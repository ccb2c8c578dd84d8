"""Embeds catalogue columns and queries with the exported towers.

IndexBuilder, `mmse index`, the evaluator and `mmse evaluate` embed through
the towers' `serving_default` signatures (raw text in, Transform graph
inside), exactly as the served models do, so every figure and every index
comes from what is served.
"""
import logging
import time
from typing import Callable, Dict, Mapping, Sequence

import numpy as np

from contracts import catalog as catalog_lib
from contracts.serving_layout import EMBEDDING_OUTPUT
from contracts.serving_layout import SERVING_SIGNATURE
from retrieval import config as index_config
from retrieval import topk

# Log progress of a long loop about this often.
_LOG_EVERY_SECONDS = 10.0

# A tower signature: named input tensors -> {"embedding": [batch, D]}.
Signature = Callable[..., Mapping[str, "tf.Tensor"]]


def load_signature(saved_model_dir: str,
                   output: str = EMBEDDING_OUTPUT) -> Signature:
  """Loads the `serving_default` signature, checking it has `output`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  loaded = tf.saved_model.load(saved_model_dir)
  if SERVING_SIGNATURE not in loaded.signatures:
    raise ValueError(f"{saved_model_dir} has no {SERVING_SIGNATURE!r} "
                     f"signature; it has {sorted(loaded.signatures)}")
  signature = loaded.signatures[SERVING_SIGNATURE]
  if output not in signature.structured_outputs:
    raise ValueError(f"{saved_model_dir}: {SERVING_SIGNATURE} outputs "
                     f"{sorted(signature.structured_outputs)}, not "
                     f"{output!r}")
  return signature


def _input_specs(signature: Signature):
  _, specs = signature.structured_input_signature
  return specs


class _Progress:
  """Logs `done/total` at most every few seconds, and once at the end."""

  def __init__(self, what: str, total: int):
    self._what = what
    self._total = total
    self._start = time.monotonic()
    self._last = self._start

  def update(self, done: int):
    now = time.monotonic()
    if done >= self._total or now - self._last >= _LOG_EVERY_SECONDS:
      self._last = now
      logging.info("%s: %d/%d in %.1fs", self._what, done, self._total,
                   now - self._start)


def _embed_batches(signature: Signature, columns: Dict[str, np.ndarray],
                   size: int, batch_size: int, what: str) -> np.ndarray:
  """Runs the signature over row batches of the columns, stacks embeddings."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  specs = _input_specs(signature)
  progress = _Progress(what, size)
  embeddings = []
  for start in range(0, size, batch_size):
    stop = min(start + batch_size, size)
    inputs = {
        name: tf.constant(columns[name][start:stop], dtype=spec.dtype)
        for name, spec in specs.items()
    }
    embeddings.append(signature(**inputs)[EMBEDDING_OUTPUT].numpy())
    progress.update(stop)
  if not embeddings:
    raise ValueError(f"{what}: nothing to embed")
  return np.concatenate(embeddings).astype(np.float32, copy=False)


def embed_catalog(item_tower: Signature, columns: Mapping[str, np.ndarray],
                  batch_size: int = index_config.IndexConfig.batch_size
                 ) -> np.ndarray:
  """Embeds every catalogue row; returns float32 [N, D] in row order.

  Feeds exactly the inputs the tower's signature declares: a model trained
  without a side feature ignores that column, and a model that needs a column
  the catalogue lacks is an error (a default would silently skew it).

  Args:
    item_tower: the item tower's `serving_default` signature.
    columns: `contracts.catalog.Catalog.columns`, or a batch of its rows.
    batch_size: rows per signature call.
  """
  declared = sorted(_input_specs(item_tower))
  missing = [name for name in declared if name not in columns]
  if missing:
    raise ValueError(
        f"The item tower needs inputs {declared} but the catalogue lacks "
        f"{missing} (it has {sorted(columns)})")
  size = len(columns[declared[0]])
  return _embed_batches(item_tower, columns, size, batch_size,
                        "Embedding catalogue")


def embed_queries(query_tower: Signature, queries: Sequence[str],
                  batch_size: int = index_config.IndexConfig.batch_size
                 ) -> np.ndarray:
  """Embeds raw query strings; returns float32 [Q, D] in the given order."""
  names = list(_input_specs(query_tower))
  if len(names) != 1:
    raise ValueError(f"The query tower must take one input, it takes {names}")
  columns = {names[0]: np.asarray(list(queries), dtype=object)}
  return _embed_batches(query_tower, columns, len(queries), batch_size,
                        "Embedding queries")


def rank_catalog(query_tower: Signature, item_tower: Signature,
                 catalog: catalog_lib.Catalog, queries: Sequence[str], k: int,
                 batch_size: int = index_config.IndexConfig.batch_size
                ) -> Dict[str, np.ndarray]:
  """Each query's k best catalogue item ids under one model, best first.

  Exact search (`topk.exact_top_k`) over every catalogue item.
  """
  queries = list(queries)
  item_embeddings = embed_catalog(item_tower, catalog.columns, batch_size)
  query_embeddings = embed_queries(query_tower, queries, batch_size)
  return rank_embedded(query_embeddings, item_embeddings, catalog.item_ids,
                       queries, k)


def rank_embedded(query_embeddings: np.ndarray, item_embeddings: np.ndarray,
                  item_ids: np.ndarray, queries: Sequence[str],
                  k: int) -> Dict[str, np.ndarray]:
  """Each query's k best item ids by exact search over embeddings already
  computed (row i of `query_embeddings` embeds queries[i], row j of
  `item_embeddings` item_ids[j]), best first."""
  rows, _ = topk.exact_top_k(query_embeddings, item_embeddings, k)
  return dict(zip(queries, item_ids[rows]))
