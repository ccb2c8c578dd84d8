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
import collections
import dataclasses
import logging
import time
from typing import Dict, List, Mapping

import numpy as np
import tensorflow as tf

from contracts import features
from model import in_slate_eval
from model import preprocessing

_SCORE_QUERIES = 512  # Queries scored at once: [512, items] floats.
# Candidates kept per query for each slot a slate gets, so that every pass
# over a query's slates draws a different few of them.
CANDIDATES_PER_SLOT = 4


@dataclasses.dataclass
class TrainingSet:
  """Each training query once, with its positives, and the slates' items.

  Attributes:
    query_keys: [Q] query fingerprints.
    query_features: transformed query features, [Q, ...] each.
    positives: per query, the ids of its clicked or ordered items.
    item_ids: [N] each item once.
    item_features: transformed item features, [N, ...] each.
  """
  query_keys: np.ndarray
  query_features: Dict[str, np.ndarray]
  positives: List[set]
  item_ids: np.ndarray
  item_features: Dict[str, np.ndarray]

  @classmethod
  def collect(cls, train_slates: tf.data.Dataset) -> "TrainingSet":
    """Reads the train split once (batches of transformed slates)."""
    positives = collections.defaultdict(set)
    query_rows = {}
    items = in_slate_eval.UniqueItems()
    for batch in train_slates.as_numpy_iterator():
      keys = batch[preprocessing.QUERY_KEY].reshape(-1)
      is_positive = batch[preprocessing.STAGE] >= features.Stage.CLICKED
      for row, key in enumerate(keys.tolist()):
        if key not in query_rows:
          query_rows[key] = {n: batch[n][row]
                             for n in preprocessing.QUERY_FEATURES}
        positives[key].update(
            batch[preprocessing.ITEM_ID][row][is_positive[row]].tolist())
      items.add(batch)
    keys = list(query_rows)
    item_ids, item_features = items.arrays()
    return cls(
        query_keys=np.array(keys, np.int64),
        query_features={n: np.stack([query_rows[k][n] for k in keys])
                        for n in preprocessing.QUERY_FEATURES},
        positives=[positives[k] for k in keys],
        item_ids=item_ids,
        item_features=item_features)


def mine(model, training: TrainingSet, min_rank: int, max_rank: int,
         per_query: int, seed: int) -> np.ndarray:
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


def append_to_slates(slates: tf.data.Dataset, training: TrainingSet,
                     mined: np.ndarray, count: int,
                     seed: int) -> tf.data.Dataset:
  """`slates` with `count` more slots per slate: hard negatives of the
  slate's query drawn from `mined`, stage RANDOM (PADDING where the query has
  none left)."""
  table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(training.query_keys),
          tf.range(len(training.query_keys), dtype=tf.int64)),
      default_value=-1)
  # A last row of -1 for queries that were not mined.
  candidates = tf.constant(np.vstack([mined, np.full_like(mined[:1], -1)]))
  item_features = {n: tf.constant(v)
                   for n, v in training.item_features.items()}

  def append(batch: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    row = table.lookup(tf.reshape(batch[preprocessing.QUERY_KEY], [-1]))
    row = tf.where(row < 0, tf.cast(len(training.query_keys), tf.int64), row)
    pool = tf.gather(candidates, row)  # [B, per_query]
    # A random order of the real candidates, the -1 fillers after them.
    order = tf.argsort(tf.random.uniform(tf.shape(pool), seed=seed) +
                       tf.cast(pool < 0, tf.float32), axis=1)
    chosen = tf.gather(pool, order[:, :count], batch_dims=1)  # [B, count]
    real = chosen >= 0
    safe = tf.maximum(chosen, 0)
    out = dict(batch)
    for name, table_values in item_features.items():
      out[name] = tf.concat(
          [batch[name], tf.gather(table_values, safe)], axis=1)
    out[preprocessing.STAGE] = tf.concat(
        [batch[preprocessing.STAGE],
         tf.where(real, tf.cast(features.Stage.RANDOM, batch[
             preprocessing.STAGE].dtype), tf.cast(
                 features.Stage.PADDING, batch[preprocessing.STAGE].dtype))],
        axis=1)
    return out

  return slates.map(append, num_parallel_calls=tf.data.AUTOTUNE)
