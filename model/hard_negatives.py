"""Hard negatives: the model's own near misses (Huang et al., Facebook EBR).

Random catalogue items are easy to tell apart from a query's positives, and
in-batch items mostly are too; what a trained model still confuses are items
it ranks just below the right ones. After the first pass over the logs each
training query is scored against every item of the slates; items it ranks
between `hard_negative_min_rank` and `hard_negative_max_rank` that are not
its positives become its candidates (the very top is left out: there sit the
relevant items nobody clicked). The next pass appends `hard_negatives` of
them, drawn afresh for every slate, as random-stage slots: the retrieval
softmax and the ranking loss see them as they see random items.
"""
import logging
import time

import numpy as np
import tensorflow as tf

from model import in_slate_eval
from model import preprocessing
from model import training_set

_SCORE_QUERIES = 512  # Queries scored at once: [512, items] floats.
# Candidates kept per query for each slot a slate gets, so that every pass
# over a query's slates draws a different few of them.
CANDIDATES_PER_SLOT = 4


def mine(model, training: training_set.TrainingSet, min_rank: int,
         max_rank: int, per_query: int, seed: int) -> np.ndarray:
  """[Q, per_query] rows of `training.item_ids`: each query's candidates,
  drawn from its ranks [min_rank, max_rank) without its positives; -1 where
  a query has fewer."""
  started = time.monotonic()
  items = tf.constant(in_slate_eval.embed_items(model, training.item_features))
  max_rank = min(max_rank, len(training.item_ids))
  rng = np.random.default_rng(seed)
  mined = np.full((len(training.query_keys), per_query), -1, np.int32)
  for start in range(0, len(training.query_keys), _SCORE_QUERIES):
    queries = model.embed_queries(
        {n: v[start:start + _SCORE_QUERIES]
         for n, v in training.query_features.items()})
    _, top = tf.math.top_k(tf.matmul(queries, items, transpose_b=True),
                           k=max_rank)
    for offset, ranked in enumerate(top.numpy()[:, min_rank:]):
      row = start + offset
      near = [i for i in ranked
              if training.item_ids[i] not in training.positives[row]]
      chosen = rng.permutation(near)[:per_query] if near else []
      mined[row, :len(chosen)] = chosen
    if start // _SCORE_QUERIES % 20 == 0:
      logging.info("Hard negatives: mined %d of %d queries",
                   min(start + _SCORE_QUERIES, len(training.query_keys)),
                   len(training.query_keys))
  logging.info("Hard negatives: ranks %d-%d of %d items for %d queries in "
               "%.1f s", min_rank, max_rank, len(training.item_ids),
               len(training.query_keys), time.monotonic() - started)
  return mined
