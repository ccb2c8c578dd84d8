"""The data gate on real pipeline runs: inputs that fail their schema stop
the run before mining; logs that drifted from the served model's complete
the run without a push, and `--accept-drift` blesses them on purpose.

The drift runs start from a copy of the shared run's metadata and serving
directory, whose pushed statistics they are compared with.
"""
import collections
import csv
import dataclasses
import glob
import gzip
import os
import shutil

import pytest

from contracts import features
from contracts import serving_layout
from tests.fixtures import toy_serving
from tfx_pipeline import cli
from tfx_pipeline import run_report
from tfx_pipeline.runners import local
from validation import schemas

pytestmark = pytest.mark.e2e


def _rewrite_logs(source_pattern, target_dir, rewrite):
  """Copies gzip CSV logs through `rewrite(header, rows) -> (header, rows)`."""
  os.makedirs(target_dir)
  for path in sorted(glob.glob(source_pattern)):
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
      reader = csv.reader(f)
      header, rows = rewrite(next(reader), list(reader))
    with gzip.open(os.path.join(target_dir, os.path.basename(path)), "wt",
                   newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(header)
      writer.writerows(rows)
  return os.path.join(target_dir, "*.csv.gz")


def _without_position(header, rows):
  index = header.index(features.POSITION)
  return ([c for i, c in enumerate(header) if i != index],
          [[v for i, v in enumerate(row) if i != index] for row in rows])


def _head_query_five_times_as_often(header, rows):
  """A search spike: the most searched query's requests come 6 times (new
  request ids, so they are new requests, not duplicate rows)."""
  query, request = header.index(features.QUERY), header.index(
      features.REQUEST_ID)
  counts = collections.Counter(row[query] for row in rows)
  head = max(counts, key=lambda q: (counts[q], q))
  spike = [[*row[:request], f"{row[request]}-{copy}", *row[request + 1:]]
           for copy in range(5) for row in rows if row[query] == head]
  return header, rows + spike


def test_logs_without_a_required_column_stop_before_mining(
    pipeline_run, tmp_path, logging_restored):
  del logging_restored
  config, data_dir = pipeline_run
  logs = _rewrite_logs(config.logs_pattern, str(tmp_path / "logs"),
                       _without_position)
  output = tmp_path / "output"
  with pytest.raises(SystemExit) as stopped:
    cli.main(["run", "--logs", logs, "--catalog",
              os.path.join(data_dir, "catalog.csv"), "--output", str(output)])
  message = str(stopped.value.code)
  assert message.startswith(
      f"mmse run: error: The search logs {logs} (2 files: ")
  assert f"fail the schema {config.schema_file(schemas.LOGS)}:\n" in message
  assert "\n  - column 'position' is missing (columns present: " in message
  assert "Nothing was mined, trained or pushed." in message
  report = run_report.latest_run(str(output / "metadata.sqlite"))
  assert report["components"]["DataGate"]["state"] == "FAILED"
  assert "MultiStageSamples" not in report["components"]
  assert not (output / "serving").exists()


def _beside_the_shared_run(config, tmp_path):
  copy = dataclasses.replace(config, output_dir=str(tmp_path / "output"))
  os.makedirs(copy.output_dir)
  shutil.copy(config.metadata_path, copy.metadata_path)
  shutil.copytree(config.serving_dir, copy.serving_dir)
  return copy


def test_drift_from_the_served_data_is_reported_and_not_pushed_unless_accepted(
    pipeline_run, tmp_path):
  config, _ = pipeline_run
  copy = _beside_the_shared_run(config, tmp_path)
  served = os.path.join(serving_layout.training_statistics_dir(
      serving_layout.latest_release_dirs(copy.serving_dir)[
          serving_layout.QUERY_TOWER], schemas.LOGS), "Split-train",
                        "FeatureStats.pb")
  assert os.path.exists(served)  # The shared run pushed its statistics.
  # Say the served model was trained during a search spike: the same logs
  # are then a drift from what it knows. Nothing but the gate's reference
  # changes, so the run reuses the shared run's mining and training.
  spiked = _rewrite_logs(config.logs_pattern, str(tmp_path / "spike"),
                         _head_query_five_times_as_often)
  with open(served, "wb") as f:
    f.write(schemas.csv_statistics(
        sorted(glob.glob(spiked)), 10**7,
        schemas.shipped(schemas.LOGS)).SerializeToString())

  local.run(copy, enable_cache=True)
  report = run_report.latest_run(copy.metadata_path)
  components = report["components"]
  assert components["DataGate"]["state"] == "COMPLETE"
  assert components["Trainer"]["state"] == "CACHED"
  gate = report["data_gate"]
  assert gate["compared_with"] == 1 and not gate["drift_accepted"]
  query = next(e for e in gate["drift"] if e["column"] == features.QUERY)
  assert query["exceeded"], gate["drift"]
  assert report["blessed"] is False and report["pushed"] is False
  assert report["evaluation"]["reason"].startswith(
      "the data: drift against served version 1: query L-infinity ")
  summary = run_report.format_report(report)
  assert "  drift against served version 1:" in summary
  assert "EXCEEDED" in summary

  accepted = dataclasses.replace(copy, validation=dataclasses.replace(
      copy.validation, accept_drift=True))
  local.run(accepted, enable_cache=True)
  report = run_report.latest_run(copy.metadata_path)
  assert report["components"]["DataGate"]["state"] == "COMPLETE"
  assert report["data_gate"]["drift_accepted"]
  assert report["blessed"] is True, report["evaluation"]["reason"]
  assert report["evaluation"]["reason"].startswith(
      "the data: accepted for this run: drift against served version 1: ")
  # The towers are the served ones: blessed, and not pushed a second time.
  assert toy_serving.served_versions(copy.serving_dir) == {
      name: [1] for name in serving_layout.SERVED_MODELS}
