"""BM25 over titles and reciprocal-rank fusion: the lexical reference."""
import pytest

from contracts import catalog as catalog_lib
from evaluation import lexical
from tests.fixtures import product_titles


def test_tokenize_keeps_single_characters_and_digits():
  assert lexical.tokenize(["2 x 4 Lumber, 1/2 in."]) == [
      ["2", "x", "4", "lumber", "1", "2", "in"]]


def test_bm25_ranks_exact_title_match_first():
  queries = ["garden hose 50 ft. heavy duty", "Drill Bit Set", "2 x 4 x 8"]
  rankings = lexical.bm25_rankings(product_titles.catalog(), queries, k=3)
  assert rankings["garden hose 50 ft. heavy duty"][0] == "12"
  assert rankings["Drill Bit Set"][0] == "13"
  assert rankings["2 x 4 x 8"][0] == "15"
  assert all(len(r) == 3 for r in rankings.values())


def test_bm25_depth_is_capped_at_catalogue_size():
  rankings = lexical.bm25_rankings(product_titles.catalog(), ["hose"], k=1000)
  assert sorted(rankings["hose"]) == sorted(product_titles.TITLES)
  assert set(rankings["hose"][:2]) == {"12", "14"}


def test_bm25_rejects_bad_depth_and_empty_catalogue():
  with pytest.raises(ValueError, match="k must be positive"):
    lexical.bm25_rankings(product_titles.catalog(), ["hose"], k=0)
  with pytest.raises(ValueError, match="empty"):
    lexical.bm25_rankings(catalog_lib.Catalog({}), ["hose"], k=10)


def test_rrf_fuses_by_reciprocal_rank():
  # 1: 1/61 + 1/62 = .03252; 3: 1/63 + 1/61 = .03227; 2: 1/62; 4: 1/63.
  fused = lexical.rrf_rankings({"q": [1, 2, 3]}, {"q": [3, 1, 4]}, k=60)
  assert fused == {"q": [1, 3, 2, 4]}
  assert lexical.rrf_rankings({"q": [1, 2, 3]}, {"q": [3, 1, 4]},
                                depth=2) == {"q": [1, 3]}


def test_rrf_constant_changes_the_order():
  # k=0: 7 and 5 score 1/1 from one list, 6 scores 1/2 + 1/2: a three-way
  # tie in interleaved order. k=60: 6's 2/62 beats 1/61.
  a, b = {"q": [7, 6]}, {"q": [5, 6]}
  assert lexical.rrf_rankings(a, b, k=0)["q"][:3] == [7, 5, 6]
  assert lexical.rrf_rankings(a, b, k=60)["q"][0] == 6


def test_rrf_ties_keep_list_a_first_at_equal_rank():
  fused = lexical.rrf_rankings({"q": [1, 2]}, {"q": [3, 4]})
  assert fused == {"q": [1, 3, 2, 4]}


def test_rrf_needs_the_same_queries():
  with pytest.raises(ValueError, match="same queries"):
    lexical.rrf_rankings({"q": [1]}, {"other": [1]})
