"""Tests of hard-negative mining: the model's near misses, appended to slates.
"""
import numpy as np
import tensorflow as tf

from contracts import features
from model import hard_negatives
from model import preprocessing
from model import training_set

S = features.Stage


class OneHotModel:
  """Scores query q against item i as -|q - i|: item q ranks first, then its
  neighbours by distance."""

  def embed_queries(self, inputs):
    position = tf.cast(inputs[preprocessing.QUERY_TOKENS][:, :1], tf.float32)
    return tf.concat([position, -0.5 * position ** 2, -tf.ones_like(position) /
                      2], axis=1)

  def embed_items(self, inputs):
    position = tf.cast(inputs[preprocessing.TITLE_TOKENS][:, :1], tf.float32)
    return tf.concat([position, tf.ones_like(position), position ** 2],
                     axis=1)


def _slates():
  """Two queries (keys 7 and 8 at positions 10 and 20) over items 0..29,
  whose id is their position; query 7 ordered item 10 and clicked 11, query
  8 clicked 20."""
  batch = {
      preprocessing.QUERY_KEY: np.array([7, 8, 7], np.int64),
      preprocessing.QUERY_TOKENS: np.array([[10, 0], [20, 0], [10, 0]]),
      preprocessing.QUERY_TRIGRAMS: np.zeros((3, 2), np.int64),
      preprocessing.STAGE: np.array([[S.ORDERED] + [S.RANDOM] * 9,
                                     [S.CLICKED] + [S.RANDOM] * 9,
                                     [S.CLICKED] + [S.UNCLICKED] * 9]),
  }
  ids = np.array([[10] + list(range(0, 9)), [20] + list(range(21, 30)),
                  [11, 9] + list(range(12, 20))])
  batch[preprocessing.ITEM_ID] = ids
  batch[preprocessing.TITLE_TOKENS] = np.stack([ids, ids * 0], axis=-1)
  return tf.data.Dataset.from_tensors(
      {k: tf.constant(np.asarray(v, np.int64)) for k, v in batch.items()})


def test_training_set_holds_each_query_once_with_its_positives():
  training = training_set.TrainingSet.collect(_slates())
  assert training.query_keys.tolist() == [7, 8]
  assert training.positives == [{10, 11}, {20}]
  assert sorted(training.item_ids.tolist()) == list(range(30))
  np.testing.assert_array_equal(
      training.query_features[preprocessing.QUERY_TOKENS][:, 0], [10, 20])


def _mined_ids(training, mined):
  return [set(training.item_ids[r] for r in row if r >= 0) for row in mined]


def test_mining_skips_the_top_ranks_and_the_positives():
  training = training_set.TrainingSet.collect(_slates())
  model = OneHotModel()
  mined = hard_negatives.mine(model, training, min_rank=3, max_rank=5,
                              per_query=10, seed=0)
  assert mined.shape == (2, 10)
  # Query 7 ranks 10 | 9, 11 | 8, 12 | ...; query 8 ranks 20 | 19, 21 | ...
  assert _mined_ids(training, mined) == [{8, 12}, {18, 22}]
  assert (mined[:, 2:] == -1).all()
  mined = hard_negatives.mine(model, training, min_rank=1, max_rank=3,
                              per_query=10, seed=0)
  # 11, a positive of query 7, is left out.
  assert _mined_ids(training, mined) == [{9}, {19, 21}]


def test_appended_slots_are_random_stage_items_of_the_slates_query():
  training = training_set.TrainingSet.collect(_slates())
  mined = hard_negatives.mine(OneHotModel(), training, min_rank=2,
                              max_rank=6, per_query=10, seed=0)
  batch = next(iter(training_set.append_to_slates(
      _slates(), training, mined, count=3, stage=S.RANDOM, seed=0)))
  stage = batch[preprocessing.STAGE].numpy()
  ids = batch[preprocessing.ITEM_ID].numpy()
  assert stage.shape == (3, 13)
  assert (stage[:, 10:] == S.RANDOM).all()
  # Ranks 2-5: query 7's 9 or 11 (not 11, a positive), 8, 12, 7 or 13.
  assert set(ids[0, 10:]) <= {7, 8, 9, 12, 13}
  assert set(ids[2, 10:]) <= {7, 8, 9, 12, 13}
  assert set(ids[1, 10:]) <= {18, 19, 21, 22, 23}
  assert len(set(ids[0, 10:])) == 3  # Drawn without repeats.
  # The item features follow the ids.
  np.testing.assert_array_equal(
      batch[preprocessing.TITLE_TOKENS].numpy()[:, 10:, 0], ids[:, 10:])


def test_a_query_without_candidates_gets_padding():
  training = training_set.TrainingSet.collect(_slates())
  mined = np.full((2, 4), -1, np.int32)
  batch = next(iter(training_set.append_to_slates(
      _slates(), training, mined, count=2, stage=S.RANDOM, seed=0)))
  assert (batch[preprocessing.STAGE].numpy()[:, 10:] == S.PADDING).all()
