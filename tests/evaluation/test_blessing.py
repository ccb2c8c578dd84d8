"""The evaluator's library: judgments from slates, index scoring, blessing."""
import math

import numpy as np
import pytest

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


class _WorstFirst(ann.ExactIndex):
  """An index that answers the worst items first, as a broken ANN might."""

  def _search_rows(self, queries, k):
    rows, scores = super()._search_rows(queries, self.size)
    return rows[:, ::-1][:, :k], scores[:, ::-1][:, :k]


def _items():
  """Item i + 1 is the unit vector e_i; the queries point at items 1 and 4."""
  item_ids = np.arange(1, 9)
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
  result = blessing.score_index(index, list(JUDGMENTS), queries, JUDGMENTS,
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
  result = blessing.score_index(index, list(JUDGMENTS), queries, JUDGMENTS,
                                cutoffs=(1, 3))
  # The index finds none of the relevant items; exact search all of them.
  assert result["recall@3"] == pytest.approx(0.0, abs=1e-9)
  assert result["exact_recall@3"] == pytest.approx(1.0, abs=1e-9)
  assert result["index_recall@1"] == pytest.approx(0.0, abs=1e-9)


def test_score_index_needs_one_embedding_per_query():
  item_ids, embeddings, queries = _items()
  with pytest.raises(ValueError, match="1 queries for 2"):
    blessing.score_index(ann.build(item_ids, embeddings, "exact"), ["q"],
                         queries, {"q": {1: 3.0}}, cutoffs=(1,))


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


@pytest.mark.parametrize("candidate,baseline,blessed", [
    (0.48, None, True),
    (0.04, None, False),  # Below the floor of 0.05.
    (0.48, 0.50, True),  # Within the allowed regression of 0.03.
    (0.46, 0.50, False),
    (0.04, 0.01, False),  # Beats the baseline, still below the floor.
])
def test_floor_and_regression(candidate, baseline, blessed):
  config = EvalConfig(min_blessing_value=0.05, max_regression=0.03)
  decision, _ = blessing.blessing_decision(
      config, {"recall@100": candidate},
      None if baseline is None else {"recall@100": baseline})
  assert decision == blessed
