"""The query and item towers over transformed features.

Both towers read words and character trigrams through one pair of embedding
tables, so a query word and the same word in a title are the same vector: the
text space is shared, which is what lets the model score queries it never saw
in training. Each tower emits `num_heads` L2-normalised sub-embeddings of
different grain - a mixed MLP over everything it knows, one over words only,
one over trigrams only and a lexical one that matches words exactly - that
`fusion.PostFusion` combines into one score. All but the mixed head are
shared by the towers too (see `TextEncoder`).
"""
from typing import Dict, Mapping, Optional, Sequence, Tuple

import tensorflow as tf

from contracts import features
from model import config as model_config
from model import preprocessing

# One seed for the word codes, so a rebuilt model draws the same ones.
_WORD_CODE_SEED = 7
# Head kinds in the order `num_heads` takes them: a single-head model keeps
# the richest one.
HEAD_KINDS = ("mixed", "tokens", "trigrams", "lexical")


def head_kinds(num_heads: int) -> Tuple[str, ...]:
  if not 1 <= num_heads <= len(HEAD_KINDS):
    raise ValueError(
        f"num_heads must be in 1..{len(HEAD_KINDS)} ({HEAD_KINDS}), "
        f"got {num_heads}")
  return HEAD_KINDS[:num_heads]


def _non_padding(ids: tf.Tensor) -> tf.RaggedTensor:
  """Each text's ids without its padding (id 0), ragged [N, None]."""
  return tf.ragged.boolean_mask(ids, ids != 0)


def _summed(vectors_of, ids: tf.RaggedTensor) -> tf.Tensor:
  """[N, D]: the sum of `vectors_of` over each text's ids; zeros if none.

  Only the real ids are looked up: most of a padded text is padding (and
  word dropout adds more), and embedding it only to mask it out was the
  bulk of a training step's work.
  """
  return tf.reduce_sum(ids.with_flat_values(vectors_of(ids.flat_values)),
                       axis=1)


def _mean(embedding, ids: tf.RaggedTensor) -> tf.Tensor:
  """[N, D]: the mean of `embedding` over each text's ids; zeros if none."""
  count = tf.cast(ids.row_lengths(), tf.float32)[:, tf.newaxis]
  return _summed(embedding, ids) / tf.maximum(count, 1.0)


class TextEncoder(tf.keras.layers.Layer):
  """What both towers share: word and trigram tables and the one-grain heads.

  The word, trigram and lexical heads are the same layers in both towers (a
  siamese part): a query and a title with the same words get the same head
  vectors before any training, so the model starts from lexical matching and
  learns from the logs which words are near each other. The mixed head, which
  also reads an item's id and side features, is each tower's own.
  """

  def __init__(self, token_vocabulary_size: int, trigram_buckets: int,
               config: model_config.ModelConfig, **kwargs):
    super().__init__(**kwargs)
    self.token_embedding = tf.keras.layers.Embedding(
        token_vocabulary_size, config.token_embedding_dim,
        name="token_embedding")
    self.trigram_embedding = tf.keras.layers.Embedding(
        trigram_buckets, config.token_embedding_dim, name="trigram_embedding")
    self._word_dropout = config.word_dropout
    # No bias: equal pooled inputs must map to equal head vectors.
    self.token_head = tf.keras.layers.Dense(
        config.head_dim, use_bias=False, name="tokens_head")
    self.trigram_head = tf.keras.layers.Dense(
        config.head_dim, use_bias=False, name="trigrams_head")
    # The lexical head: a fixed random code per word, summed with a learned
    # weight per word. Codes of distinct words are nearly orthogonal, so the
    # head's dot product counts shared words, weighted like IDF - exact
    # matching that the semantic heads blur, as one dense vector. Built only
    # when `num_heads` takes it: the code table is head_dim floats per word.
    self.word_codes = self.word_weights = None
    if "lexical" in head_kinds(config.num_heads):
      self.word_codes = tf.keras.layers.Embedding(
          token_vocabulary_size, config.head_dim, trainable=False,
          embeddings_initializer=tf.keras.initializers.RandomNormal(
              stddev=config.head_dim ** -0.5, seed=_WORD_CODE_SEED),
          name="word_codes")
      self.word_weights = tf.keras.layers.Embedding(
          token_vocabulary_size, 1, embeddings_initializer="ones",
          name="word_weights")

  def call(self, token_ids: tf.Tensor, trigram_ids: tf.Tensor,
           training: Optional[bool] = None
          ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Pooled word and trigram vectors, [N, token_embedding_dim] each, and
    the weighted word codes, [N, head_dim] (None without the lexical head)."""
    if training and self._word_dropout:
      token_ids = self._drop(token_ids)
      trigram_ids = self._drop(trigram_ids)
    token_ids = _non_padding(token_ids)
    lexical = None
    if self.word_codes is not None:
      lexical = _summed(
          lambda ids: self.word_codes(ids) * self.word_weights(ids), token_ids)
    return (_mean(self.token_embedding, token_ids),
            _mean(self.trigram_embedding, _non_padding(trigram_ids)),
            lexical)

  def _drop(self, ids: tf.Tensor) -> tf.Tensor:
    """Turns a random share of the ids into padding.

    A training query is seen with the same words every epoch and is soon
    remembered whole; without some of its words it has to be matched by the
    others, which is what an unseen query needs.
    """
    keep = tf.random.uniform(tf.shape(ids)) >= self._word_dropout
    return tf.where(keep, ids, tf.zeros_like(ids))


class _Tower(tf.keras.Model):
  """Heads over pooled text (and, for items, side inputs)."""

  def __init__(self, text_encoder: TextEncoder,
               config: model_config.ModelConfig,
               **kwargs):
    super().__init__(**kwargs)
    self.text_encoder = text_encoder
    self._kinds = head_kinds(config.num_heads)
    self.mixed_head = tf.keras.Sequential([
        tf.keras.layers.Dense(config.hidden_dim, activation="relu"),
        tf.keras.layers.Dropout(config.dropout),
        tf.keras.layers.Dense(config.head_dim),
    ], name="mixed_head")

  def _embed(self, token_ids, trigram_ids, side: Sequence[tf.Tensor],
             training) -> tf.Tensor:
    """[N, num_heads, head_dim], each head L2-normalised."""
    tokens, trigrams, lexical = self.text_encoder(token_ids, trigram_ids,
                                                  training=training)
    heads = []
    for kind in self._kinds:
      if kind == "tokens":
        head = self.text_encoder.token_head(tokens)
      elif kind == "trigrams":
        head = self.text_encoder.trigram_head(trigrams)
      elif kind == "lexical":
        head = lexical
      else:
        head = self.mixed_head(tf.concat([tokens, trigrams, *side], axis=-1),
                               training=training)
      heads.append(tf.math.l2_normalize(head, axis=-1))
    return tf.stack(heads, axis=1)


class QueryTower(_Tower):
  """Embeds transformed queries: `QUERY_TOKENS`, `QUERY_TRIGRAMS` [N, ...]."""

  def call(self, inputs: Mapping[str, tf.Tensor],
           training: Optional[bool] = None) -> tf.Tensor:
    return self._embed(inputs[preprocessing.QUERY_TOKENS],
                       inputs[preprocessing.QUERY_TRIGRAMS], (), training)


class ItemTower(_Tower):
  """Embeds transformed items: title features, id and side features [N, ...].

  The title carries the signal, so catalogue items that no training slate
  holds still get a useful embedding. The optional id embedding
  (`use_item_id`) remembers the items seen in training; it helps known
  queries, but on unseen ones it pulls the ranking towards trained items.
  """

  def __init__(self, text_encoder: TextEncoder,
               config: model_config.ModelConfig,
               id_feature_sizes: Dict[str, int],
               use_price: bool, **kwargs):
    super().__init__(text_encoder, config, **kwargs)
    side_dim = max(config.token_embedding_dim // 4, 1)
    self.item_embedding = tf.keras.layers.Embedding(
        id_feature_sizes[preprocessing.ITEM_INDEX], config.token_embedding_dim,
        name="item_embedding") if config.use_item_id else None
    side_names = [preprocessing.side_feature_index(n)
                  for n in features.ITEM_SIDE_FEATURES]
    self.side_embeddings = {
        name: tf.keras.layers.Embedding(
            id_feature_sizes[name], side_dim, name=f"{name}_embedding")
        for name in side_names if name in id_feature_sizes
    }
    self._use_price = use_price

  def call(self, inputs: Mapping[str, tf.Tensor],
           training: Optional[bool] = None) -> tf.Tensor:
    side = []
    if self.item_embedding is not None:
      side.append(self.item_embedding(inputs[preprocessing.ITEM_INDEX]))
    for name, embedding in self.side_embeddings.items():
      side.append(embedding(inputs[name]))
    if self._use_price:
      side.append(inputs[preprocessing.PRICE][:, tf.newaxis])
    return self._embed(inputs[preprocessing.TITLE_TOKENS],
                       inputs[preprocessing.TITLE_TRIGRAMS], side, training)
