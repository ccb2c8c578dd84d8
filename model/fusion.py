"""Post-fusion similarity: several per-head dot products, learned mix.

Each tower emits `num_heads` normalised sub-embeddings of different grain
(words, trigrams, exact words, everything). Their per-head dot products are
combined as

  score(q, i) = sum_h w_h <q_h, i_h>,   w_h = softplus(v_h) >= 0,

so training decides how much each grain counts. Because the weights are
non-negative scalars per head, they fold into the query side:

  score(q, i) = <concat_h(w_h q_h), concat_h(i_h)>,

which keeps the fused score one dot product, servable from any ANN index.
"""
import numpy as np
import tensorflow as tf


class PostFusion(tf.keras.layers.Layer):
  """Learned non-negative weights over per-head similarities."""

  def __init__(self, num_heads: int, **kwargs):
    super().__init__(**kwargs)
    self._num_heads = num_heads
    # Starts at w_h = 1 / num_heads: the fused score of unit-norm heads then
    # stays in [-1, 1], the range the softmax temperature assumes.
    self.head_logits = self.add_weight(
        name="head_logits", shape=[num_heads],
        initializer=tf.keras.initializers.Constant(
            np.log(np.expm1(1.0 / num_heads))))

  def head_weights(self) -> tf.Tensor:
    """w_h >= 0, [num_heads]."""
    return tf.nn.softplus(self.head_logits)

  def query_embedding(self, query_heads: tf.Tensor) -> tf.Tensor:
    """[N, H, d] heads -> [N, H * d] query vector with the weights folded in."""
    weighted = query_heads * self.head_weights()[:, tf.newaxis]
    return _flatten_heads(weighted)

  def item_embedding(self, item_heads: tf.Tensor) -> tf.Tensor:
    """[N, H, d] heads -> [N, H * d] item vector (the index side)."""
    return _flatten_heads(item_heads)

  def call(self, query_heads: tf.Tensor, item_heads: tf.Tensor) -> tf.Tensor:
    """Fused scores of every query with every item, [Nq, Ni]."""
    per_head = tf.einsum("qhd,ihd->qih", query_heads, item_heads)
    return tf.reduce_sum(per_head * self.head_weights(), axis=-1)


def _flatten_heads(heads: tf.Tensor) -> tf.Tensor:
  return tf.reshape(heads, [-1, heads.shape[1] * heads.shape[2]])
