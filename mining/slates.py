"""Fixed-length slates of a query and their tf.train.Example encoding.

One slate per (query, positive item): the anchor, items of the same query
with a lower stage, random catalogue items the query was never shown, then
padding. Every slot carries the catalogue features of its item.
"""
import collections
from typing import Dict, Iterator, Tuple

import numpy as np
import tensorflow as tf

from contracts import catalog as catalog_lib
from contracts import features
from mining import count_keys
from mining import splits
from mining.aggregation import QueryLog
from mining.config import MiningConfig
from mining.negatives import NegativeSampler


def slates(log: QueryLog, catalog: catalog_lib.Catalog,
           sampler: NegativeSampler, config: MiningConfig
          ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
  """(catalogue indexes, stages) of each slate of a query; -1 is padding.

  One slate per positive item, strongest first. Deterministic: each slate
  draws from a generator seeded by (seed, query, anchor item_id).
  """
  indexes = catalog.indexes(log.item_ids)
  excluded = catalog.indexes(log.shown_ids)
  by_stage = {s: indexes[log.stages == s] for s in features.Stage}
  order = np.lexsort((log.item_ids, -log.stages))
  for position in order.tolist():
    anchor_stage = int(log.stages[position])
    if anchor_stage not in features.POSITIVE_STAGES:
      continue
    rng = np.random.default_rng(
        splits.stable_hash(config.seed, log.query,
                           str(log.item_ids[position])))
    slots = [indexes[position]]
    slot_stages = [anchor_stage]
    lower = [s for s in (features.Stage.CLICKED, features.Stage.UNCLICKED)
             if s < anchor_stage]
    for stage in lower:
      room = config.num_context_items - (len(slots) - 1)
      pool = by_stage[stage]
      if len(pool) > room:
        pool = rng.choice(pool, size=room, replace=False)
      slots.extend(pool.tolist())
      slot_stages.extend([stage] * len(pool))
    negatives = sampler.sample(rng, excluded, config.num_random_negatives)
    slots.extend(negatives.tolist())
    slot_stages.extend([features.Stage.RANDOM] * len(negatives))
    yield pad(np.array(slots, dtype=np.int64),
              np.array(slot_stages, dtype=np.int64), config)


def pad(indexes: np.ndarray, stages: np.ndarray,
        config: MiningConfig) -> Tuple[np.ndarray, np.ndarray]:
  """Fills a slate up to the slate size with padding slots."""
  padding = config.slate_size - len(indexes)
  return (np.concatenate([indexes, np.full(padding, -1, dtype=np.int64)]),
          np.concatenate([stages, np.full(padding, features.Stage.PADDING,
                                          dtype=np.int64)]))


def encode(query: str, values: Dict[str, np.ndarray],
           stages: np.ndarray) -> tf.train.Example:
  """A slate as a tf.train.Example: the query, each slot column, stages.

  `values` are catalogue columns (`Catalog.slot_values`): int64, float32, or
  text (item ids, titles, categorical features), written as UTF-8 bytes.
  """
  feature = {
      features.QUERY: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[query.encode("utf-8")])),
      features.STAGE: tf.train.Feature(
          int64_list=tf.train.Int64List(value=stages.tolist())),
  }
  for name, column in values.items():
    if column.dtype == np.int64:
      feature[name] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=column.tolist()))
    elif column.dtype == np.float32:
      feature[name] = tf.train.Feature(
          float_list=tf.train.FloatList(value=column.tolist()))
    else:
      feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[v.encode("utf-8") for v in column.tolist()]))
  return tf.train.Example(features=tf.train.Features(feature=feature))


def tally_slate(stages: np.ndarray, counts: collections.Counter) -> None:
  """Counts a slate's anchor stage and the stage of each of its slots."""
  counts[count_keys.positives(features.Stage(int(stages[0])).name)] += 1
  for stage, count in zip(*np.unique(stages, return_counts=True)):
    counts[count_keys.slots(features.Stage(int(stage)).name)] += int(count)


def query_examples(log: QueryLog, catalog: catalog_lib.Catalog,
                   sampler: NegativeSampler, config: MiningConfig,
                   counts: collections.Counter) -> Iterator[bytes]:
  """A query's slates as serialized tf.Examples (of the query's split).

  Tallies them in `counts`, which is complete once the iterator is done.
  """
  made = 0
  for indexes, stages in slates(log, catalog, sampler, config):
    yield encode(log.query, catalog.slot_values(indexes),
                 stages).SerializeToString()
    tally_slate(stages, counts)
    made += 1
  if made:
    counts[count_keys.examples(log.split)] += made
    counts[count_keys.queries_with_examples(log.split)] += 1
