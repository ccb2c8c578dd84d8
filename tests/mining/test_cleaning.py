"""Log-row checks, set-aside reasons and grouping by canonical query."""
import collections

from mining import cleaning
from mining import count_keys
from tests.mining import fixtures

CATALOG = fixtures.catalog()


def test_query_key_is_the_models_canonical_text():
  assert cleaning.query_key(b"  Red\t\tDRILL \n") == "red drill"
  assert cleaning.query_key(b"Drill,") == cleaning.query_key("drill") == (
      "drill")
  assert cleaning.query_key(b"1/2 in. Drill!") == "1/2 in drill"
  assert cleaning.query_key(None) == ""
  assert cleaning.query_key(b" ,;- ") == ""


def test_parse_int_reads_int_cells():
  assert cleaning.parse_int(3) == 3
  assert cleaning.parse_int(b"12") == 12
  assert cleaning.parse_int(2.0) == 2
  for bad in (None, 2.5, b"x", True):
    assert cleaning.parse_int(bad) is None


def test_set_aside_reason_takes_the_first_failing_check():
  def reason(query="drill", item_id="1", position=1, flags=(0, 0, 0),
             item_id_problem=None):
    return cleaning.set_aside_reason(query, item_id, position, flags, CATALOG,
                                     item_id_problem)

  assert reason() is None
  assert reason(flags=(1, 1, 1)) is None
  assert reason(item_id=None) == cleaning.MALFORMED
  assert reason(item_id=None, item_id_problem=cleaning.BAD_ITEM_ID) == (
      cleaning.BAD_ITEM_ID)
  assert reason(item_id=None, item_id_problem=cleaning.BAD_ITEM_ID,
                position=0) == cleaning.MALFORMED
  assert reason(item_id="01") == cleaning.UNKNOWN_ITEM  # "1" is another id.
  assert reason(position=0) == cleaning.MALFORMED
  assert reason(flags=(None, 0, 0)) == cleaning.MALFORMED
  assert reason(query="") == cleaning.EMPTY_QUERY
  assert reason(query="", item_id="999") == cleaning.EMPTY_QUERY
  assert reason(item_id="999") == cleaning.UNKNOWN_ITEM
  assert reason(item_id="999", flags=(2, 0, 0)) == cleaning.UNKNOWN_ITEM
  assert reason(flags=(2, 0, 0)) == cleaning.INCONSISTENT_FLAGS
  assert reason(flags=(0, 1, 0)) == cleaning.INCONSISTENT_FLAGS
  assert reason(flags=(0, 0, 1)) == cleaning.INCONSISTENT_FLAGS


def test_clean_rows_groups_spellings_of_one_query():
  rows = [
      (fixtures.log_row("Drill,", 1, clicked=1), ()),
      (fixtures.log_row("drill", 2), (("session", b"s1"),)),
      (fixtures.log_row("DRILL", 999), ()),  # Unknown item.
      (fixtures.log_row("drill", 3, clicked=0, ordered=1), ()),
      (fixtures.log_row("--", 4), ()),  # No word left.
  ]
  cleaned = cleaning.clean_rows(rows, CATALOG)
  assert list(cleaned.by_query) == ["drill"]
  kept, also_shown = cleaned.by_query["drill"]
  assert [r[cleaning.ITEM_INDEX] for r in kept] == ["1", "2"]
  # The query as logged stays in the row; extras ride at the end.
  assert kept[0][cleaning.QUERY_INDEX] == "Drill,"
  assert kept[1][cleaning.EXTRAS_INDEX] == (("session", b"s1"),)
  # Set-aside rows of catalogue items count as shown; item 999 is unknown.
  assert also_shown == ["3"]
  assert cleaned.counts == collections.Counter({
      count_keys.ROWS_READ: 5,
      count_keys.set_aside(cleaning.UNKNOWN_ITEM): 1,
      count_keys.set_aside(cleaning.INCONSISTENT_FLAGS): 1,
      count_keys.set_aside(cleaning.EMPTY_QUERY): 1})
  reasons = [(r["item_id"], r[cleaning.REASON]) for r in cleaned.set_aside]
  assert reasons == [(999, cleaning.UNKNOWN_ITEM),
                     (3, cleaning.INCONSISTENT_FLAGS),
                     (4, cleaning.EMPTY_QUERY)]


def test_set_aside_record_keeps_every_cell_as_json():
  record = cleaning.set_aside_record(
      fixtures.log_row(b"Drill", None), (("session", b"s1"),),
      cleaning.MALFORMED)
  assert record["query"] == "Drill" and record["item_id"] is None
  assert record["session"] == "s1"
  assert record[cleaning.REASON] == cleaning.MALFORMED
