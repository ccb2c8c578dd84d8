"""The two MMSE objectives over multi-stage slates.

A slate holds one query's anchor positive (ordered or clicked), lower-stage
items of the same query (clicked, shown-unclicked) and random catalogue items,
each slot tagged with its `features.Stage`. The objectives read the same batch
of slates at two scales:

- `MultiStageRetrieval` (global) asks each positive to beat every other item
  in the batch, which is the task the ANN index serves: find the few right
  items among all of them.
- `StageRankingTask` (local) asks each slate to be ordered by stage, which
  teaches the grades in between: a shown-but-unclicked item is closer to the
  query than a random one, a clicked item is not as good as an ordered one.

Both honour `use_unclicked` and `use_random_negatives` by masking those slots
out, so an ablation is a config change.
"""
from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from contracts import features
from model import config as model_config

# Added to the logits of excluded candidates: far below any real logit, yet
# finite, so a row whose candidates are all excluded stays NaN-free.
MIN_FLOAT = np.finfo(np.float32).min / 100.0


def slot_mask(stage: tf.Tensor, use_unclicked: bool,
              use_random_negatives: bool) -> tf.Tensor:
  """Slots that take part in the objectives: mined ones the config keeps."""
  mask = stage >= features.Stage.RANDOM
  if not use_unclicked:
    mask &= stage != features.Stage.UNCLICKED
  if not use_random_negatives:
    mask &= stage != features.Stage.RANDOM
  return mask


def _replica_context() -> Optional[tf.distribute.ReplicaContext]:
  """The replica context if the batch is split among several replicas."""
  context = tf.distribute.get_replica_context()
  if context is None or context.num_replicas_in_sync == 1:
    return None
  return context


def replica_share_of_mean(total: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
  """The whole batch's mean, total / count, as this replica's share.

  Under a distribution strategy each replica holds part of the batch and
  its own `total` and `count`; each returns num_replicas * total / (sum of
  the counts), so the mean of what the replicas return - the loss they
  train on (`mmse.MMSEModel.train_step`) and the metrics report - is the
  whole batch's mean, whatever share of it each replica held. Without one:
  total / count.
  """
  context = _replica_context()
  if context is None:
    return tf.math.divide_no_nan(total, count)
  count = context.all_reduce(tf.distribute.ReduceOp.SUM,
                             tf.stop_gradient(count))
  return context.num_replicas_in_sync * tf.math.divide_no_nan(total, count)


class _WholeBatch(NamedTuple):
  """The candidates and positive rows of every replica's share of a batch."""
  candidates: tf.Tensor  # [C, D]
  slot_item: tf.Tensor  # [C]
  is_candidate: tf.Tensor  # [C]
  row_query: tf.Tensor  # [R_all]
  row_item: tf.Tensor  # [R_all]
  positives: tf.Tensor  # [R]: this replica's positive slots, indices into C


def _whole_batch(candidates, slot_item, is_candidate, row_query, row_item,
                 positives) -> _WholeBatch:
  """Gathers the replicas' slots and rows, in replica order.

  The gradient of the gathered candidates flows back to the replica that
  embedded them. Without a strategy (or with one replica) the batch is
  already whole.
  """
  context = _replica_context()
  if context is None:
    return _WholeBatch(candidates, slot_item, is_candidate, row_query,
                       row_item, positives)
  sizes = context.all_gather(tf.shape(slot_item)[:1], axis=0)
  offset = tf.reduce_sum(sizes[:context.replica_id_in_sync_group])
  # Apart, so that the integers stay off the gradient's path.
  gathered = context.all_gather(candidates, axis=0)
  slot_item, is_candidate, row_query, row_item = context.all_gather(
      [slot_item, tf.cast(is_candidate, tf.int32), row_query, row_item],
      axis=0)
  return _WholeBatch(gathered, slot_item, tf.cast(is_candidate, tf.bool),
                     row_query, row_item,
                     positives + tf.cast(offset, positives.dtype))


def _positive_of_query(row_query: tf.Tensor, all_row_query: tf.Tensor,
                       all_row_item: tf.Tensor,
                       slot_item: tf.Tensor) -> tf.Tensor:
  """[R, C]: whether slot c holds an item that is a positive of r's query.

  Args:
    row_query: [R] query keys of this replica's rows.
    all_row_query: [R_all] query keys of every row of the batch.
    all_row_item: [R_all] item keys of those rows' positives.
    slot_item: [C] item keys of the batch's slots.

  Through a table of the batch's (query, positive item) pairs, [queries,
  items]: comparing every row with every row and then with every slot
  (an [R, R_all] by [R_all, C] product) cost as much as the logits.
  """
  queries, query_index = tf.unique(tf.concat([all_row_query, row_query], 0))
  items, item_index = tf.unique(tf.concat([all_row_item, slot_item], 0))
  rows = tf.size(all_row_query)
  pairs = tf.stack([query_index[:rows], item_index[:rows]], axis=1)
  is_pair = tf.scatter_nd(pairs, tf.ones([rows], tf.int32),
                          tf.stack([tf.size(queries), tf.size(items)])) > 0
  return tf.gather(tf.gather(is_pair, query_index[rows:]),
                   item_index[tf.size(all_row_item):], axis=1)


class MultiStageRetrieval(tf.keras.layers.Layer, tfrs.tasks.base.Task):
  """Softmax of each positive against every item of the batch.

  Every slot with a positive stage (clicked or ordered) is one row: its
  query's embedding scores all B * L slots of the batch - the other queries'
  items (their positives, context items and random negatives alike) and the
  slate's own lower-stage and random items - and the loss is the cross-entropy
  of the positive's slot. In-batch items follow the logs' popularity, the
  random items cover the long tail of the catalogue that a search log never
  shows, and the slate's own unclicked items are the hardest negatives: shown
  for this very query and passed over.

  Two corrections keep the softmax honest:
  - accidental hits: a candidate whose item is a positive of the row's query
    (the same item elsewhere in the batch, or another positive of a query that
    appears in several examples) is removed rather than pushed away;
  - sampling bias (Yi et al., RecSys 2019): an item that fills k slots of the
    batch would enter the softmax k times; subtracting log(k) from its logits
    makes every distinct item count once, so popular items are not
    over-penalised as negatives.

  Rows are weighted by their stage (an order is stronger evidence than a
  click) and averaged, so the loss scale does not depend on the batch size.

  Under a distribution strategy each replica scores its own rows against the
  candidates of every replica (gathered), with both corrections over the
  whole batch, so splitting a batch among replicas leaves the loss as it is.
  """

  def __init__(self,
               temperature: float = model_config.ModelConfig.temperature,
               ordered_weight: float = model_config.ModelConfig.ordered_weight,
               clicked_weight: float = model_config.ModelConfig.clicked_weight,
               use_unclicked: bool = model_config.ModelConfig.use_unclicked,
               use_random_negatives: bool = (
                   model_config.ModelConfig.use_random_negatives),
               remove_accidental_hits: bool = (
                   model_config.ModelConfig.remove_accidental_hits),
               sampling_bias_correction: bool = (
                   model_config.ModelConfig.sampling_bias_correction),
               name: Optional[str] = None) -> None:
    """Initializes the task.

    Args:
      temperature: Divides the scores before the softmax; fused scores of
        unit-norm heads lie in a narrow range, so a small temperature gives the
        softmax enough contrast.
      ordered_weight: Weight of a row whose positive was ordered.
      clicked_weight: Weight of a row whose positive was clicked.
      use_unclicked: Whether shown-unclicked slots are candidates.
      use_random_negatives: Whether random catalogue slots are candidates.
      remove_accidental_hits: Whether to exclude candidates that are positives
        of the row's query.
      sampling_bias_correction: Whether to subtract log(in-batch count) from
        each candidate's logit.
      name: Optional task name.
    """
    super().__init__(name=name)
    self._temperature = temperature
    self._ordered_weight = ordered_weight
    self._clicked_weight = clicked_weight
    self._use_unclicked = use_unclicked
    self._use_random_negatives = use_random_negatives
    self._remove_accidental_hits = remove_accidental_hits
    self._sampling_bias_correction = sampling_bias_correction

  def call(self, query_embeddings: tf.Tensor, item_embeddings: tf.Tensor,
           stage: tf.Tensor, item_keys: tf.Tensor,
           query_keys: tf.Tensor) -> tf.Tensor:
    """Computes the loss.

    Args:
      query_embeddings: [B, D] fused-space query vectors.
      item_embeddings: [B, L, D] fused-space vectors of each slate's items.
      stage: [B, L] `features.Stage` of each slot.
      item_keys: [B, L] item id fingerprints (equal keys are the same item).
      query_keys: [B] query fingerprints (equal keys are the same query).

    Returns:
      Scalar: weighted mean cross-entropy over the positive slots.
    """
    batch_size = tf.shape(stage)[0]
    slate_size = tf.shape(stage)[1]
    candidates = tf.reshape(item_embeddings, [-1, item_embeddings.shape[-1]])
    slot_stage = tf.reshape(stage, [-1])
    slot_item = tf.reshape(item_keys, [-1])
    slot_example = tf.repeat(tf.range(batch_size), slate_size)
    is_candidate = tf.reshape(
        slot_mask(stage, self._use_unclicked, self._use_random_negatives), [-1])

    positives = tf.where(slot_stage >= features.Stage.CLICKED)[:, 0]
    row_example = tf.gather(slot_example, positives)
    row_query = tf.gather(query_keys, row_example)
    row_item = tf.gather(slot_item, positives)
    row_stage = tf.gather(slot_stage, positives)
    # Under a distribution strategy each replica holds a share of the batch:
    # its rows score the whole batch's candidates.
    batch = _whole_batch(candidates, slot_item, is_candidate, row_query,
                         row_item, positives)
    logits = tf.matmul(tf.gather(query_embeddings, row_example),
                       batch.candidates, transpose_b=True) / self._temperature
    labels = tf.one_hot(batch.positives, tf.size(batch.slot_item),
                        on_value=True, off_value=False)
    excluded = tf.logical_not(batch.is_candidate)[tf.newaxis, :]

    if self._remove_accidental_hits:
      positive_of_query = _positive_of_query(
          row_query, batch.row_query, batch.row_item, batch.slot_item)
      excluded = excluded | (positive_of_query & tf.logical_not(labels))

    if self._sampling_bias_correction:
      unique_items, item_index = tf.unique(batch.slot_item)
      counts = tf.math.unsorted_segment_sum(
          tf.cast(batch.is_candidate, tf.float32), item_index,
          tf.size(unique_items))
      logits -= tf.math.log(tf.maximum(tf.gather(counts, item_index), 1.0))

    logits = tf.where(excluded, tf.constant(MIN_FLOAT, logits.dtype), logits)
    losses = tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.float32), logits=logits)
    weights = tf.where(row_stage == features.Stage.ORDERED,
                       self._ordered_weight, self._clicked_weight)
    return replica_share_of_mean(tf.reduce_sum(weights * losses),
                                 tf.reduce_sum(weights))


class StageRankingTask(tf.keras.layers.Layer, tfrs.tasks.base.Task):
  """Orders each slate by stage: ordered > clicked > unclicked > random.

  For every pair of real slots of one slate where `a` has the higher stage,
  log(1 + exp(-(s_a - s_b) / temperature)): RankNet's pairwise loss, on the
  same scale as the retrieval softmax. Padding never pairs, and pairs of
  equal stage carry no order. The loss is the mean over the batch's pairs.
  Unlike the retrieval softmax, which only sees positives against the rest,
  this teaches the grades between negatives too.
  """

  def __init__(self,
               temperature: float = model_config.ModelConfig.temperature,
               use_unclicked: bool = model_config.ModelConfig.use_unclicked,
               use_random_negatives: bool = (
                   model_config.ModelConfig.use_random_negatives),
               name: Optional[str] = None) -> None:
    """Initializes the task.

    Args:
      temperature: Scale of the logistic loss.
      use_unclicked: Whether shown-unclicked slots take part.
      use_random_negatives: Whether random catalogue slots take part.
      name: Optional task name.
    """
    super().__init__(name=name)
    self._temperature = temperature
    self._use_unclicked = use_unclicked
    self._use_random_negatives = use_random_negatives

  def call(self, scores: tf.Tensor, stage: tf.Tensor) -> tf.Tensor:
    """Computes the loss.

    Args:
      scores: [B, L] fused score of each slot against its slate's query.
      stage: [B, L] `features.Stage` of each slot.

    Returns:
      Scalar: mean pairwise loss over the ordered pairs.
    """
    real = slot_mask(stage, self._use_unclicked, self._use_random_negatives)
    grade = tf.cast(stage, scores.dtype)
    stage_gap = grade[:, :, None] - grade[:, None, :]
    pairs = real[:, :, None] & real[:, None, :] & (stage_gap > 0)
    score_gap = scores[:, :, None] - scores[:, None, :]
    losses = tf.nn.softplus(-score_gap / self._temperature)
    weights = tf.cast(pairs, scores.dtype)
    return replica_share_of_mean(tf.reduce_sum(losses * weights),
                                 tf.reduce_sum(weights))
