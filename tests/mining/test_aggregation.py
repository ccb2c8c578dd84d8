"""Per-query roll-up: strongest stage per item, duplicates, shown items."""
import collections

import numpy as np

from contracts import features
from mining import aggregation
from mining import cleaning
from mining import count_keys
from mining import splits
from tests.mining import fixtures

CATALOG = fixtures.catalog()


def _stats(*pieces):
  """The QueryStats of rows and shown items per piece, merged as Beam
  merges the accumulators of its bundles; the counts of setting copies
  aside."""
  merged = aggregation.QueryStats()
  counts = collections.Counter()
  duplicates = []
  for rows in pieces:
    cleaned = cleaning.clean_rows([(r, ()) for r in rows], CATALOG)
    for kept, shown in cleaned.by_query.values():
      stats, set_aside = fixtures.query_stats(kept, shown, counts)
      duplicates += set_aside
      merged.merge(stats)
  return merged, counts, duplicates


def test_stage_is_the_strongest_evidence_and_duplicates_are_set_aside():
  stats, counts, duplicates = _stats(
      [fixtures.log_row("red drill", 1, 1, clicked=1, carted=1, ordered=1),
       fixtures.log_row("red drill", 2, 2),
       fixtures.log_row("red drill", 3, 3),
       fixtures.log_row("red drill", 9, 1, ordered=1)],  # Set aside, shown.
      [fixtures.log_row("Red Drill", 3, 1, clicked=1, carted=1, request="r2"),
       fixtures.log_row("red drill", 2, 2, request="r2"),
       fixtures.log_row("red drill", 2, 2, request="r2")])  # Exact copy.
  result = aggregation.query_log("red drill", stats, fixtures.CONFIG)
  log = result.log
  assert log.query == "red drill"
  assert log.split == splits.split_of("red drill", fixtures.CONFIG)
  assert log.item_ids.tolist() == ["1", "2", "3"]
  np.testing.assert_array_equal(
      log.stages, [features.Stage.ORDERED, features.Stage.UNCLICKED,
                   features.Stage.CLICKED])
  np.testing.assert_array_equal(log.impressions, [1, 2, 2])
  assert log.shown_ids.tolist() == ["1", "2", "3", "9"]
  assert log.impressions_by_item() == {"1": 1, "2": 2, "3": 2}
  assert [(r["request_id"], r["item_id"], r[cleaning.REASON])
          for r in duplicates] == [("r2", "2", cleaning.DUPLICATE)]
  assert counts == {count_keys.set_aside(cleaning.DUPLICATE): 1,
                    count_keys.ROWS_KEPT: 5}
  assert result.counts == {
      count_keys.queries(log.split): 1,
      count_keys.query_items("ORDERED"): 1,
      count_keys.query_items("CLICKED"): 1,
      count_keys.query_items("UNCLICKED"): 1}


def test_stats_hold_one_entry_per_item_however_many_rows():
  rows = [fixtures.log_row("drill", 1 + n % 3, 1, request=f"r{n}")
          for n in range(300)]
  stats, counts, _ = _stats(rows[:100], rows[100:])
  assert len(stats.items) == 3
  assert sum(n for n, _ in stats.items.values()) == 300
  assert counts[count_keys.ROWS_KEPT] == 300


def test_a_query_with_only_set_aside_rows_gives_no_log():
  stats = aggregation.QueryStats()
  for item_id in (4, 5):
    stats.add_shown(item_id)
  result = aggregation.query_log("glue", stats, fixtures.CONFIG)
  assert result.log is None and not result.counts
