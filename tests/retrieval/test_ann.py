"""ANN indexes: recall against exact search, save/load, bad input."""
import os

import numpy as np
import pytest

from evaluation import metrics
from retrieval import ann
from retrieval import topk


def _clustered(num_items, num_queries, dim=16, clusters=50, seed=0):
  """Unit vectors around random centres, queries near random items."""
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((clusters, dim))
  items = centres[rng.integers(0, clusters, num_items)] + 0.5 * (
      rng.standard_normal((num_items, dim)))
  queries = items[rng.integers(0, num_items, num_queries)] + 0.5 * (
      rng.standard_normal((num_queries, dim)))
  unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(
      np.float32)
  return unit(items), unit(queries)


def test_exact_index_matches_hand_computed_top_k():
  items = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], dtype=np.float32)
  index = ann.build(np.array(["10", "SKU-11", "012", "13"]), items,
                    kind="exact")
  ids, scores = index.search(np.array([[1, 0], [0, 1]], dtype=np.float32), 2)
  assert ids.tolist() == [["10", "012"], ["SKU-11", "012"]]
  np.testing.assert_allclose(scores, [[1.0, 0.6], [1.0, 0.8]], atol=1e-6)


def test_exact_index_agrees_with_the_exact_top_k():
  items, queries = _clustered(3000, 40)
  ids, scores = ann.build(np.arange(3000), items, "exact").search(queries, 10)
  ref_rows, ref_scores = topk.exact_top_k(queries, items, 10)
  np.testing.assert_array_equal(ids, ref_rows.astype(str))
  np.testing.assert_allclose(scores, ref_scores, atol=1e-6)


@pytest.mark.parametrize("kind,params,min_recall,score_error", [
    # 30% of 141 partitions.
    ("scann", {"num_leaves": 141, "leaves_to_search": 43}, 0.9, 1e-4),
    ("faiss", {"nlist": 141, "nprobe": 43, "pq_dims_per_code": 0}, 0.9,
     1e-4),
    # Above 250k items: lists, codes and re-scoring together.
    ("faiss", {"nlist": 141, "nprobe": 43}, 0.9, 2e-3),
    # Defaults below 250k items score every item's codes.
    ("scann", None, 0.99, 1e-4),
    # Re-scored from 16-bit floats.
    ("faiss", None, 0.95, 2e-3),
])
def test_ann_recall_against_exact(kind, params, min_recall, score_error):
  items, queries = _clustered(5000, 100)
  item_ids = np.arange(5000, dtype=np.int64) * 3 + 1
  exact_ids, _ = ann.build(item_ids, items, "exact").search(queries, 10)
  index = ann.build(item_ids, items, kind, k=10, params=params)
  ids, scores = index.search(queries, 10)
  assert metrics.index_recall(ids, exact_ids) >= min_recall
  # Returned scores are the dot products of the returned items, best first
  # (both re-score their candidates with the embeddings).
  rows = (ids.astype(np.int64) - 1) // 3
  true_scores = np.einsum("qd,qkd->qk", queries, items[rows])
  np.testing.assert_allclose(scores, true_scores, atol=score_error)
  assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_faiss_projection_keeps_the_ranking_of_off_centre_items():
  """Items share a large common part, as learned embeddings do; the codes
  are taken on fewer principal directions than dimensions, applied without
  the mean, so re-scoring still finds the exact top-k."""
  rng = np.random.default_rng(3)
  items, queries = _clustered(6000, 100, dim=64)
  items = items + 3 * rng.standard_normal(64).astype(np.float32)
  exact_ids, _ = ann.build(np.arange(6000), items, "exact").search(queries,
                                                                   10)
  index = ann.build(np.arange(6000), items, "faiss", k=10,
                    params={"projection_dim": 32, "k_factor": 4.0})
  assert index.params["pq_dims_per_code"] == 2
  ids, _ = index.search(queries, 10)
  assert metrics.index_recall(ids, exact_ids) >= 0.95


def test_faiss_scan_answers_as_the_automatic_choice_after_a_reload(
    tmp_path):
  """The index picks FAISS's one-query-at-a-time scan for speed; it must
  return what FAISS's own choice returns, also once read back from disk."""
  items, queries = _clustered(6000, 64, dim=64)
  index = ann.build(np.arange(6000), items, "faiss", k=10,
                    params={"projection_dim": 32})
  ann.save(index, str(tmp_path / "index"), k=10)
  loaded = ann.load(str(tmp_path / "index")).index
  chosen = ann.FaissIndex._flat_fast_scan(loaded._index)  # pylint: disable=protected-access
  picked = chosen.implem
  assert picked != 0
  for batch in (1, 8, 64):
    chosen.implem = picked
    ids, scores = loaded.search(queries[:batch], 10)
    chosen.implem = 0  # FAISS's automatic choice.
    auto_ids, auto_scores = loaded.search(queries[:batch], 10)
    np.testing.assert_array_equal(ids, auto_ids)
    np.testing.assert_allclose(scores, auto_scores, atol=1e-6)


def test_search_threads_reach_the_thread_that_searches():
  """A server sets the count once and searches on its model threads; OpenMP
  keeps the count per thread, so a search must apply it where it runs."""
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  import faiss  # pylint: disable=g-import-not-at-top
  items, queries = _clustered(3000, 8, dim=32)
  index = ann.build(np.arange(3000), items, "faiss", k=10,
                    params={"projection_dim": 16})

  def threads_after_a_search():
    index.search(queries, 10)
    return faiss.omp_get_max_threads()

  try:
    for threads in (1, 2):
      ann.set_search_threads(threads)
      with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(threads_after_a_search).result() == threads
  finally:
    ann.set_search_threads(os.cpu_count())


@pytest.mark.parametrize("kind", ["scann", "faiss", "exact"])
def test_save_load_after_the_directory_moves(tmp_path, kind):
  items, queries = _clustered(3000, 20)
  item_ids = np.arange(3000, dtype=np.int64) + 100
  index = ann.build(item_ids, items, kind, k=5)
  written = str(tmp_path / "staging")
  ann.save(index, written, k=5, titles=[f"item {i}" for i in item_ids])
  moved = str(tmp_path / "version" / "index")
  os.makedirs(os.path.dirname(moved))
  os.rename(written, moved)  # As a version is renamed into place.
  loaded = ann.load(moved)
  assert loaded.meta["kind"] == kind and loaded.k == 5
  assert loaded.titles[0] == b"item 100"
  np.testing.assert_array_equal(loaded.index.search(queries, 5)[0],
                                index.search(queries, 5)[0])


@pytest.mark.parametrize("kind", ["scann", "faiss", "exact"])
def test_save_load_through_a_uri_filesystem(kind):
  """tf.io.gfile's in-memory filesystem stands in for gs://."""
  items, queries = _clustered(3000, 20)
  item_ids = np.arange(3000, dtype=np.int64)
  index = ann.build(item_ids, items, kind, k=5)
  directory = f"ram://ann_test/{kind}/index"
  ann.save(index, directory, k=5, titles=[f"item {i}" for i in item_ids])
  loaded = ann.load(directory)
  assert loaded.meta["kind"] == kind and loaded.titles[1] == b"item 1"
  np.testing.assert_array_equal(loaded.index.embeddings, items)
  np.testing.assert_array_equal(loaded.index.search(queries, 5)[0],
                                index.search(queries, 5)[0])


def test_save_refuses_an_existing_directory(tmp_path):
  items, _ = _clustered(10, 1)
  with pytest.raises(FileExistsError):
    ann.save(ann.build(np.arange(10), items, "exact"), str(tmp_path), k=5)


def test_load_refuses_an_incomplete_directory(tmp_path):
  items, _ = _clustered(100, 1)
  directory = str(tmp_path / "index")
  ann.save(ann.build(np.arange(100), items, "exact"), directory, k=5)
  os.remove(os.path.join(directory, ann.META_FILE))
  with pytest.raises(FileNotFoundError, match="incomplete"):
    ann.load(directory)


def test_small_catalogues_still_return_k_items():
  items, queries = _clustered(7, 3)
  for kind in ("scann", "faiss"):
    ids, _ = ann.build(np.arange(7), items, kind, k=7).search(queries, 7)
    assert sorted(ids[0].tolist()) == [str(i) for i in range(7)]


@pytest.mark.parametrize("item_ids,embeddings,kind,params,message", [
    ([1, 1], np.zeros((2, 4)), "exact", None, "unique"),
    ([1, 2], np.zeros((3, 4)), "exact", None, "do not match"),
    ([1], np.full((1, 4), np.nan), "exact", None, "NaN"),
    ([1], np.zeros((1, 4)), "annoy", None, "Unknown index kind"),
    ([1], np.zeros((1, 4)), "scann", {"leaves": 3}, "Unknown scann params"),
    (np.arange(3000), np.ones((3000, 12)), "faiss", {"pq_dims_per_code": 5},
     "must divide the coded width 12"),
])
def test_build_rejects_bad_input(item_ids, embeddings, kind, params, message):
  with pytest.raises(ValueError, match=message):
    ann.build(np.array(item_ids), embeddings, kind, params=params)


def test_search_rejects_wrong_dim_and_k():
  index = ann.build(np.arange(3), np.eye(3, dtype=np.float32), "exact")
  with pytest.raises(ValueError, match=r"\[batch, 3\]"):
    index.search(np.zeros((1, 4)), 1)
  with pytest.raises(ValueError, match="k must be in 1..3"):
    index.search(np.zeros((1, 3)), 4)
