"""The gzip-aware CSV ExampleGen executor reads .csv.gz like plain CSV."""
import gzip

import apache_beam as beam
from apache_beam.testing import util as beam_util
import pytest

from components.csv_example_gen import executor

CSV = ('item_id,title,price\n'
       '100001,"Cordless Drill, 20V",99.5\n'
       '100002,"Tape\nMeasure",\n')


def _examples(input_base, pattern):
  with beam.Pipeline() as pipeline:
    examples = pipeline | executor._CsvToExample(  # pylint: disable=protected-access
        {"input_base": str(input_base)}, pattern)
    beam_util.assert_that(
        examples | beam.Map(lambda e: e.SerializeToString()),
        lambda got: _check(got))


def _check(serialized):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  rows = sorted((tf.train.Example.FromString(s) for s in serialized),
                key=lambda e: e.features.feature["item_id"].bytes_list.value[0])
  assert len(rows) == 2
  first, second = (r.features.feature for r in rows)
  assert first["title"].bytes_list.value == [b"Cordless Drill, 20V"]
  assert first["price"].float_list.value == [99.5]
  assert second["title"].bytes_list.value == [b"Tape\nMeasure"]
  assert not second["price"].float_list.value  # Empty cell: missing value.


@pytest.mark.parametrize("name, opener", [("rows.csv", open),
                                          ("rows.csv.gz", gzip.open)])
def test_plain_and_gzip_csv_give_the_same_examples(tmp_path, name, opener):
  with opener(tmp_path / name, "wt") as f:
    f.write(CSV)
  _examples(tmp_path, "rows.csv*")


def test_gzip_header_is_read(tmp_path):
  with gzip.open(tmp_path / "a.csv.gz", "wt") as f:
    f.write(CSV)
  assert executor.read_csv_header(str(tmp_path / "a.csv.gz")) == [
      "item_id", "title", "price"]


def test_files_with_different_headers_are_an_error(tmp_path):
  (tmp_path / "a.csv").write_text(CSV)
  (tmp_path / "b.csv").write_text("item_id,name\n1,x\n")
  with pytest.raises(RuntimeError, match="another header"):
    _examples(tmp_path, "*.csv")


_PARSED = []


def _parsed_rows(input_base, pattern, **options):
  """{item_id: {feature: values}} of every example the executor writes."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  del _PARSED[:]

  def collect(serialized):
    _PARSED.extend(serialized)

  with beam.Pipeline() as pipeline:
    examples = pipeline | executor._CsvToExample(  # pylint: disable=protected-access
        {"input_base": str(input_base)}, pattern, **options)
    beam_util.assert_that(
        examples | beam.Map(lambda e: e.SerializeToString()), collect)
  rows = {}
  for serialized in _PARSED:
    feature = tf.train.Example.FromString(serialized).features.feature
    rows[feature["item_id"].bytes_list.value[0]] = {
        name: list(getattr(value, value.WhichOneof("kind")).value)
        for name, value in feature.items()}
  return rows


# How spreadsheet tools, databases and warehouse exports write the same rows.
DIALECTS = {
    "windows_line_ends": CSV.replace("\n", "\r\n").replace(
        "Tape\r\nMeasure", "Tape\nMeasure"),
    "excel_utf8_bom": "\ufeff" + CSV.replace("\n", "\r\n").replace(
        "Tape\r\nMeasure", "Tape\nMeasure"),
    "every_field_quoted": ('"item_id","title","price"\n'
                           '"100001","Cordless Drill, 20V","99.5"\n'
                           '"100002","Tape\nMeasure",""\n'),
    "no_final_line_end": CSV.rstrip("\n"),
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_export_dialects_read_as_the_plain_file(tmp_path, dialect):
  (tmp_path / "plain").mkdir()
  (tmp_path / "plain" / "rows.csv").write_text(CSV)
  (tmp_path / dialect).mkdir()
  with open(tmp_path / dialect / "rows.csv", "w", newline="",
            encoding="utf-8") as f:
    f.write(DIALECTS[dialect])
  assert _parsed_rows(tmp_path / dialect, "rows.csv") == _parsed_rows(
      tmp_path / "plain", "rows.csv")


def test_other_column_order_and_unused_columns_are_ordinary(tmp_path):
  (tmp_path / "plain").mkdir()
  (tmp_path / "plain" / "rows.csv").write_text(CSV)
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "rows.csv").write_text(
      'price,warehouse,title,item_id\n'
      '99.5,east,"Cordless Drill, 20V",100001\n'
      ',west,"Tape\nMeasure",100002\n')
  plain = _parsed_rows(tmp_path / "plain", "rows.csv")
  other = _parsed_rows(tmp_path / "other", "rows.csv")
  assert {item: {n: v for n, v in row.items() if n != "warehouse"}
          for item, row in other.items()} == plain


def test_ids_and_text_columns_stay_text_where_numbers_stay_numbers(tmp_path):
  # Every item_id and query cell is digits, which inference would read as
  # numbers (losing 007's zeros); position and price stay numbers.
  (tmp_path / "rows.csv").write_text(
      "query,item_id,position,price\n"
      "2024,007,1,1.5\n"
      "10,123,2,2\n")
  rows = _parsed_rows(tmp_path, "rows.csv")
  assert rows == {
      b"007": {"query": [b"2024"], "item_id": [b"007"], "position": [1],
               "price": [1.5]},
      b"123": {"query": [b"10"], "item_id": [b"123"], "position": [2],
               "price": [2.0]}}


def test_one_file_is_parsed_in_chunks_with_the_same_rows(tmp_path):
  rows = "".join(f'{100003 + i},"Hinge\nNo. {i}",{i}.5\n' for i in range(5))
  (tmp_path / "rows.csv").write_text(CSV + rows)
  chunks = list(executor._ReadCsvRecords(2).process(  # pylint: disable=protected-access
      str(tmp_path / "rows.csv")))
  assert [len(chunk) for chunk in chunks] == [2, 2, 2, 1]
  assert chunks[0][1] == '100002,"Tape\nMeasure",\n'
  chunked = _parsed_rows(tmp_path, "rows.csv", records_per_chunk=2)
  assert len(chunked) == 7
  assert chunked == _parsed_rows(tmp_path, "rows.csv")


def _truncated_gzip(path):
  data = gzip.compress((CSV * 400).encode())
  path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(CSV.encode() + b"100003,Hammer \xe9 ,1.0\n"),
     r"a.csv: line 5 is not UTF-8 text \(invalid continuation byte"),
    (lambda p: p.write_text(CSV + '100003,"Hammer,1.0\n'),
     "a.csv: a quoted field is not closed before the end of the file"),
])
def test_unreadable_files_are_named(tmp_path, write, message):
  write(tmp_path / "a.csv")
  with pytest.raises(Exception, match=message):
    _examples(tmp_path, "a.csv")


def test_a_truncated_gzip_is_named(tmp_path):
  _truncated_gzip(tmp_path / "a.csv.gz")
  with pytest.raises(Exception, match=r"a.csv.gz: cannot be read \(.*\); a "
                     "truncated or damaged file"):
    _examples(tmp_path, "a.csv.gz")


def test_a_file_that_is_not_gzip_is_named(tmp_path):
  (tmp_path / "a.csv.gz").write_text(CSV)
  with pytest.raises(executor.UnreadableInput, match="a.csv.gz: cannot be "
                     "read"):
    executor.read_csv_header(str(tmp_path / "a.csv.gz"))
