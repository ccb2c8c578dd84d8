"""The gzip-aware CSV ExampleGen executor reads .csv.gz like plain CSV."""
import csv
import gzip

import apache_beam as beam
from apache_beam.testing import util as beam_util
import pytest

from components.csv_example_gen import executor
from contracts import features

CSV = ('item_id,title,price\n'
       '100001,"Cordless Drill, 20V",99.5\n'
       '100002,"Tape\nMeasure",\n')


def _examples(input_base, pattern):
  with beam.Pipeline() as pipeline:
    examples = pipeline | executor._CsvToExample(  # pylint: disable=protected-access
        {"input_base": str(input_base)}, pattern)
    beam_util.assert_that(
        examples,
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
        examples, collect)
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


def test_one_file_is_converted_in_batches_with_the_same_rows(tmp_path):
  rows = "".join(f'{100003 + i},"Hinge\nNo. {i}",{i}.5\n' for i in range(50))
  (tmp_path / "rows.csv").write_text(CSV + rows)
  batches = list(executor._ReadCsvBatches(  # pylint: disable=protected-access
      ["item_id", "title", "price"], block_bytes=256).process(
          str(tmp_path / "rows.csv")))
  assert len(batches) > 1
  assert sum(batch.num_rows for batch in batches) == 52
  assert batches[0].column("title")[1].as_py() == "Tape\nMeasure"
  batched = _parsed_rows(tmp_path, "rows.csv", block_bytes=256)
  assert len(batched) == 52
  assert batched == _parsed_rows(tmp_path, "rows.csv")


def _truncated_gzip(path):
  data = gzip.compress((CSV * 400).encode())
  path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_bytes(CSV.encode() + b"100003,Hammer \xe9 ,1.0\n"),
     r"a.csv: line 5 is not UTF-8 text \(invalid continuation byte"),
    (lambda p: p.write_text(CSV + '100003,"Hammer,1.0\n'),
     "a.csv: a quoted field is not closed before the end of the file"),
    # Arrow reads a stray quote as a character; the rows after it would
    # shift, so the file is refused as before.
    (lambda p: p.write_text(CSV + '100003,Hammer 16" claw,1.0\n'),
     "a.csv: a quoted field is not closed before the end of the file"),
    (lambda p: p.write_text(CSV + "100003,Hammer,1.0,spare\n"),
     "a.csv: line 5 has 4 cells where the header has 3"),
    (lambda p: p.write_text(CSV + "\n100003,Hammer,1.0\n"),
     "a.csv: line 5 has 0 cells where the header has 3"),
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


# Cells whose type and value Python's int() and float() decide, which the
# Arrow path must read as they do; `empty` has no value at all.
ODD_NUMBERS = (
    "item_id,ints,spaced,floats,odd_floats,big,mixed,empty,words\n"
    "1,007,  5,0.1,nan,12345678901234567890,1,,x\n"
    "2,-42, +6 ,1e39,+1.5,3,2.5,,1\n"
    "3,,1_000,-.5e-3, inf ,,-0,,\n"
    "4,9223372036854775807,-0,3.4028235e38,1_0.5,4,1e3,,caf\u00e9\n"
    '5,-9223372036854775808,7,1.,-Infinity,5,-7,,"a,""b"""\n'
    ",,,,,,,,\n")


def _stock_examples(path):
  """The tf.Examples the stock row-by-row conversion writes for a CSV file:
  csv_decoder's parsing and inference, the contract's text columns as text,
  CsvExampleGen's conversion, serialized as ExampleGen hashes them."""
  from tfx.components.example_gen.csv_example_gen import executor as stock  # pylint: disable=g-import-not-at-top
  from tfx_bsl.coders import csv_decoder  # pylint: disable=g-import-not-at-top
  with open(path, newline="", encoding="utf-8-sig") as f:
    header, *rows = list(csv.reader(f))
  rows = [[cell.encode() for cell in row] for row in rows]
  inferrer = csv_decoder.ColumnTypeInferrer(header, skip_blank_lines=True)
  infos = inferrer.extract_output(
      inferrer.add_inputs(inferrer.create_accumulator(), rows))
  infos = [csv_decoder.ColumnInfo(info.name, csv_decoder.ColumnType.STRING)
           if info.name in features.TEXT_COLUMNS else info
           for info in infos]
  convert = stock._ParsedCsvToTfExample()  # pylint: disable=protected-access
  return sorted(example.SerializeToString(deterministic=True)
                for row in rows for example in convert.process(row, infos))


def _arrow_examples(input_base, pattern):
  del _PARSED[:]
  with beam.Pipeline() as pipeline:
    examples = pipeline | executor._CsvToExample(  # pylint: disable=protected-access
        {"input_base": str(input_base)}, pattern)
    beam_util.assert_that(examples, _collect)
  return sorted(_PARSED)


def _collect(serialized):
  _PARSED.extend(serialized)


@pytest.mark.parametrize("name", sorted(DIALECTS) + ["plain", "odd_numbers"])
def test_examples_are_byte_for_byte_the_stock_conversion(tmp_path, name):
  text = {"plain": CSV, "odd_numbers": ODD_NUMBERS, **DIALECTS}[name]
  with open(tmp_path / "rows.csv", "w", newline="", encoding="utf-8") as f:
    f.write(text)
  stock = _stock_examples(tmp_path / "rows.csv")
  assert len(stock) == {"odd_numbers": 6}.get(name, 2)
  assert _arrow_examples(tmp_path, "rows.csv") == stock
