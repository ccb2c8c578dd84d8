"""Per-query roll-up: strongest stage per item, duplicates, shown items."""
import numpy as np

from contracts import features
from mining import aggregation
from mining import cleaning
from mining import count_keys
from mining import splits
from tests.mining import fixtures

CATALOG = fixtures.catalog()


def _kept(*rows):
  cleaned = cleaning.clean_rows([(r, ()) for r in rows], CATALOG)
  return cleaned.by_query


def test_stage_is_the_strongest_evidence_and_duplicates_are_set_aside():
  first = _kept(
      fixtures.log_row("red drill", 1, 1, clicked=1, carted=1, ordered=1),
      fixtures.log_row("red drill", 2, 2),
      fixtures.log_row("red drill", 3, 3),
      fixtures.log_row("red drill", 9, 1, ordered=1))  # Set aside, shown.
  second = _kept(
      fixtures.log_row("Red Drill", 3, 1, clicked=1, carted=1, request="r2"),
      fixtures.log_row("red drill", 2, 2, request="r2"),
      fixtures.log_row("red drill", 2, 2, request="r2"))  # Exact copy.
  result = aggregation.aggregate(
      "red drill", [first["red drill"], second["red drill"]], fixtures.CONFIG)
  log = result.log
  assert log.query == "red drill"
  assert log.split == splits.split_of("red drill", fixtures.CONFIG)
  np.testing.assert_array_equal(log.item_ids, [1, 2, 3])
  np.testing.assert_array_equal(
      log.stages, [features.Stage.ORDERED, features.Stage.UNCLICKED,
                   features.Stage.CLICKED])
  np.testing.assert_array_equal(log.impressions, [1, 2, 2])
  np.testing.assert_array_equal(log.shown_ids, [1, 2, 3, 9])
  assert log.impressions_by_item() == {1: 1, 2: 2, 3: 2}
  assert [(r["request_id"], r["item_id"], r[cleaning.REASON])
          for r in result.duplicates] == [("r2", 2, cleaning.DUPLICATE)]
  assert result.counts == {
      count_keys.set_aside(cleaning.DUPLICATE): 1,
      count_keys.ROWS_KEPT: 5,
      count_keys.queries(log.split): 1,
      count_keys.query_items("ORDERED"): 1,
      count_keys.query_items("CLICKED"): 1,
      count_keys.query_items("UNCLICKED"): 1}


def test_a_query_with_only_set_aside_rows_gives_no_log():
  result = aggregation.aggregate("glue", [([], [4, 5])], fixtures.CONFIG)
  assert result.log is None and not result.duplicates and not result.counts
