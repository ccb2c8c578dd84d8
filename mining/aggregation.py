"""Per-query roll-up of kept log rows: deduplicated impressions, stages.

An item's stage for a query is the strongest evidence over its impressions
(ordered > clicked or carted > shown), so a single order outweighs any
number of skipped impressions.
"""
import collections
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

from contracts import features
from mining import cleaning
from mining import count_keys
from mining import splits
from mining.config import MiningConfig


class QueryLog(NamedTuple):
  """What the logs say about one canonical query, after cleaning."""
  query: str
  split: str
  item_ids: np.ndarray  # Sorted distinct items with a kept impression.
  stages: np.ndarray  # Stage of each item: max over its impressions.
  impressions: np.ndarray  # Kept impressions of each item.
  shown_ids: np.ndarray  # Sorted items the query was shown, set-asides too.

  def impressions_by_item(self) -> Dict[int, int]:
    return dict(zip(self.item_ids.tolist(), self.impressions.tolist()))


def impression_stage(row: Tuple[Any, ...]) -> int:
  """The stage one kept row (see `cleaning`) gives its item."""
  if row[cleaning.ORDERED_INDEX]:
    return features.Stage.ORDERED
  if row[cleaning.CLICKED_INDEX] or row[cleaning.CARTED_INDEX]:
    return features.Stage.CLICKED
  return features.Stage.UNCLICKED


class Aggregated(NamedTuple):
  log: Optional[QueryLog]  # None when every row of the query was set aside.
  duplicates: List[Dict[str, Any]]  # Quarantine records.
  counts: collections.Counter


def aggregate(query: str, blocks: Iterable[Tuple[List[tuple], List[int]]],
              config: MiningConfig) -> Aggregated:
  """Deduplicates one query's rows and rolls them up into a QueryLog.

  Args:
    query: the canonical query.
    blocks: (kept rows, items of set-aside rows) pieces, as `clean_rows`
      groups them per batch.
    config: gives the split's seed and share.
  """
  seen = set()
  item_stats = {}  # item_id -> [impressions, stage]
  also_shown = set()
  duplicates = []
  counts = collections.Counter()
  for rows, shown in blocks:
    also_shown.update(shown)
    for row in rows:
      if row in seen:
        duplicates.append(cleaning.set_aside_record(
            row[:cleaning.EXTRAS_INDEX], row[cleaning.EXTRAS_INDEX],
            cleaning.DUPLICATE))
        counts[count_keys.set_aside(cleaning.DUPLICATE)] += 1
        continue
      seen.add(row)
      stage = impression_stage(row)
      stats = item_stats.get(row[cleaning.ITEM_INDEX])
      if stats is None:
        item_stats[row[cleaning.ITEM_INDEX]] = [1, stage]
      else:
        stats[0] += 1
        stats[1] = max(stats[1], stage)
  if not item_stats:
    return Aggregated(None, duplicates, counts)
  item_ids = np.array(sorted(item_stats), dtype=np.int64)
  impressions = np.array([item_stats[i][0] for i in item_ids.tolist()],
                         dtype=np.int64)
  stages = np.array([item_stats[i][1] for i in item_ids.tolist()],
                    dtype=np.int64)
  split = splits.split_of(query, config)
  counts[count_keys.ROWS_KEPT] += len(seen)
  counts[count_keys.queries(split)] += 1
  for stage in stages.tolist():
    counts[count_keys.query_items(features.Stage(stage).name)] += 1
  shown_ids = np.union1d(item_ids,
                         np.array(sorted(also_shown), dtype=np.int64))
  return Aggregated(
      QueryLog(query, split, item_ids, stages, impressions, shown_ids),
      duplicates, counts)
