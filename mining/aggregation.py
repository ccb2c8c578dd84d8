"""Per-query roll-up of kept log rows: deduplicated impressions, stages.

An item's stage for a query is the strongest evidence over its impressions
(ordered > clicked or carted > shown), so a single order outweighs any
number of skipped impressions.

The roll-up streams: exact copies of a row are found by counting each
distinct (query, row) (`set_aside_copies`), and a query's impressions are
summed into a `QueryStats`, which holds one entry per item the query was
shown, however many rows the logs hold for it, and merges with another.
"""
import collections
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from contracts import catalog as catalog_lib
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

  def impressions_by_item(self) -> Dict[str, int]:
    return dict(zip(self.item_ids.tolist(), self.impressions.tolist()))


# Stages as plain ints: an impression travels between Beam workers once per
# kept row, and Beam's fast coder pickles an IntEnum member.
_ORDERED = int(features.Stage.ORDERED)
_CLICKED = int(features.Stage.CLICKED)
_UNCLICKED = int(features.Stage.UNCLICKED)


def impression_stage(row: Tuple[Any, ...]) -> int:
  """The stage one kept row (see `cleaning`) gives its item, as an int."""
  if row[cleaning.ORDERED_INDEX]:
    return _ORDERED
  if row[cleaning.CLICKED_INDEX] or row[cleaning.CARTED_INDEX]:
    return _CLICKED
  return _UNCLICKED


def set_aside_copies(row: Tuple[Any, ...], copies: int,
                     counts: collections.Counter) -> List[Dict[str, Any]]:
  """A kept row logged `copies` times: one is kept, the others are exact
  duplicates. Returns their quarantine records; tallies them in `counts`."""
  counts[count_keys.ROWS_KEPT] += 1
  if copies == 1:  # Nearly every row: no record to build.
    return []
  counts[count_keys.set_aside(cleaning.DUPLICATE)] += copies - 1
  record = cleaning.set_aside_record(row[:cleaning.EXTRAS_INDEX],
                                     row[cleaning.EXTRAS_INDEX],
                                     cleaning.DUPLICATE)
  return [dict(record) for _ in range(copies - 1)]


class QueryStats:
  """One query's impressions so far: item -> [impressions, stage], and the
  items it was shown in rows that were set aside."""

  __slots__ = ("items", "also_shown")

  def __init__(self):
    self.items: Dict[str, List[int]] = {}
    self.also_shown = set()

  def add_impression(self, item_id: str, stage: int) -> None:
    stats = self.items.get(item_id)
    if stats is None:
      self.items[item_id] = [1, stage]
    else:
      stats[0] += 1
      stats[1] = max(stats[1], stage)

  def add_shown(self, item_id: str) -> None:
    self.also_shown.add(item_id)

  def merge(self, other: "QueryStats") -> "QueryStats":
    for item_id, (impressions, stage) in other.items.items():
      stats = self.items.get(item_id)
      if stats is None:
        self.items[item_id] = [impressions, stage]
      else:
        stats[0] += impressions
        stats[1] = max(stats[1], stage)
    self.also_shown |= other.also_shown
    return self


class Aggregated(NamedTuple):
  log: Optional[QueryLog]  # None when every row of the query was set aside.
  counts: collections.Counter


def query_log(query: str, stats: QueryStats,
              config: MiningConfig) -> Aggregated:
  """A query's QueryLog from its stats; `config` gives the split."""
  counts = collections.Counter()
  if not stats.items:
    return Aggregated(None, counts)
  item_ids = catalog_lib.id_array(sorted(stats.items))
  impressions = np.array([stats.items[i][0] for i in item_ids.tolist()],
                         dtype=np.int64)
  stages = np.array([stats.items[i][1] for i in item_ids.tolist()],
                    dtype=np.int64)
  split = splits.split_of(query, config)
  counts[count_keys.queries(split)] += 1
  for stage in stages.tolist():
    counts[count_keys.query_items(features.Stage(stage).name)] += 1
  shown_ids = np.union1d(
      item_ids, catalog_lib.id_array(sorted(stats.also_shown)))
  return Aggregated(
      QueryLog(query, split, item_ids, stages, impressions, shown_ids),
      counts)
