"""Scorer, embedding, exact search and `mmse evaluate` on hand-worked cases."""
import math
import os

import numpy as np
import pytest

from evaluation import embedding
from evaluation import metrics
from evaluation import serving_eval
import toy_towers  # tests/ is on sys.path under pytest (no __init__.py).

# Eight items; a bag-of-words model scores a query by shared words.
CATALOG_ROWS = [
    (1, "cordless drill", "dewalt", 99.0),
    (2, "drill bit set", "bosch", 19.5),
    (3, "garden hose", "", 25.0),
    (4, "hose reel", "suncast", 40.0),
    (5, "wood screws", "", 6.0),
    (6, "paint brush", "purdy", 8.0),
    (7, "led bulb", "cree", 4.5),
    (8, "door hinge", "", 3.0),
]
# Hand-worked scores of the bag-of-words model on CATALOG_ROWS, cutoffs 1, 3:
#   "cordless drill": item 1 shares 2 words, item 2 one -> ranks 1, 2.
#   "garden hose": item 3 shares 2 words (graded 1.0: no gain), item 4 one.
JUDGMENTS = {
    "Cordless Drill": {1: 3.0, 2: 2.5},
    "garden hose": {3: 1.0, 4: 2.5},
}
GOOD_MODEL_SCORES = {
    "recall@1": (0.5 + 0.0) / 2,
    "recall@3": 1.0,
    "ndcg@1": (1.0 + 0.0) / 2,
    "ndcg@3": (1.0 + 1 / math.log2(3)) / 2,
    "queries": 2,
    "recall_queries": 2,
}


def _catalog():
  ids, titles, brands, prices = zip(*CATALOG_ROWS)
  return {
      "item_id": np.asarray(ids, dtype=np.int64),
      "title": np.asarray(titles, dtype=object),
      "brand": np.asarray(brands, dtype=object),
      "price": np.asarray(prices, dtype=np.float32),
  }


class TestMetrics:

  def test_score_on_hand_computed_rankings(self):
    judgments = {
        # Relevant: 1 and 2; item 4 gains 1.0 in NDCG only; 3 gains nothing.
        "q1": {1: 3.0, 2: 2.5, 3: 1.0, 4: 2.0},
        # No relevant item: out of recall, in NDCG.
        "q2": {5: 2.0},
    }
    rankings = {"q1": [2, 9, 1, 4], "q2": [5, 6]}
    result = metrics.score(rankings, judgments, cutoffs=(3, 1))
    idcg3 = 2.0 + 1.5 / math.log2(3) + 1.0 / 2
    q1_ndcg3 = (1.5 + 2.0 / 2) / idcg3
    assert result == pytest.approx({
        "recall@1": 0.5,
        "recall@3": 1.0,
        "ndcg@1": (1.5 / 2.0 + 1.0) / 2,
        "ndcg@3": (q1_ndcg3 + 1.0) / 2,
        "queries": 2,
        "recall_queries": 1,
    })

  def test_score_requires_every_judged_query_ranked(self):
    with pytest.raises(ValueError, match="no ranking"):
      metrics.score({}, {"q": {1: 3.0}}, cutoffs=(1,))


class TestExactTopK:

  @pytest.mark.parametrize("k,batch_size", [(5, 7), (1, 100), (50, 3),
                                            (80, 16)])
  def test_matches_brute_force(self, k, batch_size):
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(23, 8)).astype(np.float32)
    items = rng.normal(size=(50, 8)).astype(np.float32)
    indices, scores = embedding.exact_top_k(queries, items, k, batch_size)
    all_scores = queries @ items.T
    expected = np.argsort(-all_scores, axis=1)[:, :min(k, 50)]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(
        scores, np.take_along_axis(all_scores, expected, axis=1), atol=1e-5)
    assert indices.dtype == np.int64 and scores.dtype == np.float32

  def test_rejects_mismatched_dimensions(self):
    with pytest.raises(ValueError, match="not from one model"):
      embedding.exact_top_k(np.ones((2, 4)), np.ones((3, 5)), k=1)


class TestEmbedding:

  def test_embeds_declared_inputs_only(self, tmp_path):
    toy_towers.save_item_tower(str(tmp_path / "item"))
    toy_towers.save_query_tower(str(tmp_path / "query"))
    item_tower = embedding.load_signature(str(tmp_path / "item"))
    query_tower = embedding.load_signature(str(tmp_path / "query"))
    # The catalogue's brand and price are not fed: the tower does not declare
    # them. Batches of 3 do not divide the 8 rows.
    items = embedding.embed_catalog(item_tower, _catalog(), batch_size=3)
    queries = embedding.embed_queries(query_tower, ["Cordless DRILL"])
    assert items.shape == (8, toy_towers.DIM) and items.dtype == np.float32
    np.testing.assert_allclose(queries @ items.T,
                               [[2, 1, 0, 0, 0, 0, 0, 0]])

  def test_catalog_missing_a_declared_input_is_an_error(self, tmp_path):
    toy_towers.save_item_tower(str(tmp_path / "item"), with_brand=True)
    catalog = _catalog()
    del catalog["brand"]
    with pytest.raises(ValueError, match=r"lacks \['brand'\]"):
      embedding.embed_catalog(
          embedding.load_signature(str(tmp_path / "item")), catalog)

  def test_rank_catalog_returns_item_ids(self, tmp_path):
    toy_towers.save_towers(str(tmp_path))
    ranked = embedding.rank_catalog(
        embedding.load_signature(str(tmp_path / "query_tower")),
        embedding.load_signature(str(tmp_path / "item_tower")),
        _catalog(), ["garden hose"], k=2)
    np.testing.assert_array_equal(ranked["garden hose"], [3, 4])


class TestServingEval:

  def _write_inputs(self, tmp_path):
    catalog_csv = tmp_path / "catalog.csv"
    catalog_csv.write_text("item_id,title,brand,price\n" + "".join(
        f"{i},{t},{b},{p}\n" for i, t, b, p in CATALOG_ROWS))
    judgments_csv = tmp_path / "judgments.csv"
    judgments_csv.write_text("query,item_id,relevance\n" + "".join(
        f"{q},{i},{g}\n" for q, grades in JUDGMENTS.items()
        for i, g in grades.items()))
    return str(catalog_csv), str(judgments_csv)

  def test_latest_version_dir_ignores_non_versions(self, tmp_path):
    for name in ("1", "10", "9", "10.tmp", "tmp-11"):
      os.makedirs(tmp_path / "item_tower" / name)
    (tmp_path / "item_tower" / "12").write_text("a file, not a version")
    assert serving_eval.latest_version_dir(
        str(tmp_path), "item_tower") == str(tmp_path / "item_tower" / "10")
    with pytest.raises(FileNotFoundError, match="query_tower"):
      serving_eval.latest_version_dir(str(tmp_path), "query_tower")

  def test_scores_latest_pushed_towers(self, tmp_path):
    serving_dir = tmp_path / "serving"
    # Version 1 is an upside-down model; version 2, the good one, is scored.
    for version, sign in (("1", -1.0), ("2", 1.0)):
      toy_towers.save_query_tower(
          str(serving_dir / "query_tower" / version), sign)
      toy_towers.save_item_tower(str(serving_dir / "item_tower" / version))
    catalog_csv, judgments_csv = self._write_inputs(tmp_path)
    result = serving_eval.evaluate_serving_dir(
        str(serving_dir), catalog_csv, judgments_csv, cutoffs=(3, 1))
    assert result.pop("seconds") >= 0
    assert result == pytest.approx(
        dict(GOOD_MODEL_SCORES, items=8, model_version=2))

  def test_towers_of_different_pushes_are_an_error(self, tmp_path):
    toy_towers.save_query_tower(str(tmp_path / "query_tower" / "2"))
    toy_towers.save_item_tower(str(tmp_path / "item_tower" / "1"))
    catalog_csv, judgments_csv = self._write_inputs(tmp_path)
    with pytest.raises(ValueError, match="one push"):
      serving_eval.evaluate_serving_dir(str(tmp_path), catalog_csv,
                                        judgments_csv)
