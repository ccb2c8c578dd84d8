"""The teacher's sentence vectors of every training query and item.

The token table starts from the teacher's word vectors
(`pretrained_tokens`), but a bag of words still misses what a sentence
encoder reads from the words together. Before training, each distinct query
and title of the train and eval slates is encoded whole by the teacher
(all-MiniLM-L6-v2, `model.minilm`), from the words the towers see (the
transformed token ids, read back through the vocabulary). Every batch then
carries the vectors of its slates' query and items (`TEACHER_QUERY`,
`TEACHER_ITEMS`), and each training slate a few more items: the teacher's
top picks for its query among the training items (`top_items`), which a
random batch would seldom hold. The distillation objective
(`tasks.TeacherDistillation`) reads them; nothing of it is served.
"""
import logging
import time
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from model import preprocessing
from model import pretrained_tokens
from model import tasks
from model import training_set

# Batch features the vectors travel in (float32).
TEACHER_QUERY = "teacher_query"  # [B, teacher_dim]
TEACHER_ITEMS = "teacher_items"  # [B, L, teacher_dim]
_SCORE_QUERIES = 1024  # Queries scored at once: [1024, items] floats.


def texts_of(token_ids: np.ndarray, vocabulary: Sequence[str]) -> list:
  """The words of each row of token ids, joined by spaces.

  Id `i + 1` is vocabulary word `i` (`preprocessing`); padding and
  out-of-vocabulary ids are left out.
  """
  words = np.array([""] + list(vocabulary), dtype=object)
  known = (token_ids > 0) & (token_ids <= len(vocabulary))
  return [" ".join(words[row[mask]]) for row, mask in zip(token_ids, known)]


class TeacherVectors:
  """Unit vectors of the teacher by query key and by item id."""

  def __init__(self, query_keys: np.ndarray, query_vectors: np.ndarray,
               item_ids: np.ndarray, item_vectors: np.ndarray):
    self._queries = _Table(query_keys, query_vectors)
    self._items = _Table(item_ids, item_vectors)

  @classmethod
  def encode(cls, splits: Sequence[training_set.TrainingSet],
             vocabulary: Sequence[str], cache_dir: str) -> "TeacherVectors":
    """Encodes the distinct texts of the queries and items of `splits`."""
    started = time.monotonic()
    queries, titles = {}, {}
    for split in splits:
      queries.update(zip(split.query_keys.tolist(), texts_of(
          split.query_features[preprocessing.QUERY_TOKENS], vocabulary)))
      titles.update(zip(split.item_ids.tolist(), texts_of(
          split.item_features[preprocessing.TITLE_TOKENS], vocabulary)))
    texts = [*queries.values(), *titles.values()]
    vectors = pretrained_tokens.teacher_vectors(texts, cache_dir,
                                                what="texts")
    logging.info("Teacher: %d queries and %d titles (%d distinct texts) in "
                 "%.1f s", len(queries), len(titles), len(set(texts)),
                 time.monotonic() - started)
    return cls(np.array(list(queries), np.int64), vectors[:len(queries)],
               np.array(list(titles), np.int64), vectors[len(queries):])

  def add_to(self, slates: tf.data.Dataset,
             training: Optional[training_set.TrainingSet] = None,
             picked: Optional[np.ndarray] = None,
             seed: int = 0) -> tf.data.Dataset:
    """`slates` with `TEACHER_QUERY` and `TEACHER_ITEMS` (zeros for a query
    or item the teacher has not encoded) and, given `training` and `picked`
    (`top_items(training, n)`, computed once for every pass), n more slots
    per slate: the teacher's top items for the slate's query, stage
    `tasks.TEACHER_PICK_STAGE`."""
    if training is not None and picked is not None and picked.shape[1]:
      slates = training_set.append_to_slates(
          slates, training, picked, picked.shape[1],
          tasks.TEACHER_PICK_STAGE, seed)

    def add(batch: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
      out = dict(batch)
      out[TEACHER_QUERY] = self._queries.lookup(
          tf.reshape(batch[preprocessing.QUERY_KEY], [-1]))
      out[TEACHER_ITEMS] = self._items.lookup(batch[preprocessing.ITEM_ID])
      return out

    return slates.map(add, num_parallel_calls=tf.data.AUTOTUNE)

  def top_items(self, training: training_set.TrainingSet,
                count: int) -> np.ndarray:
    """[Q, count] rows of `training.item_ids`: the items the teacher ranks
    highest for each of `training`'s queries, best first."""
    started = time.monotonic()
    items = self._items.lookup(tf.constant(training.item_ids, tf.int64))
    count = min(count, len(training.item_ids))
    top = np.zeros((len(training.query_keys), count), np.int32)
    for start in range(0, len(training.query_keys), _SCORE_QUERIES):
      queries = self._queries.lookup(tf.constant(
          training.query_keys[start:start + _SCORE_QUERIES], tf.int64))
      top[start:start + len(queries)] = tf.math.top_k(
          tf.matmul(queries, items, transpose_b=True), k=count).indices
    logging.info("Teacher: top %d of %d items for %d queries in %.1f s",
                 count, len(training.item_ids), len(training.query_keys),
                 time.monotonic() - started)
    return top


class _Table:
  """int64 keys -> rows of a matrix, a zero row for unknown keys."""

  def __init__(self, keys: np.ndarray, vectors: np.ndarray):
    self._index = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.int64),
            tf.range(len(keys), dtype=tf.int64)),
        default_value=len(keys))
    self._vectors = tf.constant(
        np.vstack([vectors, np.zeros_like(vectors[:1])]).astype(np.float32))

  def lookup(self, keys: tf.Tensor) -> tf.Tensor:
    return tf.gather(self._vectors, self._index.lookup(keys))
