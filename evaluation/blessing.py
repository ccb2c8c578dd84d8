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
`index_recall@K` the share of exact search's top K the index finds. The
blessing compares one of these metrics with a floor and with the latest
blessed model's.
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
Slate = Tuple[str, Sequence[int], Sequence[int]]


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
  if config.max_regression < 0:
    raise ValueError(f"max_regression must be >= 0, got "
                     f"{config.max_regression}")


def score_by_stage(rankings: Mapping[str, Sequence[int]],
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


def blessing_decision(config: EvalConfig, candidate: Mapping[str, float],
                      baseline: Optional[Mapping[str, float]]
                     ) -> Tuple[bool, str]:
  """Blessed when the metric reaches its floor and does not regress.

  Returns:
    (blessed, a sentence saying why).
  """
  name = config.blessing_metric
  value = candidate[name]
  if value < config.min_blessing_value:
    return False, (f"{name} {value:.4f} is below the floor "
                   f"{config.min_blessing_value:.4f}")
  if baseline is None:
    return True, (f"{name} {value:.4f} reaches the floor "
                  f"{config.min_blessing_value:.4f}; no baseline model")
  allowed = baseline[name] - config.max_regression
  if value < allowed:
    return False, (f"{name} {value:.4f} regresses from the baseline's "
                   f"{baseline[name]:.4f} by more than "
                   f"{config.max_regression:.4f}")
  return True, (f"{name} {value:.4f} reaches the floor "
                f"{config.min_blessing_value:.4f} and the baseline's "
                f"{baseline[name]:.4f} less {config.max_regression:.4f}")


def metrics_table(candidate: Mapping[str, float],
                  baseline: Optional[Mapping[str, float]]) -> str:
  """The metrics side by side, one per line, for the log."""
  lines = [f"{'metric':<24}{'candidate':>11}" +
           (f"{'baseline':>11}{'delta':>10}" if baseline else "")]
  for name, value in candidate.items():
    # Query counts are ints and print as such; metrics print as 0.1234.
    number = "d" if isinstance(value, int) else ".4f"
    line = f"{name:<24}{value:>11{number}}"
    if baseline:
      line += (f"{baseline[name]:>11{number}}"
               f"{value - baseline[name]:>+10{number}}")
    lines.append(line)
  return "\n".join(lines)
