"""Exact top-k by dot product: the one implementation in the project.

`ann.ExactIndex`, FAISS's fallback, the evaluator's reference search, `mmse
evaluate` and the benchmarks all call `exact_top_k`. (The served `retrieval`
SavedModel does the same in its graph with `tf.math.top_k`.) Equal scores
rank by row, so results do not depend on how the work is split.
"""
from typing import Optional

import numpy as np

# Queries are scored in blocks of at most this many scores (256 MB).
_BLOCK_SCORES = 1 << 26


def top_k_of_scores(scores: np.ndarray, k: int):
  """The k best columns of each row of `scores` [B, N], best first.

  Equal scores rank by column, also where they straddle the k-th place.

  Returns:
    (columns int64 [B, min(k, N)], their scores [B, min(k, N)]).
  """
  num_columns = scores.shape[1]
  k = min(k, num_columns)
  if k < num_columns:
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, top, axis=1).min(axis=1)
    # Rows where more than k scores reach the k-th: argpartition chose among
    # the ties at random, so those rows take the first columns instead.
    for row in np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k):
      above = np.flatnonzero(scores[row] > kth[row])
      tied = np.flatnonzero(scores[row] == kth[row])
      top[row] = np.concatenate([above, tied[:k - len(above)]])
  else:
    top = np.broadcast_to(np.arange(num_columns), scores.shape)
  top_scores = np.take_along_axis(scores, top, axis=1)
  order = np.lexsort((top, -top_scores), axis=1)
  return (np.take_along_axis(top, order, axis=1).astype(np.int64, copy=False),
          np.take_along_axis(top_scores, order, axis=1))


def exact_top_k(query_embeddings: np.ndarray, item_embeddings: np.ndarray,
                k: int, batch_size: Optional[int] = None):
  """The k items with the highest dot product for each query, best first.

  Scores a block of queries against every item at a time, so memory stays
  bounded whatever the number of queries; a partial partition finds the k
  best before only those are sorted.

  Args:
    query_embeddings: float [Q, D].
    item_embeddings: float [N, D].
    k: items per query; capped at N.
    batch_size: queries scored together; by default as many as keep a block
      of scores under 256 MB.

  Returns:
    (rows int64 [Q, min(k, N)] into item_embeddings,
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
  if not num_items:
    raise ValueError("No items to search")
  block = (int(np.clip(_BLOCK_SCORES // num_items, 1, 256))
           if batch_size is None else batch_size)
  if block < 1:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  k = min(k, num_items)
  rows = np.empty((num_queries, k), dtype=np.int64)
  scores = np.empty((num_queries, k), dtype=np.float32)
  # A transposed view: BLAS multiplies it without copying the catalogue.
  items_t = np.asarray(item_embeddings, dtype=np.float32).T
  queries = np.asarray(query_embeddings, dtype=np.float32)
  for start in range(0, num_queries, block):
    stop = start + block
    rows[start:stop], scores[start:stop] = top_k_of_scores(
        queries[start:stop] @ items_t, k)
  return rows, scores
