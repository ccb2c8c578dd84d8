"""The MMSE model: two towers, post-fusion and the multi-stage objectives.

Training sees slates (one query, L items); serving sees queries alone or items
alone. `embed_queries` and `embed_items` are the two serving halves - both in
the fused space, where the score is a dot product - and `compute_loss` runs
them over a batch of slates and mixes the global retrieval loss with the local
stage-ranking loss. `Ensemble` serves several trained models as one.
"""
import dataclasses
from typing import Dict, List, Mapping, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from model import config as model_config
from model import fusion
from model import preprocessing
from model import tasks
from model import towers

# Transformed slate features the item tower reads (flattened from [B, L, ...]).
_ITEM_INPUTS = (preprocessing.TITLE_TOKENS, preprocessing.TITLE_TRIGRAMS,
                preprocessing.ITEM_INDEX, preprocessing.PRICE)


class _LatestBatch(tf.keras.metrics.Metric):
  """The value of the latest batch: an objective's per-step curve.

  Under a distribution strategy: the mean of the replicas' values, which for
  the objectives' replica shares (`tasks.replica_share_of_mean`) is the whole
  batch's value.
  """

  def __init__(self, name: str, **kwargs):
    super().__init__(name=name, **kwargs)
    self.latest = self.add_weight(name="latest", initializer="zeros",
                                  aggregation=tf.VariableAggregation.MEAN)

  def update_state(self, value: tf.Tensor) -> None:
    self.latest.assign(value)

  def result(self) -> tf.Tensor:
    return tf.identity(self.latest)


class MMSEModel(tfrs.models.Model):
  """Query and item towers scored by post-fusion, trained on slates."""

  def __init__(self, config: model_config.ModelConfig,
               id_feature_sizes: Dict[str, int], use_price: bool):
    """Builds the model.

    Args:
      config: the model's knobs.
      id_feature_sizes: `preprocessing.id_feature_sizes(...)`.
      use_price: whether the items carry a `price` (the Transform output has
        `preprocessing.PRICE`).
    """
    super().__init__()
    if not (config.retrieval_weight or config.ranking_weight):
      raise ValueError("retrieval_weight and ranking_weight are both 0: "
                       "nothing to train")
    self.config = config
    text = towers.TextEncoder(
        id_feature_sizes[preprocessing.QUERY_TOKENS],
        id_feature_sizes[preprocessing.QUERY_TRIGRAMS],
        config, name="text_encoder")
    self.query_tower = towers.QueryTower(text, config, name="query_tower")
    self.item_tower = towers.ItemTower(
        text, config, id_feature_sizes, use_price, name="item_tower")
    self.fusion = fusion.PostFusion(config.num_heads, name="post_fusion")
    self.retrieval_task = tasks.MultiStageRetrieval(
        temperature=config.temperature,
        ordered_weight=config.ordered_weight,
        clicked_weight=config.clicked_weight,
        use_unclicked=config.use_unclicked and config.unclicked_in_retrieval,
        use_random_negatives=config.use_random_negatives,
        remove_accidental_hits=config.remove_accidental_hits,
        sampling_bias_correction=config.sampling_bias_correction,
        name="retrieval")
    self.ranking_task = tasks.StageRankingTask(
        temperature=config.temperature,
        use_unclicked=config.use_unclicked,
        use_random_negatives=config.use_random_negatives,
        name="ranking")
    # Epoch means of each objective (the base class reports the last batch).
    self.retrieval_loss = tf.keras.metrics.Mean(name="retrieval_loss")
    self.ranking_loss = tf.keras.metrics.Mean(name="ranking_loss")
    self.mean_loss = tf.keras.metrics.Mean(name="mean_loss")
    # This batch's value of each objective, for per-step curves in TensorBoard.
    self.batch_retrieval_loss = _LatestBatch(name="batch_retrieval_loss")
    self.batch_ranking_loss = _LatestBatch(name="batch_ranking_loss")
    # The batch's total: the logs' `loss`, one value under any strategy.
    self.batch_loss = _LatestBatch(name="batch_loss")

  @classmethod
  def from_transform_output(cls, config: model_config.ModelConfig,
                            text_config: model_config.TextConfig,
                            tf_transform_output) -> "MMSEModel":
    """Sizes the embedding tables from the Transform's vocabularies."""
    return cls(config,
               preprocessing.id_feature_sizes(tf_transform_output, text_config),
               preprocessing.PRICE in
               tf_transform_output.transformed_feature_spec())

  def embed_queries(self, inputs: Mapping[str, tf.Tensor],
                    training: bool = False) -> tf.Tensor:
    """[N, num_heads * head_dim] query vectors, head weights folded in."""
    return self.fusion.query_embedding(
        self.query_tower(inputs, training=training))

  def embed_items(self, inputs: Mapping[str, tf.Tensor],
                  training: bool = False) -> tf.Tensor:
    """[N, num_heads * head_dim] item vectors."""
    return self.fusion.item_embedding(
        self.item_tower(inputs, training=training))

  # The model has no tensor-dependent Python control flow, and AutoGraph
  # would otherwise transpile all of tf_keras beneath it (a minute of tracing).
  @tf.autograph.experimental.do_not_convert
  def compute_loss(self, inputs: Mapping[str, tf.Tensor],
                   training: bool = False) -> tf.Tensor:
    """Weighted sum of the enabled objectives over a batch of slates."""
    stage = inputs[preprocessing.STAGE]
    query_embeddings = self.embed_queries(inputs, training)
    slots = {
        name: tf.reshape(inputs[name], [-1] + inputs[name].shape[2:].as_list())
        for name in _ITEM_INPUTS + tuple(self.item_tower.side_embeddings)
        if name in inputs
    }
    flat_embeddings = self.embed_items(slots, training)
    item_embeddings = tf.reshape(
        flat_embeddings, [-1, tf.shape(stage)[1], flat_embeddings.shape[-1]])

    loss = tf.constant(0.0)
    if self.config.retrieval_weight:
      retrieval = self.retrieval_task(
          query_embeddings, item_embeddings, stage,
          inputs[preprocessing.ITEM_KEY], inputs[preprocessing.QUERY_KEY])
      self.retrieval_loss.update_state(retrieval)
      self.batch_retrieval_loss.update_state(retrieval)
      loss += self.config.retrieval_weight * retrieval
    if self.config.ranking_weight:
      scores = tf.einsum("bd,bld->bl", query_embeddings, item_embeddings)
      ranking = self.ranking_task(scores, stage)
      self.ranking_loss.update_state(ranking)
      self.batch_ranking_loss.update_state(ranking)
      loss += self.config.ranking_weight * ranking
    self.mean_loss.update_state(loss)
    self.batch_loss.update_state(loss)
    return loss

  def train_step(self, inputs):
    """One step; under a strategy, of the replicas together.

    Unlike `tfrs.models.Model.train_step`, the gradient is scaled by
    1 / num_replicas: the optimizer sums the replicas' gradients, and each
    replica's loss is its share of the whole batch's mean (see
    `tasks.replica_share_of_mean`), so the step is that of one device over
    the whole batch. The logs' `loss` is the whole batch's too (TFRS reports
    each replica's own, which Keras then sums).
    """
    replicas = self.distribute_strategy.num_replicas_in_sync
    with tf.GradientTape() as tape:
      loss = self.compute_loss(inputs, training=True)
      regularization_loss = tf.reduce_sum(
          [tf.reduce_sum(term) for term in self.losses])
      scaled_loss = (loss + regularization_loss) / replicas
    gradients = tape.gradient(scaled_loss, self.trainable_variables)
    self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
    return self._logs()

  def test_step(self, inputs):
    self.compute_loss(inputs, training=False)
    return self._logs()

  def _logs(self) -> Dict[str, tf.Tensor]:
    logs = {metric.name: metric.result() for metric in self.metrics}
    logs["loss"] = logs.pop(self.batch_loss.name)
    return logs


def member_configs(config: model_config.ModelConfig
                  ) -> List[model_config.ModelConfig]:
  """The configs of `config.trainings` models, each with its own seed."""
  if config.trainings < 1:
    raise ValueError(f"model.trainings must be at least 1, got "
                     f"{config.trainings}")
  return [dataclasses.replace(
      config, seed=config.seed + model_config.MEMBER_SEED_STRIDE * k)
          for k in range(config.trainings)]


class Ensemble:
  """Trained models side by side: each tower's vectors concatenated.

  The dot product of concatenated vectors is the sum of the members' fused
  scores, so the ensemble is served and indexed like one model, at the
  members' total width.
  """

  def __init__(self, members: Sequence[MMSEModel]):
    if not members:
      raise ValueError("An ensemble needs at least one model")
    self.members = list(members)

  def embed_queries(self, inputs: Mapping[str, tf.Tensor],
                    training: bool = False) -> tf.Tensor:
    """[N, sum of the members' widths] query vectors."""
    return tf.concat([m.embed_queries(inputs, training)
                      for m in self.members], axis=-1)

  def embed_items(self, inputs: Mapping[str, tf.Tensor],
                  training: bool = False) -> tf.Tensor:
    """[N, sum of the members' widths] item vectors."""
    return tf.concat([m.embed_items(inputs, training)
                      for m in self.members], axis=-1)
