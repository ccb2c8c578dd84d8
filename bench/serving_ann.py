"""ANN indexes against exact search: recall@k, search and build time."""
import logging
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench import serving_limit
from contracts import serving_layout
from evaluation import metrics
from retrieval import ann
from retrieval import embedding


def _time_search(index: ann.Index, queries: np.ndarray, k: int,
                 single_queries: int) -> Dict[str, object]:
  started = time.perf_counter()
  ids, _ = index.search(queries, k)
  batched = (time.perf_counter() - started) / len(queries)
  index.search(queries[:1], k)  # Warm caches for the one-query loop.
  started = time.perf_counter()
  for row in range(single_queries):
    index.search(queries[row:row + 1], k)
  single = (time.perf_counter() - started) / single_queries
  return {"ids": ids, "batched_ms": batched * 1000, "single_ms": single * 1000}


def ann_vs_exact(name: str, item_ids: np.ndarray, item_embeddings: np.ndarray,
                 queries: np.ndarray, kinds: Sequence[str], k: int,
                 single_queries: int) -> Dict[str, object]:
  """Recall@k and speed of each index kind against exact search."""
  logging.info("ANN vs exact on %s: %d items x %d, %d queries", name,
               len(item_ids), item_embeddings.shape[1], len(queries))
  exact = _time_search(ann.build(item_ids, item_embeddings, "exact"), queries,
                       k, single_queries)
  row = {
      "dataset": name,
      "items": int(len(item_ids)),
      "dim": int(item_embeddings.shape[1]),
      "queries": int(len(queries)),
      "exact_single_ms": round(exact["single_ms"], 3),
      "exact_batched_ms": round(exact["batched_ms"], 3),
      "indexes": {},
  }
  for kind in kinds:
    started = time.monotonic()
    index = ann.build(item_ids, item_embeddings, kind, k=k)
    build_s = time.monotonic() - started
    timed = _time_search(index, queries, k, single_queries)
    row["indexes"][kind] = {
        "build_s": round(build_s, 1),
        f"recall@{k}": round(metrics.index_recall(timed["ids"], exact["ids"]), 4),
        "single_ms": round(timed["single_ms"], 3),
        "batched_ms": round(timed["batched_ms"], 3),
        "speedup_single": round(exact["single_ms"] / timed["single_ms"], 1),
        "speedup_batched": round(exact["batched_ms"] / timed["batched_ms"],
                                 1),
        "params": index.params,
    }
    logging.info("%s %s: %s", name, kind, row["indexes"][kind])
    del index
  return row


def catalogue_ann_vs_exact(serving_dir: str, queries: Sequence[str], k: int,
                           single_queries: int) -> Dict[str, object]:
  """ANN against exact on the item embeddings of the served `retrieval`
  index, with the queries embedded by the served query tower."""
  index = ann.load(serving_layout.index_dir(serving_layout.latest_version_dir(
      serving_dir, serving_layout.RETRIEVAL))).index
  query_tower = embedding.load_signature(serving_layout.latest_version_dir(
      serving_dir, serving_layout.QUERY_TOWER))
  return ann_vs_exact("benchmark catalogue", index.item_ids, index.embeddings,
                      embedding.embed_queries(query_tower, queries),
                      ("scann", "faiss"), k, single_queries)


def catalogue_plans(serving_dir: str, queries: Sequence[str],
                    judgments: Optional[metrics.Judgments], k: int,
                    batch: int = 8, seconds: float = 5.0
                   ) -> List[Dict[str, object]]:
  """Each index plan on the served item embeddings, side by side in one
  process on one search thread: recall against exact search, the judged
  queries' Recall@k and NDCG@10 through it, and queries/s at `batch`."""
  served = ann.load(serving_layout.index_dir(
      serving_layout.latest_version_dir(serving_dir,
                                        serving_layout.RETRIEVAL))).index
  query_tower = embedding.load_signature(serving_layout.latest_version_dir(
      serving_dir, serving_layout.QUERY_TOWER))
  embedded = embedding.embed_queries(query_tower, queries)
  ann.set_search_threads(1)
  # ScaNN's plan above 250k items (and the default before), at this size.
  leaves, searched = ann.partition_plan(served.size, partitioned=True)
  plans = (("exact", "exact", None), ("faiss", "faiss", None),
           ("scann", "scann", None),
           ("scann, partitioned", "scann",
            {"num_leaves": leaves, "leaves_to_search": searched}))
  batches = [embedded[i:i + batch]
             for i in range(0, len(embedded) - batch + 1, batch)]
  exact_ids = None
  rows = []
  for name, kind, params in plans:
    started = time.monotonic()
    index = ann.build(served.item_ids, served.embeddings, kind, k=k,
                      params=params)
    build_s = time.monotonic() - started
    ids, _ = index.search(embedded, min(max(k, 10), index.size))
    exact_ids = ids if exact_ids is None else exact_ids
    row = {"plan": name, "kind": kind, "params": index.params,
           "build_s": round(build_s, 1),
           f"recall@{k}": round(metrics.index_recall(ids[:, :k],
                                                     exact_ids[:, :k]), 4),
           "qps": round(serving_limit.rate(
               lambda x: index.search(x, k), batches, seconds)["qps"]),
           "batch": batch}
    if judgments:
      scores = serving_limit.judged_scores(queries, ids, judgments, (10, k))
      row[f"judged_recall@{k}"] = round(scores[f"recall@{k}"], 4)
      row["judged_ndcg@10"] = round(scores["ndcg@10"], 4)
    logging.info("Index plan %s: %s", name, row)
    rows.append(row)
    del index
  return rows


def synthetic_embeddings(num_items: int, num_queries: int, dim: int,
                         clustered: bool, seed: int = 0
                        ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Item ids and unit-norm item and query embeddings, made in chunks.

  Clustered: items around 2 sqrt(N) random centres (learned embeddings
  cluster by category), queries near random items. Isotropic: every vector
  uniform on the sphere, the hardest case for partitioning.
  """
  rng = np.random.default_rng(seed)
  items = np.empty((num_items, dim), dtype=np.float32)
  centres = rng.standard_normal(
      (int(2 * np.sqrt(num_items)), dim)).astype(np.float32)
  chunk = 500_000
  for start in range(0, num_items, chunk):
    stop = min(start + chunk, num_items)
    block = rng.standard_normal((stop - start, dim)).astype(np.float32)
    if clustered:
      block += centres[rng.integers(0, len(centres), stop - start)]
    items[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
  if clustered:
    queries = items[rng.integers(0, num_items, num_queries)] + (
        rng.standard_normal((num_queries, dim)).astype(np.float32) * 0.1)
  else:
    queries = rng.standard_normal((num_queries, dim)).astype(np.float32)
  queries /= np.linalg.norm(queries, axis=1, keepdims=True)
  return np.arange(num_items, dtype=np.int64), items, queries


def synthetic_ann_vs_exact(clustered_sizes: Sequence[int],
                           isotropic_sizes: Sequence[int], dim: int, k: int,
                           faiss_max_items: int,
                           single_queries: int) -> List[Dict[str, object]]:
  """`ann_vs_exact` on synthetic embeddings of each size (FAISS up to
  `faiss_max_items`), with fewer queries above a million items."""
  rows = []
  for clustered, sizes in ((True, clustered_sizes), (False, isotropic_sizes)):
    for size in sizes:
      ids, items, queries = synthetic_embeddings(
          size, 1000 if size <= 1_000_000 else 200, dim, clustered)
      kinds = ["scann"] + (["faiss"] if size <= faiss_max_items else [])
      rows.append(ann_vs_exact(
          "clustered" if clustered else "isotropic", ids, items, queries,
          kinds, k, min(single_queries, 50 if size > 1_000_000 else 200)))
      del items
  return rows


def build_times(sizes: Sequence[int], dim: int,
                k: int) -> List[Dict[str, object]]:
  """Seconds to build a ScaNN and a FAISS index over clustered embeddings."""
  rows = []
  for size in sizes:
    ids, items, _ = synthetic_embeddings(size, 1, dim, True)
    for kind in ("scann", "faiss"):
      started = time.monotonic()
      ann.build(ids, items, kind, k=k)
      rows.append({"items": size, "dataset": "clustered", "kind": kind,
                   "build_s": round(time.monotonic() - started, 1)})
  return rows
