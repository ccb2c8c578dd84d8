"""The lexical reference a learned retriever must beat: BM25 over titles,
and reciprocal-rank fusion to combine rankings.

The evaluator's end-to-end check and the quality benchmark both score BM25
(`bm25_rankings`) with `evaluation.metrics`, so "better than word overlap"
means the same everywhere. Rankings map each query to item ids, best first.
"""
import logging
import re
from typing import Dict, List, Mapping, Optional, Sequence

from contracts import catalog as catalog_lib

Rankings = Dict[str, List[str]]  # query -> item ids, best first

# Every run of word characters is a token, single characters and digits
# included: titles and queries lean on sizes and counts ("2 x 4", "1/2 in.",
# "3 hp"), which the usual two-character minimum and stop-word lists drop.
# This is the benchmark's own definition of its BM25 peer, not the project's
# text rule (`contracts.text`): with it BM25 reproduces the data README's
# reference figures, so the peer stays comparable to them.
_TOKEN = re.compile(r"\w+")

# The classic Robertson-Sparck Jones BM25 with the usual k1 and b, which
# reproduces the reference figures (bench/results; Lucene's IDF variant,
# bm25s' default, lands within noise of it).
BM25_METHOD = "robertson"
BM25_K1 = 1.5
BM25_B = 0.75


def tokenize(texts: Sequence[str]) -> List[List[str]]:
  """Lower-cased word tokens of each text, no stemming, no stop words."""
  return [_TOKEN.findall(text.lower()) for text in texts]


def depth_of(k: int, num_items: int) -> int:
  """A ranking depth of k, capped at the catalogue size; k must be > 0."""
  if k < 1:
    raise ValueError(f"k must be positive, got {k}")
  return min(k, num_items)


def catalog_titles(catalog: catalog_lib.Catalog):
  """(item ids, titles) of a catalogue; an empty one is an error."""
  titles = catalog.titles.tolist()
  if not titles:
    raise ValueError("the catalogue is empty")
  return catalog.item_ids, titles


def bm25_rankings(catalog: catalog_lib.Catalog, queries: Sequence[str],
                  k: int) -> Rankings:
  """Ranks the catalogue for each query by BM25 over item titles.

  Args:
    catalog: a `contracts.catalog.Catalog` (ids and titles are used).
    queries: raw query strings.
    k: ranking depth (capped at the catalogue size).

  Returns:
    query -> the top-k item ids, best first.
  """
  import bm25s  # pylint: disable=g-import-not-at-top
  item_ids, titles = catalog_titles(catalog)
  depth = depth_of(k, len(titles))
  retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B, method=BM25_METHOD)
  logging.info("BM25: indexing %d titles", len(titles))
  retriever.index(tokenize(titles), show_progress=False)
  logging.info("BM25: ranking %d queries", len(queries))
  docs, _ = retriever.retrieve(tokenize(queries), k=depth,
                               show_progress=False, n_threads=1)
  return {q: item_ids[row].tolist() for q, row in zip(queries, docs)}


def rrf_rankings(rankings_a: Mapping[str, Sequence[str]],
                 rankings_b: Mapping[str, Sequence[str]], k: int = 60,
                 depth: Optional[int] = None) -> Rankings:
  """Reciprocal-rank fusion: score(item) = sum over lists of 1 / (k + rank).

  Ranks start at 1; an item missing from a list gains nothing from it. Equal
  scores keep the better single-list rank first, list a before list b.

  Args:
    rankings_a: query -> item ids, best first.
    rankings_b: the same queries, ranked by another system.
    k: the RRF constant (60 in Cormack et al. 2009).
    depth: length of each fused ranking; by default every item of either
      list. The benchmark cuts at its inputs' depth, so a fusion is scored
      no deeper than the systems it fuses.

  Returns:
    query -> fused item ids, best first.
  """
  if set(rankings_a) != set(rankings_b):
    raise ValueError("RRF needs both rankings over the same queries; "
                     f"{len(set(rankings_a) ^ set(rankings_b))} differ")
  fused = {}
  for query, list_a in rankings_a.items():
    list_b = rankings_b[query]
    scores = {}
    # Interleaving a and b makes insertion order the tie-break.
    for rank in range(max(len(list_a), len(list_b))):
      for ranked in (list_a, list_b):
        if rank < len(ranked):
          item = ranked[rank]
          scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank + 1)
    # sorted() is stable, so equal scores keep the interleaved order.
    fused[query] = sorted(scores, key=lambda i: -scores[i])[:depth]
  return fused
