"""The one exact top-k: brute-force agreement, ties, and who calls it."""
import numpy as np
import pytest

from evaluation import blessing
from retrieval import ann
from retrieval import topk


@pytest.mark.parametrize("k,batch_size", [(5, 7), (1, 100), (50, 3), (80, 16),
                                          (5, None)])
def test_matches_brute_force(k, batch_size):
  rng = np.random.default_rng(0)
  queries = rng.normal(size=(23, 8)).astype(np.float32)
  items = rng.normal(size=(50, 8)).astype(np.float32)
  indices, scores = topk.exact_top_k(queries, items, k, batch_size)
  all_scores = queries @ items.T
  expected = np.argsort(-all_scores, axis=1)[:, :min(k, 50)]
  np.testing.assert_array_equal(indices, expected)
  np.testing.assert_allclose(
      scores, np.take_along_axis(all_scores, expected, axis=1), atol=1e-5)
  assert indices.dtype == np.int64 and scores.dtype == np.float32


def test_rejects_mismatched_dimensions():
  with pytest.raises(ValueError, match="not from one model"):
    topk.exact_top_k(np.ones((2, 4)), np.ones((3, 5)), k=1)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6])
def test_equal_scores_rank_by_row(k):
  # Rows 1, 2 and 4 tie, and straddle the k-th place for k = 2 and 3.
  items = np.array([[0.5], [1.0], [1.0], [0.0], [1.0], [-1.0]],
                   dtype=np.float32)
  rows, scores = topk.exact_top_k(np.ones((3, 1), np.float32), items, k,
                                  batch_size=2)
  expected = [1, 2, 4, 0, 3, 5][:k]
  np.testing.assert_array_equal(rows, [expected] * 3)
  np.testing.assert_allclose(scores, items[[expected] * 3, 0], atol=1e-6)


def test_every_exact_search_is_this_one(monkeypatch):
  """ExactIndex and the evaluator's reference search both call it."""
  calls = []
  real = topk.exact_top_k

  def spy(*args, **kwargs):
    calls.append(args[2])
    return real(*args, **kwargs)

  monkeypatch.setattr(topk, "exact_top_k", spy)
  items = np.eye(4, dtype=np.float32)
  queries = np.eye(4, dtype=np.float32)[:2]
  ann.build(np.arange(4), items, "exact").search(queries, 2)
  assert calls == [2]
  blessing.score_index(ann.build(np.arange(4), items, "faiss"), ["a", "b"],
                       queries, {"a": {0: 3.0}, "b": {1: 3.0}}, cutoffs=(3,))
  assert calls == [2, 3]
