"""The evaluator's library: judgments from slates, index scoring, blessing."""
import math

import numpy as np
import pytest

from contracts import features
from evaluation import blessing
from evaluation.config import EvalConfig
from retrieval import ann

# (query, item ids, stages): item 2's best stage over two slates is CLICKED;
# item 3 was shown unclicked, so it is unjudged; "paint brush" has no
# clicked or ordered item.
SLATES = [
    ("cordless drill", [1, 2, 5, 7, 0], [3, 2, 1, 0, -1]),
    ("cordless drill", [2, 5, 8, 6, 0], [2, 1, 0, 0, -1]),
    ("garden hose", [4, 3, 6, 7, 8], [2, 1, 0, 0, 0]),
    ("paint brush", [6, 7, 8, 0, 0], [1, 0, 0, -1, -1]),
]
JUDGMENTS = {"cordless drill": {1: 3.0, 2: 2.5}, "garden hose": {4: 2.5}}
# The same, keyed by the ids an index holds (text).
TEXT_JUDGMENTS = {q: {str(i): g for i, g in grades.items()}
                  for q, grades in JUDGMENTS.items()}


class _WorstFirst(ann.ExactIndex):
  """An index that answers the worst items first, as a broken ANN might."""

  def _search_rows(self, queries, k):
    rows, scores = super()._search_rows(queries, self.size)
    return rows[:, ::-1][:, :k], scores[:, ::-1][:, :k]


def _items():
  """Item i + 1 is the unit vector e_i; the queries point at items 1 and 4."""
  item_ids = np.arange(1, 9).astype(str)
  embeddings = np.eye(8, dtype=np.float32)
  queries = np.zeros((2, 8), dtype=np.float32)
  queries[0, [0, 1]] = [1.0, 0.5]  # cordless drill: 1, then 2.
  queries[1, 3] = 1.0  # garden hose: 4.
  return item_ids, embeddings, queries


def test_judgments_from_slates_keep_each_items_best_stage():
  assert blessing.judgments_from_slates(SLATES) == JUDGMENTS


def test_a_slate_with_more_stages_than_items_is_an_error():
  with pytest.raises(ValueError, match="2 items but 3 stages"):
    blessing.judgments_from_slates([("q", [1, 2], [3, 2, 1])])


def test_score_by_stage_splits_recall_by_stage():
  result = blessing.score_by_stage(
      {"cordless drill": [2, 9, 1], "garden hose": [9, 4, 3]}, JUDGMENTS,
      cutoffs=(1, 3))
  assert result == pytest.approx({
      "recall@1": (0.5 + 0.0) / 2,
      "recall@3": 1.0,
      # Gains 2.0 (ordered) and 1.5 (clicked).
      "ndcg@1": (1.5 / 2.0 + 0.0) / 2,
      "ndcg@3": ((1.5 + 2.0 / 2) / (2.0 + 1.5 / math.log2(3)) +
                 1 / math.log2(3)) / 2,
      "recall_ordered@1": 0.0,
      "recall_ordered@3": 1.0,
      "ordered_queries": 1,
      "recall_clicked@1": 0.5,
      "recall_clicked@3": 1.0,
      "clicked_queries": 2,
      "queries": 2,
      "recall_queries": 2,
  }, abs=1e-9)


def test_score_index_reports_the_index_and_exact_search():
  item_ids, embeddings, queries = _items()
  index = ann.build(item_ids, embeddings, "exact")
  result = blessing.score_index(index, list(JUDGMENTS), queries, TEXT_JUDGMENTS,
                                cutoffs=(3, 1))
  assert set(blessing.metric_names((1, 3))) <= set(result)
  for k in (1, 3):
    assert result[f"recall@{k}"] == pytest.approx(
        result[f"exact_recall@{k}"], abs=1e-9)
    assert result[f"index_recall@{k}"] == pytest.approx(1.0, abs=1e-9)
  assert result["recall@1"] == pytest.approx(0.75, abs=1e-9)


def test_score_index_scores_what_the_index_answers():
  item_ids, embeddings, queries = _items()
  index = _WorstFirst(item_ids, embeddings, {})
  result = blessing.score_index(index, list(JUDGMENTS), queries, TEXT_JUDGMENTS,
                                cutoffs=(1, 3))
  # The index finds none of the relevant items; exact search all of them.
  assert result["recall@3"] == pytest.approx(0.0, abs=1e-9)
  assert result["exact_recall@3"] == pytest.approx(1.0, abs=1e-9)
  assert result["index_recall@1"] == pytest.approx(0.0, abs=1e-9)


def test_score_index_needs_one_embedding_per_query():
  item_ids, embeddings, queries = _items()
  with pytest.raises(ValueError, match="1 queries for 2"):
    blessing.score_index(ann.build(item_ids, embeddings, "exact"), ["q"],
                         queries, {"q": {"1": 3.0}}, cutoffs=(1,))


@pytest.mark.parametrize("config,message", [
    (EvalConfig(cutoffs=(10, 100), blessing_metric="recall@1000"),
     "recall@1000"),
    (EvalConfig(cutoffs=()), "cutoffs"),
    (EvalConfig(cutoffs=(0, 10)), "cutoffs"),
    (EvalConfig(max_regression=-0.1), "max_regression"),
])
def test_check_config_rejects(config, message):
  with pytest.raises(ValueError, match=message):
    blessing.check_config(config)


@pytest.mark.parametrize("metric", ["recall@100", "exact_recall@100",
                                    "index_recall@10", "recall_ordered@1000"])
def test_check_config_accepts_every_reported_metric(metric):
  blessing.check_config(EvalConfig(blessing_metric=metric))


CONFIG = EvalConfig(min_gain_over_popularity=0.05, min_gain_over_initial=0.02,
                    max_regression=0.03)


@pytest.mark.parametrize("candidate,popularity,initial,baseline,blessed", [
    (0.48, 0.10, 0.40, None, True),
    (0.14, 0.10, 0.05, None, False),  # Within 0.05 of popularity.
    (0.41, 0.10, 0.40, None, False),  # Within 0.02 of its initial weights.
    (0.48, 0.10, 0.40, 0.50, True),  # Within the allowed regression, 0.03.
    (0.46, 0.10, 0.40, 0.50, False),
    (0.41, 0.10, 0.40, 0.30, False),  # Beats the last model, learned little.
])
def test_margins_and_regression(candidate, popularity, initial, baseline,
                                blessed):
  references = {
      blessing.POPULARITY: {"recall@100": popularity},
      blessing.INITIAL: {"recall@100": initial},
      blessing.BASELINE: (None if baseline is None else
                          {"recall@100": baseline}),
  }
  decision, reason = blessing.blessing_decision(
      CONFIG, {"recall@100": candidate}, references)
  assert decision == blessed
  assert reason.startswith(f"recall@100 {candidate:.4f}: ")


def test_reason_names_the_failed_comparison_first():
  _, reason = blessing.blessing_decision(
      CONFIG, {"recall@100": 0.41},
      {blessing.POPULARITY: {"recall@100": 0.1},
       blessing.INITIAL: {"recall@100": 0.4}})
  assert reason == (
      "recall@100 0.4100: +0.0100 against its initial weights (0.4000; "
      "needs +0.0200); passes +0.3100 against the most popular items "
      "(0.1000; needs +0.0500)")


def test_a_reference_without_the_metric_is_not_compared():
  config = EvalConfig(blessing_metric="index_recall@100",
                      min_gain_over_initial=0.0)
  decision, reason = blessing.blessing_decision(
      config, {"index_recall@100": 0.9},
      {blessing.POPULARITY: {"recall@100": 0.1},
       blessing.INITIAL: {"index_recall@100": 0.9}})
  assert decision and "popular" not in reason


def test_popularity_counts_slates_with_a_click_or_order():
  slates = [("a", [5, 6, 7], [features.Stage.CLICKED,
                              features.Stage.UNCLICKED,
                              features.Stage.RANDOM]),
            ("b", [6, 5, 8], [features.Stage.ORDERED, features.Stage.ORDERED,
                              features.Stage.CLICKED]),
            ("b", [9, 8], [features.Stage.UNCLICKED, features.Stage.CLICKED])]
  # 5: two slates; 8: two; 6: one. Ties go to the smaller id.
  assert blessing.popularity_ranking(slates, k=10) == [5, 8, 6]
  assert blessing.popularity_ranking(slates, k=2) == [5, 8]
  scores = blessing.score_popularity([5, 8, 6], {"q": {8: 3.0, 4: 3.0}},
                                     cutoffs=(1, 2))
  assert scores["recall@1"] == pytest.approx(0.0, abs=1e-9)
  assert scores["recall@2"] == pytest.approx(0.5, abs=1e-9)
  assert scores["exact_recall@2"] == pytest.approx(0.5, abs=1e-9)
  assert "index_recall@2" not in scores


def test_metrics_table_has_a_column_per_system():
  table = blessing.metrics_table({
      "candidate": {"recall@10": 0.5, "queries": 3},
      "baseline": None,
      "popularity": {"recall@10": 0.125, "queries": 3}})
  assert table.splitlines() == [
      f"{'metric':<24}{'candidate':>12}{'popularity':>12}",
      f"{'recall@10':<24}{0.5:>12.4f}{0.125:>12.4f}",
      f"{'queries':<24}{3:>12d}{3:>12d}",
  ]
