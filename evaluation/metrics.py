"""Recall@K and NDCG@K over the whole catalogue, one scorer for everything.

The pipeline's evaluator, `mmse evaluate` and every benchmark call these
functions, so figures from any of them are comparable; `index_recall` is
how much of exact search's top-k an ANN index finds. Conventions follow the
benchmark's README: an item is relevant for recall when its grade is at least
`features.RELEVANT_GRADE`; NDCG's gain is grade - 1, unjudged items gain 0;
queries without a relevant item are left out of recall (but kept for NDCG
when they have any positive gain).
"""
import collections
import csv
import math
from typing import Dict, Iterable, Mapping, Sequence

import numpy as np

from contracts import catalog as catalog_lib
from contracts import features
from evaluation import config as eval_config

# query -> {item_id: grade}
Judgments = Dict[str, Dict[str, float]]


def read_judgments(path: str) -> Judgments:
  """Reads a `query,item_id,relevance` CSV; a bad row is an error, not a skip.

  Item ids are text, as the catalogue has them (`contracts.catalog`).
  """
  judgments: Judgments = collections.defaultdict(dict)
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.DictReader(f)
    missing = {features.QUERY, features.ITEM_ID, features.RELEVANCE} - set(
        reader.fieldnames or ())
    if missing:
      raise ValueError(f"{path}: missing columns {sorted(missing)}")
    for line, row in enumerate(reader, start=2):
      try:
        item_id, problem = catalog_lib.parse_item_id(row[features.ITEM_ID])
        if problem:
          raise ValueError(problem)
        grade = float(row[features.RELEVANCE])
      except (TypeError, ValueError) as e:
        raise ValueError(f"{path}:{line}: bad judgment row {row} ({e})") from e
      judgments[row[features.QUERY]][item_id] = grade
  return dict(judgments)


def recall_at_k(ranked: Sequence[str], grades: Mapping[str, float],
                k: int) -> float:
  relevant = {i for i, g in grades.items() if g >= features.RELEVANT_GRADE}
  if not relevant:
    raise ValueError("recall is undefined without a relevant item")
  return len(relevant.intersection(ranked[:k])) / len(relevant)


def index_recall(found: np.ndarray, exact: np.ndarray) -> float:
  """Mean share of each row of `exact` that the same row of `found` holds.

  Args:
    found: item ids [Q, k] an index returned.
    exact: item ids [Q, k'] of exact search for the same queries.
  """
  found, exact = np.asarray(found), np.asarray(exact)
  if len(found) != len(exact):
    raise ValueError(f"{len(found)} rows found for {len(exact)} exact rows")
  if not len(exact) or not exact.shape[1]:
    raise ValueError("index recall is undefined without exact results")
  return float(np.mean([
      len(np.intersect1d(f, e)) / len(e) for f, e in zip(found, exact)]))


def ndcg_at_k(ranked: Sequence[str], grades: Mapping[str, float],
              k: int) -> float:
  gains = {i: g - 1.0 for i, g in grades.items() if g > 1.0}
  dcg = sum(gains.get(item, 0.0) / math.log2(rank + 2)
            for rank, item in enumerate(ranked[:k]))
  ideal = sorted(gains.values(), reverse=True)[:k]
  idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
  return dcg / idcg if idcg > 0 else 0.0


def score(rankings: Mapping[str, Sequence[str]], judgments: Judgments,
          cutoffs: Iterable[int] = eval_config.EvalConfig.cutoffs
         ) -> Dict[str, float]:
  """Mean Recall@K and NDCG@K over the judged queries.

  Args:
    rankings: query -> item ids, best first (at least max(cutoffs) long when
      the catalogue allows). Every judged query must have a ranking.
    judgments: query -> {item_id: grade}.
    cutoffs: the K values.

  Returns:
    {"recall@K": ..., "ndcg@K": ..., "queries": number of judged queries,
     "recall_queries": queries with a relevant item}.
  """
  missing = [q for q in judgments if q not in rankings]
  if missing:
    raise ValueError(f"{len(missing)} judged queries have no ranking, "
                     f"e.g. {missing[:3]}")
  cutoffs = sorted(cutoffs)
  recall = {k: [] for k in cutoffs}
  ndcg = {k: [] for k in cutoffs}
  for query, grades in judgments.items():
    ranked = list(rankings[query])
    has_relevant = any(g >= features.RELEVANT_GRADE for g in grades.values())
    for k in cutoffs:
      if has_relevant:
        recall[k].append(recall_at_k(ranked, grades, k))
      ndcg[k].append(ndcg_at_k(ranked, grades, k))
  result = {}
  for k in cutoffs:
    result[f"recall@{k}"] = _mean(recall[k])
    result[f"ndcg@{k}"] = _mean(ndcg[k])
  result["queries"] = len(judgments)
  result["recall_queries"] = len(recall[cutoffs[0]]) if cutoffs else 0
  return result


def _mean(values):
  return sum(values) / len(values) if values else 0.0
