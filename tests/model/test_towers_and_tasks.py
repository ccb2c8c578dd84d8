"""Towers' shapes, the fusion identity and both losses against hand values."""
import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from model import config as model_config
from model import fusion
from model import mmse
from model import preprocessing
from model import tasks
from model import towers

CONFIG = model_config.ModelConfig(
    num_heads=3, head_dim=4, token_embedding_dim=8, hidden_dim=16,
    dropout=0.0, use_item_id=True)
SIZES = {
    preprocessing.QUERY_TOKENS: 20, preprocessing.TITLE_TOKENS: 20,
    preprocessing.QUERY_TRIGRAMS: 50, preprocessing.TITLE_TRIGRAMS: 50,
    preprocessing.ITEM_INDEX: 10, preprocessing.side_feature_index("brand"): 5,
}


def _slates(batch=2, slate=3, seed=0):
  rng = np.random.default_rng(seed)
  return {
      preprocessing.QUERY_TOKENS: rng.integers(0, 20, (batch, 4)),
      preprocessing.QUERY_TRIGRAMS: rng.integers(0, 50, (batch, 6)),
      preprocessing.QUERY_KEY: np.arange(batch),
      preprocessing.TITLE_TOKENS: rng.integers(0, 20, (batch, slate, 5)),
      preprocessing.TITLE_TRIGRAMS: rng.integers(0, 50, (batch, slate, 7)),
      preprocessing.ITEM_INDEX: rng.integers(0, 10, (batch, slate)),
      preprocessing.ITEM_KEY: np.arange(batch * slate).reshape(batch, slate),
      preprocessing.side_feature_index("brand"): rng.integers(
          0, 5, (batch, slate)),
      preprocessing.PRICE: rng.normal(size=(batch, slate)).astype(np.float32),
      preprocessing.STAGE: np.tile([3, 1, 0], (batch, 1)),
  }


def test_towers_emit_normalised_heads_over_one_text_space():
  model = mmse.MMSEModel(CONFIG, SIZES, use_price=True)
  batch = _slates()
  query_heads = model.query_tower(batch)
  items = {k: v[:, 0] for k, v in batch.items() if not k.startswith("query")}
  item_heads = model.item_tower(items)
  assert query_heads.shape == (2, 3, 4) and item_heads.shape == (2, 3, 4)
  np.testing.assert_allclose(tf.norm(item_heads, axis=-1), np.ones((2, 3)),
                             atol=1e-5)
  assert model.embed_queries(batch).shape == (2, 12)
  assert model.query_tower.text_encoder is model.item_tower.text_encoder
  tables = [v for v in model.trainable_variables if "token_embedding" in v.name]
  assert len(tables) == 1

  # The same text as a query and as a title: equal word and trigram heads
  # (shared layers), different mixed heads (each tower's own).
  query = model.query_tower({
      preprocessing.QUERY_TOKENS: tf.constant([[3, 5, 0]]),
      preprocessing.QUERY_TRIGRAMS: tf.constant([[7, 0]])})
  title = dict(items, **{
      preprocessing.TITLE_TOKENS: tf.constant([[3, 5, 0, 0]]),
      preprocessing.TITLE_TRIGRAMS: tf.constant([[7]])})
  title = model.item_tower({k: v[:1] for k, v in title.items()})
  kinds = towers.head_kinds(CONFIG.num_heads)
  for kind in ("tokens", "trigrams"):
    np.testing.assert_allclose(query[0, kinds.index(kind)],
                               title[0, kinds.index(kind)], atol=1e-6)
  assert not np.allclose(query[0, kinds.index("mixed")],
                         title[0, kinds.index("mixed")], atol=1e-3)


def test_word_dropout_only_in_training():
  encoder = towers.TextEncoder(
      20, 50, dataclasses.replace(CONFIG, word_dropout=0.5))
  ids = tf.tile(tf.range(1, 9)[tf.newaxis], [16, 1])
  served, again = encoder(ids, ids)[0], encoder(ids, ids)[0]
  np.testing.assert_allclose(served, again, atol=1e-6)
  np.testing.assert_allclose(served[0], served[1], atol=1e-6)
  trained = encoder(ids, ids, training=True)[0]
  assert not np.allclose(trained, served, atol=1e-3)


def test_text_is_pooled_over_its_non_padding_ids_only():
  encoder = towers.TextEncoder(20, 50, CONFIG)
  # Padding anywhere (word dropout leaves it between words), and a text that
  # is all padding.
  tokens = tf.constant([[3, 0, 5, 0], [0, 0, 0, 0], [7, 7, 2, 9]], tf.int64)
  trigrams = tf.constant([[0, 11, 0], [4, 0, 0], [0, 0, 0]], tf.int64)
  with tf.GradientTape() as tape:
    pooled_tokens, pooled_trigrams, _ = encoder(tokens, trigrams)
    total = tf.reduce_sum(pooled_tokens) + tf.reduce_sum(pooled_trigrams)
  token_table = encoder.token_embedding.embeddings.numpy()
  trigram_table = encoder.trigram_embedding.embeddings.numpy()

  def mean(table, ids):
    real = [i for i in ids if i]
    return table[real].mean(0) if real else np.zeros(table.shape[1])

  np.testing.assert_allclose(
      pooled_tokens, [mean(token_table, t) for t in tokens.numpy()],
      atol=1e-6)
  np.testing.assert_allclose(
      pooled_trigrams, [mean(trigram_table, t) for t in trigrams.numpy()],
      atol=1e-6)
  # Padding rows are never looked up, so they learn nothing.
  gradient = tape.gradient(total, encoder.token_embedding.embeddings)
  assert 0 not in tf.convert_to_tensor(gradient).numpy().any(-1).nonzero()[0]


def test_head_kinds_follow_num_heads():
  assert towers.head_kinds(1) == ("mixed",)
  assert towers.head_kinds(4)[-1] == "lexical"
  with pytest.raises(ValueError):
    towers.head_kinds(5)


def test_lexical_head_counts_shared_words_by_their_weights():
  config = dataclasses.replace(CONFIG, num_heads=4, head_dim=512)
  encoder = towers.TextEncoder(1000, 50, config)
  trigrams = tf.zeros([3, 1], tf.int64)

  def lexical(token_ids):
    ids = tf.constant(token_ids, tf.int64)
    return tf.math.l2_normalize(encoder(ids, trigrams[:len(token_ids)])[2], -1)

  query = lexical([[3, 5, 0, 0]])
  titles = lexical([[3, 5, 8, 0], [3, 9, 8, 0], [4, 6, 9, 8]])
  scores = tf.squeeze(tf.matmul(query, titles, transpose_b=True)).numpy()
  # Cosine of bags of words: 2/sqrt(2*3), 1/sqrt(2*3), 0 - up to the small
  # overlap of random codes.
  np.testing.assert_allclose(scores, [2 / 6 ** 0.5, 1 / 6 ** 0.5, 0.0],
                             atol=0.12)

  # A word weighted up counts for more; the codes themselves stay fixed.
  weights = encoder.word_weights.get_weights()[0]
  weights[9] = 3.0
  encoder.word_weights.set_weights([weights])
  assert not encoder.word_codes.trainable_weights
  reweighted = tf.squeeze(tf.matmul(
      lexical([[9, 0, 0, 0]]), lexical([[3, 9, 8, 0]]), transpose_b=True))
  np.testing.assert_allclose(reweighted, 3 / 11 ** 0.5, atol=0.12)


def test_fused_score_is_the_dot_product_of_the_indexable_embeddings():
  layer = fusion.PostFusion(3)
  np.testing.assert_allclose(layer.head_weights(), [1 / 3] * 3, atol=1e-6)
  layer.head_logits.assign([-2.0, 0.5, 3.0])
  rng = np.random.default_rng(1)
  queries = tf.math.l2_normalize(rng.normal(size=(4, 3, 5)), -1)
  items = tf.math.l2_normalize(rng.normal(size=(6, 3, 5)), -1)
  queries, items = tf.cast(queries, tf.float32), tf.cast(items, tf.float32)
  weights = np.log1p(np.exp([-2.0, 0.5, 3.0]))
  expected = np.einsum("qhd,ihd,h->qi", queries, items, weights)
  # Sums of float32 products: any summation order lands within 1e-5.
  np.testing.assert_allclose(layer(queries, items), expected, atol=1e-5)
  dot = tf.matmul(layer.query_embedding(queries), layer.item_embedding(items),
                  transpose_b=True)
  np.testing.assert_allclose(dot, expected, atol=1e-5)


# One-dimensional embeddings and temperature 1, so logits are q * v.
# Examples 0 and 1 share query 7; example 2 is query 8.
QUERIES = [[1.0], [2.0], [-1.0]]
ITEMS = [[[0.5], [0.2]], [[0.4], [0.9]], [[0.3], [-0.6]]]
STAGES = [[3, 2], [2, -1], [2, 0]]
ITEM_IDS = [[10, 11], [11, 0], [12, 10]]
QUERY_KEYS = [7, 7, 8]


def _retrieval_loss(**kwargs):
  options = dict(temperature=1.0, sampling_bias_correction=False)
  options.update(kwargs)
  task = tasks.MultiStageRetrieval(**options)
  return float(task(tf.constant(QUERIES), tf.constant(ITEMS),
                    tf.constant(STAGES), tf.constant(ITEM_IDS),
                    tf.constant(QUERY_KEYS)))


def _xent(positive, logits):
  return -positive + math.log(sum(math.exp(x) for x in logits))


def test_retrieval_removes_padding_and_accidental_hits():
  # Query 7's positives are items 10 and 11: for its rows every other slot
  # holding 10 or 11 is removed, and the padding slot always is.
  row0 = _xent(0.5, [0.5, 0.3])  # item 10 (ordered) vs item 12
  row1 = _xent(0.2, [0.2, 0.3])  # item 11 vs item 12
  row2 = _xent(0.8, [0.8, 0.6])  # example 1's item 11 vs item 12
  row4 = _xent(-0.3, [-0.5, -0.2, -0.4, -0.3, 0.6])  # query 8 sees them all
  expected = (2 * row0 + row1 + row2 + row4) / 5  # ordered rows weigh 2
  assert _retrieval_loss() == pytest.approx(expected, abs=1e-5)


def test_accidental_hits_are_the_slots_holding_a_positive_of_the_query():
  rng = np.random.default_rng(3)
  all_row_query = rng.integers(0, 6, 40)
  all_row_item = rng.integers(0, 15, 40)
  slot_item = rng.integers(0, 20, 90)
  row_query = all_row_query[10:25]  # one replica's rows
  expected = [[any(q == q2 and i2 == item
                   for q2, i2 in zip(all_row_query, all_row_item))
               for item in slot_item] for q in row_query]
  hits = tasks._positive_of_query(*(tf.constant(x, tf.int64) for x in (
      row_query, all_row_query, all_row_item, slot_item)))
  np.testing.assert_array_equal(hits, expected)


def test_retrieval_without_hit_removal_and_random_negatives():
  rows = [
      _xent(0.5, [0.5, 0.2, 0.4, 0.3]),
      _xent(0.2, [0.5, 0.2, 0.4, 0.3]),
      _xent(0.8, [1.0, 0.4, 0.8, 0.6]),
      _xent(-0.3, [-0.5, -0.2, -0.4, -0.3]),
  ]
  expected = (2 * rows[0] + sum(rows[1:])) / 5
  loss = _retrieval_loss(remove_accidental_hits=False,
                         use_random_negatives=False)
  assert loss == pytest.approx(expected, abs=1e-5)


def test_retrieval_sampling_bias_correction():
  # Items 10 and 11 fill two candidate slots each: their logits lose log 2.
  log2 = math.log(2.0)
  row0 = _xent(0.5 - log2, [0.5 - log2, 0.3])
  row1 = _xent(0.2 - log2, [0.2 - log2, 0.3])
  row2 = _xent(0.8 - log2, [0.8 - log2, 0.6])
  row4 = _xent(-0.3, [-0.5 - log2, -0.2 - log2, -0.4 - log2, -0.3, 0.6 - log2])
  expected = (2 * row0 + row1 + row2 + row4) / 5
  loss = _retrieval_loss(sampling_bias_correction=True)
  assert loss == pytest.approx(expected, abs=1e-5)


SCORES = [[0.5, 0.3, 0.35, 0.0], [0.1, 0.9, 0.0, 0.0]]
RANKED_STAGES = [[3, 1, 0, -1], [2, 2, -1, -1]]


def _ranking_loss(**kwargs):
  task = tasks.StageRankingTask(**kwargs)
  return float(task(tf.constant(SCORES), tf.constant(RANKED_STAGES)))


def test_ranking_logistic_over_stage_pairs():
  # Pairs (3>1), (3>0), (1>0); padding and equal stages make no pair.
  softplus = lambda x: math.log1p(math.exp(x))
  expected = (softplus(-0.2 / 0.5) + softplus(-0.15 / 0.5) +
              softplus(0.05 / 0.5)) / 3
  loss = _ranking_loss(temperature=0.5)
  assert loss == pytest.approx(expected, abs=1e-5)
  # Without random negatives only (3>1) remains.
  only_first = _ranking_loss(temperature=0.5, use_random_negatives=False)
  assert only_first == pytest.approx(softplus(-0.2 / 0.5), abs=1e-5)


def _embedded(model, batch):
  """The model's query vectors [B, D] and slate item vectors [B, L, D]."""
  batch_size, slate_size = batch[preprocessing.STAGE].shape
  items = model.embed_items(
      {k: tf.reshape(v, [batch_size * slate_size] + v.shape[2:].as_list())
       for k, v in batch.items() if not k.startswith("query")})
  return (model.embed_queries(batch),
          tf.reshape(items, [batch_size, slate_size, -1]))


def test_model_loss_mixes_the_enabled_tasks_and_trains():
  batch = {k: tf.constant(v) for k, v in _slates(batch=4, seed=2).items()}
  config = dataclasses.replace(CONFIG, ranking_weight=0.5)
  model = mmse.MMSEModel(config, SIZES, use_price=True)
  queries, items = _embedded(model, batch)
  retrieval = model.retrieval_task(
      queries, items, batch[preprocessing.STAGE],
      batch[preprocessing.ITEM_KEY], batch[preprocessing.QUERY_KEY])
  ranking = model.ranking_task(tf.einsum("bd,bld->bl", queries, items),
                               batch[preprocessing.STAGE])
  np.testing.assert_allclose(model.compute_loss(batch),
                             retrieval + 0.5 * ranking, atol=1e-5)

  only_ranking = mmse.MMSEModel(
      dataclasses.replace(CONFIG, retrieval_weight=0.0), SIZES, True)
  only_ranking.compute_loss(batch)
  assert only_ranking.retrieval_loss.count == 0
  with pytest.raises(ValueError, match="nothing to train"):
    mmse.MMSEModel(dataclasses.replace(CONFIG, retrieval_weight=0.0,
                                       ranking_weight=0.0), SIZES, True)

  model.compile(optimizer=tf.keras.optimizers.Adam(0.05))
  dataset = tf.data.Dataset.from_tensors(batch).repeat(20)
  history = model.fit(dataset, epochs=1, verbose=0)
  assert model.compute_loss(batch) < retrieval + 0.5 * ranking
  assert "retrieval_loss" in history.history


def test_unclicked_items_can_stay_out_of_the_retrieval_softmax():
  batch = {k: tf.constant(v) for k, v in _slates(batch=4, seed=2).items()}
  config = dataclasses.replace(CONFIG, ranking_weight=0.5,
                               unclicked_in_retrieval=False)
  model = mmse.MMSEModel(config, SIZES, use_price=True)
  queries, items = _embedded(model, batch)
  stage = batch[preprocessing.STAGE]

  def retrieval(use_unclicked):
    return tasks.MultiStageRetrieval(
        temperature=config.temperature, use_unclicked=use_unclicked)(
            queries, items, stage, batch[preprocessing.ITEM_KEY],
            batch[preprocessing.QUERY_KEY])

  # The ranking loss still orders the unclicked slot (stage 1) between the
  # ordered one and the random one.
  ranking = tasks.StageRankingTask(temperature=config.temperature)(
      tf.einsum("bd,bld->bl", queries, items), stage)
  np.testing.assert_allclose(model.compute_loss(batch),
                             retrieval(False) + 0.5 * ranking, atol=1e-5)
  assert abs(float(retrieval(False)) - float(retrieval(True))) > 1e-3


def test_member_configs_give_each_training_its_own_seed():
  configs = mmse.member_configs(dataclasses.replace(CONFIG, seed=2,
                                                    trainings=3))
  assert [c.seed for c in configs] == [2, 1002, 2002]
  assert {dataclasses.replace(c, seed=0) for c in configs} == {
      dataclasses.replace(CONFIG, seed=0, trainings=3)}
  with pytest.raises(ValueError, match="model.trainings must be at least 1"):
    mmse.member_configs(dataclasses.replace(CONFIG, trainings=0))

