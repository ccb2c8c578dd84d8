"""What the evaluator scores and the rule that blesses a model.

Judgments come from the mined slates of held-out queries (the `eval`
split, never trained on): per query, each item's highest stage over its
slates. Stages become grades on the benchmark's scale, so that
`metrics.score` applies unchanged:

  ORDERED -> 3.0  relevant for recall, NDCG gain 2.0
  CLICKED -> 2.5  relevant for recall (`features.RELEVANT_GRADE`), gain 1.5

Shown-unclicked and random items get no judgment: on that scale they would
gain nothing and never count for recall, exactly as an unjudged item.

A model is scored as it is served: its queries are searched in its ANN
index (`recall@K`, `ndcg@K`, and recall per stage, `recall_ordered@K`,
`recall_clicked@K`: clicked but never ordered), and, over the same
embeddings, by exact search (`exact_recall@K`, `exact_ndcg@K`), with
`index_recall@K` the share of exact search's top K the index finds.

The blessing asks whether the model learned something and is no worse than
what serves: one of these metrics must beat the training logs' most popular
items and the same towers at their initial weights by configured margins,
and not fall below the latest blessed model's by more than a tolerance.
"""
import collections
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from contracts import features
from evaluation import metrics
from evaluation.config import EvalConfig
from retrieval import ann
from retrieval import topk

STAGE_GRADES = {
    features.Stage.ORDERED: 3.0,
    features.Stage.CLICKED: features.RELEVANT_GRADE,
}
# Names of the stages with their own recall (`recall_ordered@K`).
STAGE_NAMES = {
    features.Stage.ORDERED: "ordered",
    features.Stage.CLICKED: "clicked",
}
EXACT_PREFIX = "exact_"
INDEX_RECALL = "index_recall"

# (query, item ids, stages) of one mined slate.
Slate = Tuple[str, Sequence[str], Sequence[int]]


def judgments_from_slates(slates: Iterable[Slate]) -> metrics.Judgments:
  """query -> {item_id: grade} for the items whose highest stage for the
  query is CLICKED or ORDERED; queries without one are left out."""
  best_stage = collections.defaultdict(dict)
  for query, item_ids, stages in slates:
    if len(item_ids) != len(stages):
      raise ValueError(f"A slate of {query!r} has {len(item_ids)} items but "
                       f"{len(stages)} stages")
    items = best_stage[query]
    for item_id, stage in zip(item_ids, stages):
      if stage > items.get(item_id, features.Stage.PADDING):
        items[item_id] = stage
  judgments = {}
  for query, items in best_stage.items():
    grades = {item_id: STAGE_GRADES[stage] for item_id, stage in items.items()
              if stage in STAGE_GRADES}
    if grades:
      judgments[query] = grades
  return judgments


def metric_names(cutoffs: Iterable[int]) -> List[str]:
  """Every per-cutoff metric `score_index` reports."""
  prefixes = (["recall", "ndcg"] +
              [f"recall_{n}" for n in STAGE_NAMES.values()] +
              [f"{EXACT_PREFIX}recall", f"{EXACT_PREFIX}ndcg", INDEX_RECALL])
  return [f"{prefix}@{k}" for prefix in prefixes for k in sorted(cutoffs)]


def check_config(config: EvalConfig) -> None:
  """Fails before any work when the blessing rule cannot be applied."""
  if not config.cutoffs or min(config.cutoffs) < 1:
    raise ValueError(f"cutoffs must be positive integers, got "
                     f"{config.cutoffs}")
  if config.blessing_metric not in metric_names(config.cutoffs):
    raise ValueError(
        f"blessing_metric {config.blessing_metric!r} is not one of "
        f"{metric_names(config.cutoffs)}")
  for knob in ("min_gain_over_popularity", "min_gain_over_initial",
               "max_regression"):
    if getattr(config, knob) < 0:
      raise ValueError(f"{knob} must be >= 0, got {getattr(config, knob)}")


def score_by_stage(rankings: Mapping[str, Sequence[str]],
                   judgments: metrics.Judgments,
                   cutoffs: Iterable[int]) -> Dict[str, float]:
  """`metrics.score` plus recall of ordered and of clicked items apart."""
  cutoffs = sorted(cutoffs)
  result = metrics.score(rankings, judgments, cutoffs)
  for stage, name in STAGE_NAMES.items():
    grade = STAGE_GRADES[stage]
    stage_judgments = {}
    for query, grades in judgments.items():
      items = {i: g for i, g in grades.items() if g == grade}
      if items:
        stage_judgments[query] = items
    stage_result = metrics.score(rankings, stage_judgments, cutoffs)
    for k in cutoffs:
      result[f"recall_{name}@{k}"] = stage_result[f"recall@{k}"]
    result[f"{name}_queries"] = stage_result["queries"]
  return result


def score_index(index: ann.Index, queries: Sequence[str],
                query_embeddings: np.ndarray, judgments: metrics.Judgments,
                cutoffs: Iterable[int]) -> Dict[str, float]:
  """Scores the index's answers and exact search over its embeddings.

  Args:
    index: the ANN index serving answers from.
    queries: the judged queries, one per row of `query_embeddings`.
    query_embeddings: float32 [Q, D] from the query tower paired with the
      index.
    judgments: query -> {item_id: grade}.
    cutoffs: the K values.

  Returns:
    `score_by_stage` of the index's rankings, and per K `exact_recall@K`,
    `exact_ndcg@K` and `index_recall@K` (see the module docstring).
  """
  cutoffs = sorted(cutoffs)
  queries = list(queries)
  if len(queries) != len(query_embeddings):
    raise ValueError(f"{len(queries)} queries for {len(query_embeddings)} "
                     "query embeddings")
  k = min(cutoffs[-1], index.size)
  found_ids, _ = index.search(query_embeddings, k)
  exact_rows, _ = topk.exact_top_k(query_embeddings, index.embeddings, k)
  exact_ids = index.item_ids[exact_rows]
  result = score_by_stage(dict(zip(queries, found_ids.tolist())), judgments,
                          cutoffs)
  exact = metrics.score(dict(zip(queries, exact_ids.tolist())), judgments,
                        cutoffs)
  for cutoff in cutoffs:
    for name in ("recall", "ndcg"):
      result[f"{EXACT_PREFIX}{name}@{cutoff}"] = exact[f"{name}@{cutoff}"]
    result[f"{INDEX_RECALL}@{cutoff}"] = metrics.index_recall(
        found_ids[:, :cutoff], exact_ids[:, :cutoff])
  return result


# What the candidate is compared with, in the order the reason names them.
POPULARITY = "popularity"  # The training logs' most clicked items, for all.
INITIAL = "initial"  # The candidate's towers before training (same seed).
BASELINE = "baseline"  # The latest blessed model.
REFERENCES = (POPULARITY, INITIAL, BASELINE)
_REFERENCE_NAMES = {
    POPULARITY: "the most popular items",
    INITIAL: "its initial weights",
    BASELINE: "the last blessed model",
}


def popularity_ranking(slates: Iterable[Slate], k: int) -> List[str]:
  """The `k` items clicked or ordered in the most slates, most first.

  Ties go to the smaller item id, so the ranking is reproducible.
  """
  counts = collections.Counter()
  for _, item_ids, stages in slates:
    counts.update({item_id for item_id, stage in zip(item_ids, stages)
                   if stage in STAGE_GRADES})
  ranked = sorted(counts.items(), key=lambda entry: (-entry[1], entry[0]))
  return [item_id for item_id, _ in ranked[:k]]


def score_popularity(ranking: Sequence[str], judgments: metrics.Judgments,
                     cutoffs: Iterable[int]) -> Dict[str, float]:
  """`score_by_stage` of one ranking given to every judged query.

  It has no embeddings, so its `exact_` metrics equal the plain ones and it
  has no `index_recall@K`.
  """
  cutoffs = sorted(cutoffs)
  ranking = list(ranking)
  result = score_by_stage({query: ranking for query in judgments}, judgments,
                          cutoffs)
  for cutoff in cutoffs:
    for name in ("recall", "ndcg"):
      result[f"{EXACT_PREFIX}{name}@{cutoff}"] = result[f"{name}@{cutoff}"]
  return result


def blessing_decision(config: EvalConfig, candidate: Mapping[str, float],
                      references: Mapping[str, Optional[Mapping[str, float]]]
                     ) -> Tuple[bool, str]:
  """Blessed when the metric beats popularity and the initial weights by
  their margins and does not regress from the last blessed model.

  Args:
    config: the metric, margins and tolerance.
    candidate: the candidate's metrics.
    references: metrics of each of `REFERENCES`; a missing or None entry
      (no blessed model yet), or one without the metric (popularity has no
      `index_recall@K`), is not compared.

  Returns:
    (blessed, a sentence saying why: every comparison, failed ones first).
  """
  name = config.blessing_metric
  value = candidate[name]
  required = {POPULARITY: config.min_gain_over_popularity,
              INITIAL: config.min_gain_over_initial,
              BASELINE: -config.max_regression}
  failed, passed = [], []
  for reference in REFERENCES:
    scores = references.get(reference)
    if scores is None or name not in scores:
      continue
    gain = value - scores[name]
    phrase = (f"{gain:+.4f} against {_REFERENCE_NAMES[reference]} "
              f"({scores[name]:.4f}; needs {required[reference]:+.4f})")
    (passed if gain >= required[reference] else failed).append(phrase)
  if failed:
    return False, (f"{name} {value:.4f}: " + ", ".join(failed) +
                   ("; passes " + ", ".join(passed) if passed else ""))
  if references.get(BASELINE) is None:
    passed.append("no blessed model yet")
  return True, f"{name} {value:.4f}: " + ", ".join(passed)


def metrics_table(columns: Mapping[str, Optional[Mapping[str, float]]]
                 ) -> str:
  """Metrics side by side (one column per scored system), for the log."""
  columns = {title: values for title, values in columns.items() if values}
  first = next(iter(columns.values()))
  lines = [f"{'metric':<24}" + "".join(f"{title:>12}" for title in columns)]
  for name in first:
    cells = []
    for values in columns.values():
      value = values.get(name)
      # Query counts are ints and print as such; metrics print as 0.1234.
      cells.append(f"{'':>12}" if value is None else
                   f"{value:>12d}" if isinstance(value, int) else
                   f"{value:>12.4f}")
    lines.append(f"{name:<24}" + "".join(cells))
  return "\n".join(lines)
