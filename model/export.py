"""Exports the towers and the exact retrieval model as stock-TF SavedModels.

Each SavedModel carries the Transform graph, so clients send raw text and the
same normalisation, vocabularies and trigram hashing run as in training. Only
core TensorFlow ops are used (string ops, hash tables, matmul, top_k), so a
stock TF Serving binary loads every model written here.

- `query_tower/`: `query` [N] -> `embedding` [N, D], head weights folded in
  (D: the ensemble's width, its members' vectors side by side);
- `item_tower/`: `item_id`, `title` and the side features the model was
  trained with, [N] each -> `embedding` [N, D];
- `retrieval` (`export_retrieval_model`): `query` [N] -> the exact top-k
  `item_ids` (strings, as the catalogue has them) and `scores` over a
  constant catalogue matrix.
The fused score of a query and an item is the dot product of their embeddings.
"""
import logging
import os

import numpy as np
import tensorflow as tf

from contracts import serving_layout as layout
from model import preprocessing


def _save(module: tf.Module, signature, export_dir: str):
  tf.saved_model.save(module, export_dir,
                      signatures={layout.SERVING_SIGNATURE: signature})
  logging.info("Exported %s", export_dir)


def _signature(serve, input_signature):
  # No tensor-dependent Python control flow: AutoGraph would only slow tracing.
  return tf.function(serve, input_signature=input_signature,
                     autograph=False).get_concrete_function()


def _export_tower(tft_layer, serve, input_signature, layers, export_dir: str):
  """Saves one tower: its signature, the Transform graph and the weights.

  The module tracks the weights rather than the Keras layers, which keeps
  Keras' own SavedModel metadata (and its tracing of every layer) out of the
  export. Tracing the signature first builds any layer not yet built.
  """
  signature = _signature(serve, input_signature)
  module = tf.Module()
  module.tft_layer = tft_layer
  module.weights = [v for layer in layers for v in layer.variables]
  _save(module, signature, export_dir)


def export_towers(ensemble, tf_transform_output,
                  serving_model_dir: str) -> None:
  """Writes `query_tower/` and `item_tower/` SavedModels.

  Args:
    ensemble: an `mmse.Ensemble` of trained `mmse.MMSEModel`s (one or more).
    tf_transform_output: the `TFTransformOutput` the model was trained on.
    serving_model_dir: parent directory (the Trainer's
      `fn_args.serving_model_dir`).
  """
  tft_layer = tf_transform_output.transform_features_layer()
  raw_feature_spec = tf_transform_output.raw_feature_spec()

  def serve_queries(query):
    transformed = preprocessing.transform_queries(
        tft_layer, raw_feature_spec, query)
    return {layout.EMBEDDING_OUTPUT: ensemble.embed_queries(transformed)}

  _export_tower(tft_layer, serve_queries,
                [tf.TensorSpec([None], tf.string, name=layout.QUERY_INPUT)],
                [layer for m in ensemble.members
                 for layer in (m.query_tower, m.fusion)],
                os.path.join(serving_model_dir, layout.QUERY_TOWER))

  def serve_items(items):
    transformed = preprocessing.transform_items(
        tft_layer, raw_feature_spec, items)
    return {layout.EMBEDDING_OUTPUT: ensemble.embed_items(transformed)}

  item_inputs = {
      name: tf.TensorSpec([None], dtype, name=name) for name, dtype in
      preprocessing.item_raw_features(raw_feature_spec).items()
  }
  _export_tower(tft_layer, serve_items, [item_inputs],
                [m.item_tower for m in ensemble.members],
                os.path.join(serving_model_dir, layout.ITEM_TOWER))


def export_retrieval_model(query_tower_dir: str, item_ids: np.ndarray,
                           item_embeddings: np.ndarray, export_dir: str,
                           k: int) -> None:
  """Writes the `retrieval` SavedModel: exact top-k over the catalogue.

  The catalogue matrix is a non-trainable variable (in `variables/`, not in
  the graph proto, whose size is capped at 2 GB).

  Args:
    query_tower_dir: an exported `query_tower/` SavedModel.
    item_ids: [N] catalogue ids (str).
    item_embeddings: float32 [N, D] item-tower embeddings, row i for
      item_ids[i].
    export_dir: where the SavedModel goes.
    k: items per query; capped at N.
  """
  item_ids = np.asarray(item_ids, dtype=str)
  item_embeddings = np.asarray(item_embeddings, dtype=np.float32)
  if item_ids.ndim != 1 or item_embeddings.ndim != 2 or (
      len(item_ids) != len(item_embeddings)):
    raise ValueError(
        f"item_ids [N] and item_embeddings [N, D] do not match: "
        f"{item_ids.shape} vs {item_embeddings.shape}")
  if not len(item_ids):
    raise ValueError("Cannot export retrieval over an empty catalogue")
  if k < 1:
    raise ValueError(f"k must be positive, got {k}")
  k = min(k, len(item_ids))

  module = tf.Module()
  module.query_tower = tf.saved_model.load(query_tower_dir)
  embed = module.query_tower.signatures[layout.SERVING_SIGNATURE]
  query_dim = embed(**{layout.QUERY_INPUT: tf.constant([""])})[
      layout.EMBEDDING_OUTPUT].shape
  if query_dim[-1] != item_embeddings.shape[1]:
    raise ValueError(
        f"Query tower dim {query_dim[-1]} != item embedding dim "
        f"{item_embeddings.shape[1]}: the embeddings are from another model")
  module.item_ids = tf.Variable(
      [i.encode("utf-8") for i in item_ids.tolist()], dtype=tf.string,
      trainable=False, name="item_ids")
  module.item_embeddings = tf.Variable(
      item_embeddings, trainable=False, name="item_embeddings")

  def serve(query):
    queries = embed(**{layout.QUERY_INPUT: query})[layout.EMBEDDING_OUTPUT]
    scores = tf.matmul(queries, module.item_embeddings, transpose_b=True)
    top = tf.math.top_k(scores, k=k)
    return {
        layout.ITEM_IDS_OUTPUT: tf.gather(module.item_ids, top.indices),
        layout.SCORES_OUTPUT: top.values,
    }

  _save(module,
        _signature(serve, [tf.TensorSpec([None], tf.string,
                                         name=layout.QUERY_INPUT)]),
        export_dir)
