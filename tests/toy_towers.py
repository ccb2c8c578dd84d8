"""Tiny tower SavedModels with the Trainer's signatures, for evaluation tests.

Each tower embeds text as a bag of hashed lower-case words, so a query and an
item score the number of words they share: rankings can be worked out by
hand. A `query_sign` of -1 turns the model upside down (shared words push an
item to the bottom), a model that is deterministically bad.
"""
import os

import tensorflow as tf

DIM = 4096


class _BagOfWords(tf.Module):
  """Counts of hashed words; `sign` scales the whole embedding."""

  def __init__(self, sign: float):
    super().__init__()
    self.sign = tf.Variable(sign, dtype=tf.float32)

  def embed(self, text):
    tokens = tf.strings.split(tf.strings.lower(text))
    buckets = tf.strings.to_hash_bucket_fast(tokens, DIM)
    return self.sign * tf.reduce_sum(tf.one_hot(buckets, DIM), axis=1)


def save_query_tower(path: str, sign: float = 1.0):
  tower = _BagOfWords(sign)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def serve(query):
    return {"embedding": tower.embed(query)}

  tf.saved_model.save(tower, path, signatures={"serving_default": serve})


def save_item_tower(path: str, with_brand: bool = False):
  """Embeds the title (and brand); declares item_id as the contract says."""
  tower = _BagOfWords(1.0)
  if with_brand:

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([None], tf.string),
        tf.TensorSpec([None], tf.string)
    ])
    def serve(item_id, title, brand):  # pylint: disable=unused-argument
      return {"embedding": tower.embed(title) + tower.embed(brand)}
  else:

    @tf.function(input_signature=[
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([None], tf.string)
    ])
    def serve(item_id, title):  # pylint: disable=unused-argument
      return {"embedding": tower.embed(title)}

  tf.saved_model.save(tower, path, signatures={"serving_default": serve})


def save_towers(directory: str, query_sign: float = 1.0):
  """Writes `query_tower/` and `item_tower/` under directory."""
  save_query_tower(os.path.join(directory, "query_tower"), query_sign)
  save_item_tower(os.path.join(directory, "item_tower"))
