"""The report: nested counts with every expected key, and its headline."""
from mining import cleaning
from mining import count_keys
from mining import report
from tests.mining import fixtures


def test_report_nests_counts_and_fills_every_expected_key():
  got = report.report_from_counts({
      count_keys.ROWS_READ: 10, count_keys.ROWS_KEPT: 7,
      count_keys.set_aside(cleaning.DUPLICATE): 2,
      count_keys.set_aside(cleaning.MALFORMED): 1,
      count_keys.examples("train"): 4,
      count_keys.TITLE_QUERIES_HELD_OUT: 3,
      count_keys.catalog("rows_read"): 31,
      count_keys.catalog("items"): 30,
      count_keys.catalog("bad_price"): 1}, fixtures.CONFIG)
  assert got["set_aside"] == {
      cleaning.MALFORMED: 1, cleaning.BAD_ITEM_ID: 0, cleaning.EMPTY_QUERY: 0,
      cleaning.UNKNOWN_ITEM: 0, cleaning.INCONSISTENT_FLAGS: 0,
      cleaning.DUPLICATE: 2}
  assert got["rows_set_aside"] == 3
  assert got["examples"] == {"train": 4, "eval": 0}
  assert got["queries"] == {"train": 0, "eval": 0}
  assert got["slots"] == {"PADDING": 0, "RANDOM": 0, "UNCLICKED": 0,
                          "CLICKED": 0, "ORDERED": 0}
  assert got["catalog"] == {"rows_read": 31, "items": 30,
                            "missing_item_id": 0, "bad_item_id": 0,
                            "duplicate_item_id": 0,
                            "missing_title": 0, "bad_price": 1}
  assert got["mining_config"]["seed"] == fixtures.CONFIG.seed
  assert got["slate_size"] == 6
  assert report.catalog_problems(got) == {"bad_price": 1}


def test_headline_picks_the_counts_worth_a_glance():
  got = report.report_from_counts({
      count_keys.ROWS_READ: 10, count_keys.ROWS_KEPT: 9,
      count_keys.set_aside(cleaning.DUPLICATE): 1,
      count_keys.queries("train"): 3, count_keys.queries("eval"): 1,
      count_keys.examples("train"): 5, count_keys.examples("eval"): 2,
      count_keys.TITLE_QUERIES: 4, count_keys.TITLE_QUERIES_HELD_OUT: 1,
      count_keys.catalog("items"): 30}, fixtures.CONFIG)
  assert report.headline(got) == {
      "rows_read": 10, "rows_kept": 9, "rows_set_aside": 1,
      "catalog_items": 30, "train_queries": 3, "eval_queries": 1,
      "train_examples": 5, "eval_examples": 2, "title_queries": 4,
      "title_queries_held_out": 1}


def test_rows_read_problem_names_both_counts_and_the_runner():
  got = report.report_from_counts({count_keys.ROWS_READ: 95},
                                  fixtures.CONFIG)
  assert report.rows_read_problem(got, 100) == (
      "mining read 95 log rows but ExampleGen wrote 100: the Beam runner "
      "delivered 5 fewer records than were written (DirectRunner's "
      "multi-processing and multi-threading modes lose records of large "
      "inputs), rerun with --beam local (the default, in one process) or a "
      "real runner (--beam dataflow|flink|spark)")
  assert report.rows_read_problem(got, 90).startswith(
      "mining read 95 log rows but ExampleGen wrote 90: the Beam runner "
      "delivered 5 more records than were written ")
  assert report.rows_read_problem(got, 95) is None
  # A data gate report written before the count: nothing to compare.
  assert report.rows_read_problem(got, None) is None
