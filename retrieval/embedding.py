"""Embeds the catalogue and queries with exported towers; exact top-k search.

Offline evaluation must score a model the way it is served: through the
`serving_default` signatures of the exported towers (raw text in, Transform
graph inside), over every item of the catalogue. Exact search in numpy is the
reference an ANN index is later measured against, so it lives here beside the
embedding code rather than in any index.
"""
import logging
import time
from typing import Callable, Dict, Mapping, Sequence, Tuple

import numpy as np

from model import catalog as catalog_lib
from model import features

EMBEDDING_OUTPUT = "embedding"
SERVING_SIGNATURE = "serving_default"
DEFAULT_BATCH_SIZE = 1024
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


def embed_catalog(item_tower: Signature, catalog: catalog_lib.Catalog,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """Embeds every catalogue row; returns float32 [N, D] in catalogue order.

  Feeds exactly the inputs the tower's signature declares: a model trained
  without a side feature ignores that column, and a model that needs a column
  the catalogue lacks is an error (a default would silently skew it).

  Args:
    item_tower: the item tower's `serving_default` signature.
    catalog: column arrays as `model.catalog` reads them.
    batch_size: rows per signature call.
  """
  declared = sorted(_input_specs(item_tower))
  missing = [name for name in declared if name not in catalog]
  if missing:
    raise ValueError(
        f"The item tower needs inputs {declared} but the catalogue lacks "
        f"{missing} (it has {sorted(catalog)})")
  size = len(catalog[declared[0]])
  return _embed_batches(item_tower, catalog, size, batch_size,
                        "Embedding catalogue")


def embed_queries(query_tower: Signature, queries: Sequence[str],
                  batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
  """Embeds raw query strings; returns float32 [Q, D] in the given order."""
  names = list(_input_specs(query_tower))
  if len(names) != 1:
    raise ValueError(f"The query tower must take one input, it takes {names}")
  columns = {names[0]: np.asarray(list(queries), dtype=object)}
  return _embed_batches(query_tower, columns, len(queries), batch_size,
                        "Embedding queries")


def exact_top_k(query_embeddings: np.ndarray, item_embeddings: np.ndarray,
                k: int, batch_size: int = 256) -> Tuple[np.ndarray, np.ndarray]:
  """The k items with the highest dot product for each query, best first.

  Scores one batch of queries against every item at a time, so memory stays
  at batch_size x N floats; a partial partition finds the k best before only
  those are sorted.

  Args:
    query_embeddings: float [Q, D].
    item_embeddings: float [N, D].
    k: items per query; capped at N.
    batch_size: queries scored together.

  Returns:
    (indices int64 [Q, min(k, N)] into item_embeddings,
     scores float32 [Q, min(k, N)]), scores descending along each row.
  """
  if query_embeddings.ndim != 2 or item_embeddings.ndim != 2:
    raise ValueError("Embeddings must be 2-D [rows, dim]")
  if query_embeddings.shape[1] != item_embeddings.shape[1]:
    raise ValueError(
        f"Query dim {query_embeddings.shape[1]} != item dim "
        f"{item_embeddings.shape[1]}: the towers are not from one model")
  if k < 1:
    raise ValueError(f"k must be positive, got {k}")
  num_queries, num_items = len(query_embeddings), len(item_embeddings)
  k = min(k, num_items)
  indices = np.empty((num_queries, k), dtype=np.int64)
  scores = np.empty((num_queries, k), dtype=np.float32)
  # A transposed view: BLAS multiplies it without copying the catalogue.
  items_t = item_embeddings.astype(np.float32, copy=False).T
  progress = _Progress("Exact top-k", num_queries)
  for start in range(0, num_queries, batch_size):
    stop = min(start + batch_size, num_queries)
    batch_scores = query_embeddings[start:stop].astype(np.float32) @ items_t
    if k < num_items:
      top = np.argpartition(-batch_scores, k - 1, axis=1)[:, :k]
    else:
      top = np.broadcast_to(np.arange(num_items), batch_scores.shape)
    top_scores = np.take_along_axis(batch_scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    indices[start:stop] = np.take_along_axis(top, order, axis=1)
    scores[start:stop] = np.take_along_axis(top_scores, order, axis=1)
    progress.update(stop)
  return indices, scores


def rank_catalog(query_tower: Signature, item_tower: Signature,
                 catalog: catalog_lib.Catalog, queries: Sequence[str], k: int,
                 batch_size: int = DEFAULT_BATCH_SIZE
                ) -> Dict[str, np.ndarray]:
  """Each query's k best catalogue item ids under one model, best first."""
  queries = list(queries)
  item_embeddings = embed_catalog(item_tower, catalog, batch_size)
  query_embeddings = embed_queries(query_tower, queries, batch_size)
  indices, _ = exact_top_k(query_embeddings, item_embeddings, k)
  item_ids = np.asarray(catalog[features.ITEM_ID], dtype=np.int64)
  return dict(zip(queries, item_ids[indices]))
