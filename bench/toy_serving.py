"""Toy towers with the Trainer's signatures, and a serving dir made of them.

The serving tests and the serving benchmark need a pushed directory before
(or without) a trained model. These towers embed text as a hashed bag of
lower-case words through a small dense projection, with stock TF ops only and
the contract's signatures, so everything downstream (the exact `retrieval`
model, the ANN index, `mmse serve`, reloads) runs as it does on the real
towers. Both towers share their weights and the item tower ignores the id,
so a query equal to an item's title gets that item's embedding and, the
embeddings being unit vectors, that item scores 1.0, the highest possible.
"""
import os

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from model import features
from serving import indexing
from serving import model_registry
from tfx_pipeline import configs

SIGNATURE = "serving_default"


class HashedBagOfWords(tf.Module):
  """Sum of hashed word vectors -> tanh projection -> unit vector."""

  def __init__(self, dim: int, buckets: int, seed: int):
    super().__init__()
    rng = np.random.default_rng(seed)
    self.buckets = buckets
    self.table = tf.Variable(
        rng.standard_normal((buckets, dim)).astype(np.float32), name="table")
    self.projection = tf.Variable(
        (rng.standard_normal((dim, dim)) / np.sqrt(dim)).astype(np.float32),
        name="projection")

  def embed(self, text: tf.Tensor) -> tf.Tensor:
    words = tf.strings.split(tf.strings.lower(text))
    vectors = tf.gather(self.table,
                        tf.strings.to_hash_bucket_fast(words, self.buckets))
    bag = tf.reduce_sum(vectors, axis=1)
    return tf.math.l2_normalize(tf.tanh(tf.matmul(bag, self.projection)),
                                axis=1)


def write_towers(serving_dir: str, version: int = 1, dim: int = 64,
                 buckets: int = 1 << 15, seed: int = 0) -> None:
  """Writes `query_tower/<version>` and `item_tower/<version>`."""
  tower = HashedBagOfWords(dim, buckets, seed)

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=features.QUERY)])
  def embed_queries(query):
    return {"embedding": tower.embed(query)}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.int64, name=features.ITEM_ID),
      tf.TensorSpec([None], tf.string, name=features.TITLE)
  ])
  def embed_items(item_id, title):  # pylint: disable=unused-argument
    return {"embedding": tower.embed(title)}

  for name, function in ((configs.QUERY_TOWER, embed_queries),
                         (configs.ITEM_TOWER, embed_items)):
    tf.saved_model.save(tower, os.path.join(serving_dir, name, str(version)),
                        signatures={SIGNATURE: function})


def write_models_config(serving_dir: str) -> None:
  """TF Serving's ModelServerConfig for the three models, as the pusher's."""
  config = model_server_config_pb2.ModelServerConfig()
  for name in configs.SERVED_MODELS:
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = os.path.join(os.path.abspath(serving_dir), name)
    model.model_platform = "tensorflow"
  with open(os.path.join(serving_dir, model_registry.MODELS_CONFIG), "w",
            encoding="utf-8") as f:
    f.write(text_format.MessageToString(config))


def write_serving_dir(serving_dir: str, catalog_csv: str, kind: str = "scann",
                      k: int = 100, dim: int = 64, buckets: int = 1 << 15,
                      seed: int = 0) -> int:
  """Towers (version 1), `retrieval` with an index, models.config.

  Returns the `retrieval` version.
  """
  write_towers(serving_dir, dim=dim, buckets=buckets, seed=seed)
  write_models_config(serving_dir)
  return indexing.build_index(serving_dir, catalog_csv, kind=kind, k=k)
