"""Scorer and `mmse evaluate` on hand-worked cases."""
import math
import os

import numpy as np
import pytest

from evaluation import metrics
from evaluation import serving_eval
from tests.fixtures import toy_towers
from tests.retrieval.test_embedding import CATALOG_ROWS
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
    }, abs=1e-9)

  def test_score_requires_every_judged_query_ranked(self):
    with pytest.raises(ValueError, match="no ranking"):
      metrics.score({}, {"q": {1: 3.0}}, cutoffs=(1,))

  def test_index_recall_is_the_share_of_exact_results_found(self):
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[3, 2, 9], [4, 5, 6]])
    assert metrics.index_recall(found, exact) == pytest.approx(
        (2 / 3 + 1.0) / 2, abs=1e-9)
    with pytest.raises(ValueError, match="rows"):
      metrics.index_recall(found[:1], exact)


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

  def test_scores_latest_pushed_towers(self, tmp_path):
    serving_dir = tmp_path / "serving"
    # Version 1 is an upside-down model; version 2, the good one, is scored.
    for version, sign in (("1", -1.0), ("2", 1.0)):
      toy_towers.save_query_tower(
          str(serving_dir / "query_tower" / version), sign)
      toy_towers.save_item_tower(str(serving_dir / "item_tower" / version))
    # Not versions: a push in progress, stray names, a version without a
    # SavedModel, a file.
    for name in ("3", ".4.incomplete", "10.tmp", "tmp-11"):
      for tower in ("query_tower", "item_tower"):
        os.makedirs(serving_dir / tower / name)
    (serving_dir / "item_tower" / "12").write_text("a file, not a version")
    catalog_csv, judgments_csv = self._write_inputs(tmp_path)
    result = serving_eval.evaluate_serving_dir(
        str(serving_dir), catalog_csv, judgments_csv, cutoffs=(3, 1))
    assert result.pop("seconds") >= 0
    assert result == pytest.approx(
        dict(GOOD_MODEL_SCORES, items=8, model_version=2), abs=1e-6)

  def test_missing_tower_is_an_error(self, tmp_path):
    toy_towers.save_item_tower(str(tmp_path / "item_tower" / "1"))
    catalog_csv, judgments_csv = self._write_inputs(tmp_path)
    with pytest.raises(FileNotFoundError, match="query_tower"):
      serving_eval.evaluate_serving_dir(str(tmp_path), catalog_csv,
                                        judgments_csv)

  def test_towers_of_different_pushes_are_never_paired(self, tmp_path):
    toy_towers.save_query_tower(str(tmp_path / "query_tower" / "2"))
    toy_towers.save_item_tower(str(tmp_path / "item_tower" / "1"))
    catalog_csv, judgments_csv = self._write_inputs(tmp_path)
    with pytest.raises(FileNotFoundError, match="No version common"):
      serving_eval.evaluate_serving_dir(str(tmp_path), catalog_csv,
                                        judgments_csv)
    # With version 1 of both, that pair is evaluated, not the newer tower.
    toy_towers.save_query_tower(str(tmp_path / "query_tower" / "1"))
    assert serving_eval.evaluate_serving_dir(
        str(tmp_path), catalog_csv, judgments_csv)["model_version"] == 1
