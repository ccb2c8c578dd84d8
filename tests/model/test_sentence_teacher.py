"""The teacher's sentence vectors in the batches, and the distillation loss."""
import math

import numpy as np
import pytest
import tensorflow as tf

from contracts import features
from model import preprocessing
from model import pretrained_tokens
from model import sentence_teacher
from model import tasks
from model import training_set


def test_texts_are_read_back_from_token_ids_without_padding_or_oov():
  vocabulary = ["cordless", "drill", "bits"]
  ids = np.array([[1, 2, 0, 0], [3, 9, 2, 0], [0, 0, 0, 0]])
  assert sentence_teacher.texts_of(ids, vocabulary) == [
      "cordless drill", "bits drill", ""]


def test_batches_carry_the_vectors_of_their_query_and_items():
  vectors = sentence_teacher.TeacherVectors(
      query_keys=np.array([70, 80]), query_vectors=np.eye(3)[:2],
      item_ids=np.array([5, 6, 7]), item_vectors=np.eye(3) * 2)
  slates = tf.data.Dataset.from_tensors({
      preprocessing.QUERY_KEY: tf.constant([[80], [99]], tf.int64),
      preprocessing.ITEM_ID: tf.constant([[7, 5], [6, 42]], tf.int64),
  })
  batch = next(iter(vectors.add_to(slates)))
  np.testing.assert_array_equal(batch[sentence_teacher.TEACHER_QUERY],
                                [[0, 1, 0], [0, 0, 0]])
  np.testing.assert_array_equal(
      batch[sentence_teacher.TEACHER_ITEMS],
      [[[0, 0, 2], [2, 0, 0]], [[0, 2, 0], [0, 0, 0]]])


def _cross_entropy(teacher_logits, logits):
  weights = np.exp(np.array(teacher_logits) - max(teacher_logits))
  weights /= weights.sum()
  log_norm = math.log(sum(math.exp(x) for x in logits))
  return -sum(w * (x - log_norm) for w, x in zip(weights, logits))


def test_distillation_matches_the_teachers_softmax_over_the_batch():
  # Two queries, two slots each; slot (1, 1) is padding and item (0, 1) is
  # one the teacher never encoded: both leave the softmax. Query 1 is unknown
  # to the teacher: it has no target.
  queries = [[1.0, 0.0], [0.0, 1.0]]
  items = [[[0.5, 0.5], [1.0, 0.0]], [[0.2, 0.8], [0.0, 0.0]]]
  stage = [[3, 0], [2, -1]]
  teacher_query = [[1.0, 0.0], [0.0, 0.0]]
  teacher_items = [[[0.9, 0.1], [0.0, 0.0]], [[0.3, 0.7], [0.0, 0.0]]]
  task = tasks.TeacherDistillation(temperature=0.5, teacher_temperature=0.25)
  loss = task(tf.constant(queries), tf.constant(items), tf.constant(stage),
              tf.constant(teacher_query), tf.constant(teacher_items))
  # Query 0 against slots (0, 0) and (1, 0).
  expected = _cross_entropy([0.9 / 0.25, 0.3 / 0.25], [0.5 / 0.5, 0.2 / 0.5])
  assert float(loss) == pytest.approx(expected, abs=1e-5)


def test_the_queries_and_titles_of_every_split_are_encoded(monkeypatch):
  encoded = []

  def teacher_vectors(texts, cache_dir, what):
    encoded.append((list(texts), cache_dir, what))
    return np.array([[len(t), 1.0] for t in texts], np.float32)

  monkeypatch.setattr(pretrained_tokens, "teacher_vectors", teacher_vectors)
  vocabulary = ["drill", "bit", "saw"]

  def split(keys, query_ids, item_ids, title_ids):
    return training_set.TrainingSet(
        query_keys=np.array(keys),
        query_features={preprocessing.QUERY_TOKENS: np.array(query_ids)},
        positives=[set() for _ in keys], item_ids=np.array(item_ids),
        item_features={preprocessing.TITLE_TOKENS: np.array(title_ids)})

  train = split([10, 11], [[1, 0], [3, 0]], [5, 6], [[1, 2], [3, 0]])
  evaluation = split([12], [[1, 2]], [6, 7], [[3, 0], [2, 0]])
  vectors = sentence_teacher.TeacherVectors.encode([train, evaluation],
                                                   vocabulary, "/cache")
  # Each query and item once (item 6 is in both splits); the cache
  # encodes each distinct text once (`pretrained_tokens`).
  assert encoded == [(["drill", "saw", "drill bit", "drill bit", "saw",
                       "bit"], "/cache", "texts")]
  slates = tf.data.Dataset.from_tensors({
      preprocessing.QUERY_KEY: tf.constant([[12], [11]], tf.int64),
      preprocessing.ITEM_ID: tf.constant([[7], [5]], tf.int64),
  })
  batch = next(iter(vectors.add_to(slates)))
  # "drill bit" (9 letters), "saw"; items 7 ("bit") and 5 ("drill bit").
  np.testing.assert_array_equal(batch[sentence_teacher.TEACHER_QUERY],
                                [[9, 1], [3, 1]])
  np.testing.assert_array_equal(batch[sentence_teacher.TEACHER_ITEMS],
                                [[[3, 1]], [[9, 1]]])


def test_slates_get_the_teachers_top_items_for_their_query():
  # Query 10 is nearest items 5 then 7; query 11 nearest item 6 then 5.
  training = training_set.TrainingSet(
      query_keys=np.array([10, 11]),
      query_features={preprocessing.QUERY_TOKENS: np.zeros((2, 1), int)},
      positives=[set(), set()], item_ids=np.array([5, 6, 7]),
      item_features={
          preprocessing.ITEM_ID: np.array([5, 6, 7]),
          preprocessing.TITLE_TOKENS: np.array([[50], [60], [70]])})
  vectors = sentence_teacher.TeacherVectors(
      query_keys=np.array([10, 11]),
      query_vectors=np.array([[1.0, 0.0], [0.0, 1.0]]),
      item_ids=np.array([5, 6, 7]),
      item_vectors=np.array([[0.9, 0.3], [0.1, 1.0], [0.8, 0.0]]))
  picked = vectors.top_items(training, 2)
  np.testing.assert_array_equal(picked, [[0, 2], [1, 0]])
  slates = tf.data.Dataset.from_tensors({
      preprocessing.QUERY_KEY: tf.constant([[11]], tf.int64),
      preprocessing.ITEM_ID: tf.constant([[7]], tf.int64),
      preprocessing.TITLE_TOKENS: tf.constant([[[70]]], tf.int64),
      preprocessing.STAGE: tf.constant([[2]], tf.int64),
  })
  batch = next(iter(vectors.add_to(slates, training, picked, seed=0)))
  assert sorted(batch[preprocessing.ITEM_ID].numpy()[0, 1:]) == [5, 6]
  np.testing.assert_array_equal(
      batch[preprocessing.TITLE_TOKENS].numpy()[0, :, 0] // 10,
      batch[preprocessing.ITEM_ID].numpy()[0])
  np.testing.assert_array_equal(
      batch[preprocessing.STAGE].numpy()[0],
      [2, tasks.TEACHER_PICK_STAGE, tasks.TEACHER_PICK_STAGE])
  np.testing.assert_allclose(
      batch[sentence_teacher.TEACHER_ITEMS].numpy()[0],
      np.array([[0.8, 0.0]] + [
          {5: [0.9, 0.3], 6: [0.1, 1.0]}[i]
          for i in batch[preprocessing.ITEM_ID].numpy()[0, 1:]]), atol=1e-6)


def test_teacher_picks_are_candidates_of_the_distillation_alone():
  queries = tf.constant([[1.0, 0.0]])
  items = tf.constant([[[0.6, 0.8], [1.0, 0.0]]])
  teacher = tf.constant([[1.0, 0.0]]), tf.constant([[[0.5, 0.5], [1.0, 0]]])
  picked = tf.constant([[3, tasks.TEACHER_PICK_STAGE]], tf.int64)
  padded = tf.constant([[3, features.Stage.PADDING]], tf.int64)
  ids, keys = tf.constant([[1, 2]], tf.int64), tf.constant([7], tf.int64)
  retrieval = tasks.MultiStageRetrieval(temperature=1.0)
  ranking = tasks.StageRankingTask()
  distillation = tasks.TeacherDistillation(1.0, 1.0)
  for task, args in ((retrieval, (ids, keys)), (ranking, ())):
    first = (queries, items) if task is retrieval else (
        tf.einsum("bd,bld->bl", queries, items),)
    assert float(task(*first, picked, *args)) == pytest.approx(
        float(task(*first, padded, *args)), abs=1e-6)
  assert float(distillation(queries, items, padded, *teacher)) == (
      pytest.approx(0.0, abs=1e-6))
  expected = _cross_entropy([0.5, 1.0], [0.6, 1.0])
  assert float(distillation(queries, items, picked, *teacher)) == (
      pytest.approx(expected, abs=1e-5))
