"""Recall@K and NDCG@K while training, over the items of the mined slates.

The Trainer has no catalogue, so this monitor scores the eval split's queries
against every item that appears in a train or eval slate (exact top-k of the
fused score), with judgments from the eval slates' stages: ORDERED grade 3.0,
CLICKED 2.5, the grades `evaluation.blessing` gives them. The conventions are
`evaluation.metrics`' (relevant for recall at grade >= 2.5, NDCG gain grade -
1), which this layer cannot import. These figures are for watching training;
the blessing scores the whole catalogue through the served index, so its
numbers differ (more candidates, lower recall).
"""
import collections
import dataclasses
import math
from typing import Dict, Iterable, List, Mapping, Sequence

import numpy as np
import tensorflow as tf

from contracts import features
from model import preprocessing

CUTOFFS = (10, 100)
STAGE_GRADES = {
    features.Stage.ORDERED: 3.0,
    features.Stage.CLICKED: features.RELEVANT_GRADE,
}
# Transformed slate features that describe the query or the slot, not the item.
_NOT_ITEM_FEATURES = frozenset(
    (preprocessing.QUERY_KEY, preprocessing.STAGE) +
    preprocessing.QUERY_FEATURES)
_EMBED_BATCH = 1024
_SCORE_QUERIES = 256  # Queries scored at once: [256, items] floats.


def recall_and_ndcg(ranked_item_ids: np.ndarray,
                    judgments: Sequence[Mapping[bytes, float]],
                    cutoffs: Iterable[int] = CUTOFFS) -> Dict[str, float]:
  """Mean Recall@K and NDCG@K of ranked item ids, one row per query.

  Args:
    ranked_item_ids: [Q, >= max(cutoffs) where there are enough items], best
      first.
    judgments: per query, {item_id: grade}.
    cutoffs: the K values.

  Returns:
    {"recall@K": ..., "ndcg@K": ...}; recall over the queries with a
    relevant item, NDCG over all.
  """
  recall = collections.defaultdict(list)
  ndcg = collections.defaultdict(list)
  for ranked, grades in zip(ranked_item_ids.tolist(), judgments):
    relevant = {i for i, g in grades.items() if g >= features.RELEVANT_GRADE}
    gains = {i: g - 1.0 for i, g in grades.items() if g > 1.0}
    ideal = sorted(gains.values(), reverse=True)
    for k in cutoffs:
      if relevant:
        recall[k].append(len(relevant.intersection(ranked[:k])) / len(relevant))
      dcg = sum(gains.get(item, 0.0) / math.log2(rank + 2)
                for rank, item in enumerate(ranked[:k]))
      idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal[:k]))
      ndcg[k].append(dcg / idcg if idcg > 0 else 0.0)
  result = {}
  for k in cutoffs:
    result[f"recall@{k}"] = float(np.mean(recall[k])) if recall[k] else 0.0
    result[f"ndcg@{k}"] = float(np.mean(ndcg[k])) if ndcg[k] else 0.0
  return result


@dataclasses.dataclass
class SlateItems:
  """The eval queries and the items of the train and eval slates.

  Attributes:
    query_features: transformed query features of each judged eval query,
      [Q, ...] each.
    judgments: per query, {item_id: grade}.
    item_ids: [N] item ids (UTF-8 bytes, as the slates hold them), eval-slate
      items first, each once.
    item_features: transformed item features, [N, ...] each.
  """
  query_features: Dict[str, np.ndarray]
  judgments: List[Dict[int, float]]
  item_ids: np.ndarray
  item_features: Dict[str, np.ndarray]

  @classmethod
  def collect(cls, eval_slates: tf.data.Dataset,
              train_slates: tf.data.Dataset) -> "SlateItems":
    """Reads both splits once (batches of transformed slates, one epoch)."""
    best_stage = collections.defaultdict(dict)  # query key -> {item: stage}
    query_rows = {}  # query key -> its query features
    items = UniqueItems()
    for batch in eval_slates.as_numpy_iterator():
      keys = batch[preprocessing.QUERY_KEY].reshape(-1)
      for row, key in enumerate(keys.tolist()):
        if key not in query_rows:
          query_rows[key] = {n: batch[n][row]
                             for n in preprocessing.QUERY_FEATURES}
        stages = best_stage[key]
        for item_id, stage in zip(batch[preprocessing.ITEM_ID][row].tolist(),
                                  batch[preprocessing.STAGE][row].tolist()):
          if stage > stages.get(item_id, features.Stage.PADDING):
            stages[item_id] = stage
      items.add(batch)
    for batch in train_slates.as_numpy_iterator():
      items.add(batch)

    judged = []
    for key, stages in best_stage.items():
      grades = {item_id: STAGE_GRADES[stage]
                for item_id, stage in stages.items() if stage in STAGE_GRADES}
      if grades:
        judged.append((key, grades))
    item_ids, item_features = items.arrays()
    return cls(
        query_features={
            n: np.stack([query_rows[key][n] for key, _ in judged])
            for n in preprocessing.QUERY_FEATURES} if judged else {},
        judgments=[grades for _, grades in judged],
        item_ids=item_ids,
        item_features=item_features)

  def item_embeddings(self, model, limit: int = None) -> np.ndarray:
    """[N (or limit), D] fused-space item vectors from `model`'s item tower."""
    count = len(self.item_ids) if limit is None else min(limit,
                                                          len(self.item_ids))
    return embed_items(model, {n: v[:count]
                               for n, v in self.item_features.items()})

  def evaluate(self, model, cutoffs: Iterable[int] = CUTOFFS
              ) -> Dict[str, float]:
    """Recall@K and NDCG@K of `model` over these items (exact top-k)."""
    if not self.judgments or not len(self.item_ids):
      return {}
    cutoffs = sorted(cutoffs)
    items = tf.constant(self.item_embeddings(model))
    k = min(cutoffs[-1], len(self.item_ids))
    ranked = []
    for start in range(0, len(self.judgments), _SCORE_QUERIES):
      queries = model.embed_queries(
          {n: v[start:start + _SCORE_QUERIES]
           for n, v in self.query_features.items()})
      _, columns = tf.math.top_k(
          tf.matmul(queries, items, transpose_b=True), k=k)
      ranked.append(self.item_ids[columns.numpy()])
    return recall_and_ndcg(np.concatenate(ranked), self.judgments, cutoffs)


def embed_items(model, item_features: Mapping[str, np.ndarray]) -> np.ndarray:
  """[N, D] fused-space vectors of items' transformed features, [N, ...]
  each, from `model`'s item tower."""
  count = len(next(iter(item_features.values()))) if item_features else 0
  parts = []
  for start in range(0, count, _EMBED_BATCH):
    parts.append(model.embed_items(
        {n: v[start:start + _EMBED_BATCH]
         for n, v in item_features.items()}).numpy())
  return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class UniqueItems:
  """Each item's transformed features, from the first slot that holds it."""

  def __init__(self):
    self._seen = set()
    self._ids = []
    self._features = collections.defaultdict(list)

  def add(self, batch: Mapping[str, np.ndarray]) -> None:
    stage = batch[preprocessing.STAGE]
    names = [n for n in batch if n not in _NOT_ITEM_FEATURES]
    real = (stage != features.Stage.PADDING).reshape(-1)
    ids = batch[preprocessing.ITEM_ID].reshape(-1)[real]
    flat = {n: batch[n].reshape((-1,) + batch[n].shape[2:])[real]
            for n in names}
    _, first = np.unique(ids, return_index=True)
    new = [i for i in np.sort(first).tolist() if ids[i] not in self._seen]
    if not new:
      return
    self._seen.update(ids[new].tolist())
    self._ids.append(ids[new])
    for n in names:
      self._features[n].append(flat[n][new])

  def arrays(self):
    if not self._ids:
      return np.zeros([0], object), {}
    return (np.concatenate(self._ids),
            {n: np.concatenate(v) for n, v in self._features.items()})
