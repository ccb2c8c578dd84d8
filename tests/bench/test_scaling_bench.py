"""Tests of the scaling and item-cost benchmarks' own logic (no timing)."""
import tensorflow as tf

from bench import beam_record_loss
from bench import item_cost
from bench import scaling
from contracts import features


def _write_examples(path, rows):
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for query, request in rows:
      feature = {features.ITEM_ID: tf.train.Feature(
          int64_list=tf.train.Int64List(value=[7]))}
      for name, value in ((features.QUERY, query),
                          (features.REQUEST_ID, request)):
        if value is not None:
          feature[name] = tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[value]))
      writer.write(tf.train.Example(features=tf.train.Features(
          feature=feature)).SerializeToString())


def _read_examples(path):
  return [tf.train.Example.FromString(r.numpy()) for r in
          tf.data.TFRecordDataset([str(path)], compression_type="GZIP")]


def test_a_copy_renames_queries_and_requests_and_keeps_the_rest(tmp_path):
  _write_examples(tmp_path / "a.gz", [(b"drill", b"r1"), (b"", b"r2"),
                                      (None, b"r3")])
  assert scaling._copy_file(  # pylint: disable=protected-access
      (str(tmp_path / "a.gz"), str(tmp_path / "b.gz"), 3)) == 3
  copied = _read_examples(tmp_path / "b.gz")
  values = [
      {n: list(e.features.feature[n].bytes_list.value)
       for n in (features.QUERY, features.REQUEST_ID)
       if n in e.features.feature} for e in copied]
  # An empty or missing query stays so: mining sets those rows aside.
  assert values == [
      {features.QUERY: [b"drill c3"], features.REQUEST_ID: [b"r1-c3"]},
      {features.QUERY: [b""], features.REQUEST_ID: [b"r2-c3"]},
      {features.REQUEST_ID: [b"r3-c3"]}]
  assert all(e.features.feature[features.ITEM_ID].int64_list.value == [7]
             for e in copied)


def test_scaling_report_gives_the_spread_the_speed_up_and_each_size():
  def run(step, workers, scale, seconds, command="cmd", process_mib=None):
    return scaling.Measured(step, workers, scale, 1_000_000 * scale, seconds,
                            900.0, 800.0, 2_500.0, command, "2026-12-05",
                            process_mib or {})
  text = scaling.report([
      run("LogsExampleGen", "in_memory", 1, 100.0),
      run("LogsExampleGen", "in_memory", 1, 120.0),
      run("LogsExampleGen", "all_cores", 1, 60.0),
      run("LogsExampleGen", "all_cores", 1, 50.0),
      run("MultiStageSamples", "1", 1, 40.0),
      run("MultiStageSamples", "all_cores", 1, 20.0),
      run("MultiStageSamples", "in_memory", 1, 25.0, "cmd2"),
      run("MultiStageSamples", "in_memory", 4, 80.0, "cmd2"),
      run("MultiStageSamples", "flink", 4, 40.0, "cmd3",
          {"Flink TaskManager": 1500.4, "Python SDK worker": 700.0})])
  assert "- `cmd` (2026-12-05)" in text and "- `cmd2` (2026-12-05)" in text
  assert ("| LogsExampleGen | in_memory | 2 | 110.0 (100.0-120.0) | "
          "9,167 (8,333-10,000) |") in text
  assert ("| LogsExampleGen | all_cores: speed-up over in_memory | | 2.00x "
          "| |") in text
  assert ("| MultiStageSamples | all_cores: speed-up over in_memory | | "
          "1.25x | |") in text
  assert ("| MultiStageSamples | 1: speed-up over in_memory | | 0.62x | |"
          in text)
  assert ("| all_cores | 1x | 1,000,000 | 20.0 | 50,000 | 900 | 800 "
          "| 2,500 |") in text
  assert ("| in_memory | 4x | 4,000,000 | 80.0 | 50,000 | 900 | 800 "
          "| 2,500 |") in text
  assert "| flink | 4x | 4,000,000 | 40.0 | 100,000 |" in text
  assert "| step | scale | Flink TaskManager | Python SDK worker |" in text
  assert "| MultiStageSamples | 4x | 1,500 | 700 |" in text


def test_item_cost_is_the_slope_between_sizes():
  results = [{"items": 100_000, "dim": 4, "kind": "faiss",
              "build_seconds": 1.0,
              "disk_bytes": 1_000_000 + 100_000 * 50,
              "memory_bytes": 100_000 * 40, "params": {}},
             {"items": 300_000, "dim": 4, "kind": "faiss",
              "build_seconds": 2.0,
              "disk_bytes": 1_000_000 + 300_000 * 50,
              "memory_bytes": 300_000 * 40, "params": {}}]
  assert item_cost.per_million(results, "disk_bytes") == 50_000_000
  assert "(50 bytes an item)" in item_cost.report(results, "cmd")
  assert "(40 bytes an item)" in item_cost.report(results, "cmd")


def test_record_loss_report_counts_the_short_runs_and_the_worst_share():
  text = beam_record_loss.report(
      1_000, {"in_memory": [1_000, 1_000], "multi_processing:2": [990, 1_000,
                                                                   950]},
      16, "cmd")
  assert "over 16 gzip TFRecord files holding 1,000 records" in text
  assert "| in_memory | 1 | 2 | 0 | 1,000, 1,000 | 1,000, 0.00% |" in text
  assert ("| multi_processing | 2 | 3 | 2 | 990, 1,000, 950 | "
          "950, 5.00% |") in text


def test_record_loss_counts_what_beam_delivers_against_tf_data(tmp_path):
  split = tmp_path / "examples" / "Split-train"
  split.mkdir(parents=True)
  _write_examples(split / "data.gz", [(b"drill", b"r1"), (b"saw", b"r2")])
  results = tmp_path / "loss.md"
  beam_record_loss.main(["--examples", str(tmp_path / "examples"),
                         "--copies", "2", "--modes", "in_memory",
                         "--repeats", "1", "--work-dir", str(tmp_path / "w"),
                         "--results", str(results)])
  assert "| in_memory | 1 | 1 | 0 | 4 | 4, 0.00% |" in results.read_text()
