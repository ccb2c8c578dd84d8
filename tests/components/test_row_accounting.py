"""Every row accounted for: a runner that loses records fails the run."""
import json

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts

from components import row_accounting
from components.csv_example_gen import executor as example_gen

CSV = "item_id,title\n" + "".join(f"{i},Item {i}\n" for i in range(1, 41))


def test_equal_counts_pass_and_unequal_ones_name_the_stage_and_counts():
  row_accounting.check("Stage", "rows read", 5, "rows written", 5)
  with pytest.raises(row_accounting.RowsLost,
                     match=r"Mining: rows read 1,200 but rows written "
                     r"1,190 \(-10\)"):
    row_accounting.check("Mining", "rows read", 1200, "rows written", 1190)


def test_records_are_counted_on_disk_gzip_or_not(tmp_path):
  for name, options in (("a.gz", "GZIP"), ("b", "")):
    with tf.io.TFRecordWriter(str(tmp_path / name), options) as writer:
      for i in range(7):
        writer.write(b"record %d" % i)
  assert row_accounting.count_records(
      [str(tmp_path / "a.gz"), str(tmp_path / "b")]) == 14


def test_a_rewritten_count_replaces_the_first(tmp_path):
  row_accounting.write_count(str(tmp_path / "counts"), "/in/a.csv", 3)
  row_accounting.write_count(str(tmp_path / "counts"), "/in/a.csv", 4)
  row_accounting.write_count(str(tmp_path / "counts"), "/in/b.csv.gz", 5)
  assert row_accounting.read_counts(str(tmp_path / "counts")) == {
      "/in/a.csv": 4, "/in/b.csv.gz": 5}


def _run_example_gen(tmp_path):
  (tmp_path / "in").mkdir()
  (tmp_path / "in" / "rows.csv").write_text(CSV, encoding="utf-8")
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "out")
  output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(
      splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=3),
              example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)]))
  input_config = example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name="single_split", pattern="*.csv")])
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  example_gen.Executor().Do({}, {"examples": [examples]}, {
      "input_base": str(tmp_path / "in"),
      "input_config": json_format.MessageToJson(input_config),
      "output_config": json_format.MessageToJson(output_config),
      "output_data_format": example_gen_pb2.FORMAT_TF_EXAMPLE,
      "output_file_format": example_gen_pb2.FORMAT_TFRECORDS_GZIP,
  })
  return examples


def test_example_gen_records_the_rows_it_read_and_wrote(tmp_path):
  examples = _run_example_gen(tmp_path)
  assert examples.get_int_custom_property(row_accounting.RECORDS_PROPERTY) == 40
  counts = row_accounting.read_counts(
      str(tmp_path / "out" / example_gen.ROWS_READ_DIR))
  assert counts == {str(tmp_path / "in" / "rows.csv"): 40}
  assert sum(row_accounting.split_records(examples).values()) == 40


class _LoseEveryTenthRow(beam.PTransform):
  """What a lossy runner does: some records never reach the writer."""

  def __init__(self, inner):
    super().__init__()
    self._inner = inner

  def expand(self, pipeline):
    return (pipeline | self._inner
            | beam.Filter(lambda e: int(
                tf.train.Example.FromString(e).features.feature["item_id"]
                .bytes_list.value[0]) % 10 != 0))


def test_example_gen_stops_when_the_runner_loses_rows(tmp_path, monkeypatch):
  original = example_gen.Executor.GetInputSourceToExamplePTransform
  monkeypatch.setattr(
      example_gen.Executor, "GetInputSourceToExamplePTransform",
      lambda self: lambda *a, **k: _LoseEveryTenthRow(original(self)(*a, **k)))
  with pytest.raises(row_accounting.RowsLost,
                     match=r"ExampleGen: rows read 40 but Examples written "
                     r"\(train \d+, eval \d+\) 36 \(-4\)"):
    _run_example_gen(tmp_path)
  assert json.loads(next((tmp_path / "out" / example_gen.ROWS_READ_DIR)
                         .glob("*.json")).read_text())["count"] == 40
