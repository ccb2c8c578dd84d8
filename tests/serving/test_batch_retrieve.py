"""`mmse retrieve`'s reading and writing: every query answered in order, and
every bad input an error that names the file before anything is written."""
import json

import pytest

from serving import batch_retrieve


def test_plain_text_keeps_every_line_blank_ones_too(tmp_path):
  path = tmp_path / "queries.txt"
  path.write_text("cordless drill\n\nled bulb\r\n")
  assert batch_retrieve.read_queries(str(path)) == [
      "cordless drill", "", "led bulb"]


def test_a_byte_order_mark_is_not_part_of_the_first_query(tmp_path):
  path = tmp_path / "queries.txt"
  path.write_text("\ufeffcordless drill\r\nhose\r\n", encoding="utf-8")
  assert batch_retrieve.read_queries(str(path)) == ["cordless drill", "hose"]


def test_csv_reads_the_query_column(tmp_path):
  path = tmp_path / "queries.csv"
  path.write_text('id,query\n1,"drill, cordless"\n2,hose\n')
  assert batch_retrieve.read_queries(str(path)) == ["drill, cordless", "hose"]


@pytest.mark.parametrize("name,content,message", [
    ("empty.txt", b"", "empty.txt: no queries"),
    ("header_only.csv", b"query\n", "header_only.csv: no queries"),
    ("other.csv", b"text\ndrill\n", "other.csv: CSV without a 'query'"),
    ("latin1.txt", "perceuse sans fil \xe9\n".encode("latin-1"),
     "latin1.txt: not UTF-8 text"),
])
def test_bad_query_files_are_named(tmp_path, name, content, message):
  path = tmp_path / name
  path.write_bytes(content)
  with pytest.raises(ValueError, match=message):
    batch_retrieve.read_queries(str(path))


def test_retrieve_file_answers_each_query_in_order(serving_dir, tmp_path):
  queries = tmp_path / "queries.txt"
  queries.write_text("cordless drill kit\nred claw hammer\n")
  out = tmp_path / "out.jsonl"
  assert batch_retrieve.retrieve_file(serving_dir, str(queries), 2,
                                      str(out)) == 2
  lines = [json.loads(line) for line in out.read_text().splitlines()]
  assert [line["query"] for line in lines] == ["cordless drill kit",
                                               "red claw hammer"]
  assert all(len(line["item_ids"]) == len(line["scores"]) == 2
             for line in lines)


def test_a_bad_query_file_writes_no_output(serving_dir, tmp_path):
  queries = tmp_path / "empty.txt"
  queries.write_text("")
  out = tmp_path / "out.jsonl"
  with pytest.raises(ValueError, match="no queries"):
    batch_retrieve.retrieve_file(serving_dir, str(queries), 2, str(out))
  assert not out.exists()
