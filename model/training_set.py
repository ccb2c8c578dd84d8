"""The train split read once: each training query with its positives, and
each item of its slates, by their transformed features.

Whatever looks at the whole training set before or between passes over it
reads it here: the hard-negative miner (`hard_negatives`).
"""
import collections
import dataclasses
from typing import Dict, List, Mapping

import numpy as np
import tensorflow as tf

from contracts import features
from model import in_slate_eval
from model import preprocessing


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


def append_to_slates(slates: tf.data.Dataset, training: TrainingSet,
                     candidates: np.ndarray, count: int, stage: int,
                     seed: int) -> tf.data.Dataset:
  """`slates` with `count` more slots per slate, of stage `stage`: items of
  the slate's query drawn at random from its row of `candidates` ([Q,
  per_query] rows of `training.item_ids`, -1 for none; PADDING where the
  query has none left)."""
  table = tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(
          tf.constant(training.query_keys),
          tf.range(len(training.query_keys), dtype=tf.int64)),
      default_value=-1)
  # A last row of -1 for queries without candidates.
  candidates = tf.constant(
      np.vstack([candidates, np.full_like(candidates[:1], -1)]))
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
         tf.where(real, tf.cast(stage, batch[
             preprocessing.STAGE].dtype), tf.cast(
                 features.Stage.PADDING, batch[preprocessing.STAGE].dtype))],
        axis=1)
    return out

  return slates.map(append, num_parallel_calls=tf.data.AUTOTUNE)
