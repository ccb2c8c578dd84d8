"""DataGate's executor on statistics and anomalies as the stock components
write them: a failing input stops it with one message; otherwise it writes
the drift against the served version's statistics."""
import json
import os

import pytest
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components import artifacts
from components.data_gate import executor
from components.data_gate import spec
from contracts import config_io
from contracts import features
from contracts import serving_layout
from tests.fixtures import search_logs
from validation import schemas
from validation.config import ValidationConfig


def _artifact(cls, uri, splits=None):
  artifact = cls()
  artifact.uri = str(uri)
  if splits:
    artifact.split_names = artifact_utils.encode_split_names(splits)
  return artifact


def _logs(queries=("drill", "saw")):
  return search_logs.log_rows(queries, rows=60)


def _input_artifacts(root, name, header, rows):
  """Statistics, schema and anomalies of one input, split `train` only."""
  schema_file = schemas.schema_file(schemas.SHIPPED_DIR, name)
  schema = schemas.load(schema_file)
  path = search_logs.write_csv(root / f"{name}.csv", header, rows)
  statistics = schemas.csv_statistics([path], 10_000, schema)
  stats_dir = root / f"{name}_statistics" / "Split-train"
  stats_dir.mkdir(parents=True)
  (stats_dir / spec.STATISTICS_FILE).write_bytes(
      statistics.SerializeToString())
  schema_dir = root / f"{name}_schema"
  schema_dir.mkdir()
  schemas.write(schema, str(schema_dir / "schema.pbtxt"))
  anomalies_dir = root / f"{name}_anomalies" / "Split-train"
  anomalies_dir.mkdir(parents=True)
  (anomalies_dir / spec.ANOMALIES_FILE).write_bytes(
      tfdv.validate_statistics(statistics, schema).SerializeToString())
  return {
      spec.key(name, spec.STATISTICS_SUFFIX): [_artifact(
          standard_artifacts.ExampleStatistics, stats_dir.parent, ["train"])],
      spec.key(name, spec.SCHEMA_SUFFIX): [_artifact(
          standard_artifacts.Schema, schema_dir)],
      spec.key(name, spec.ANOMALIES_SUFFIX): [_artifact(
          standard_artifacts.ExampleAnomalies, anomalies_dir.parent,
          ["train"])],
  }, path


def _run(tmp_path, logs_header=features.LOG_COLUMNS, logs=None,
         catalog_header=("item_id", "title"), serving_dir=None, **config):
  tmp_path.mkdir(parents=True, exist_ok=True)
  inputs, logs_path = _input_artifacts(tmp_path, schemas.LOGS,
                                       list(logs_header), logs or _logs())
  catalog_inputs, catalog_path = _input_artifacts(
      tmp_path, schemas.CATALOG, list(catalog_header),
      [[str(100 + i), f"item {i}"][:len(catalog_header)] for i in range(5)])
  inputs.update(catalog_inputs)
  report = _artifact(artifacts.DataGateReport, tmp_path / "report")
  sources = {
      schemas.LOGS: {"files": logs_path, "schema": "logs.pbtxt"},
      schemas.CATALOG: {"files": catalog_path, "schema": "catalog.pbtxt"}}
  executor.Executor().Do(inputs, {spec.REPORT_KEY: [report]}, {
      **config_io.to_parameters(ValidationConfig(**config)),
      spec.SERVING_DIR_KEY: str(serving_dir or tmp_path / "serving"),
      spec.SOURCES_KEY: json.dumps(sources)})
  with open(os.path.join(report.uri, spec.REPORT_FILE)) as f:
    return json.load(f), report, inputs


def test_clean_inputs_pass_with_nothing_to_compare(tmp_path):
  written, report, _ = _run(tmp_path)
  assert written == {"reported": {"logs": [], "catalog": []},
                     "compared_with": None, "drift": [],
                     "drift_accepted": False, "max_set_aside_share": 0.05,
                     spec.LOGS_EXAMPLES: len(_logs())}
  assert report.get_int_custom_property("drifted") == 0


def test_logs_examples_are_summed_over_the_splits(tmp_path):
  _, _, inputs = _run(tmp_path)
  statistics = inputs[spec.key(schemas.LOGS, spec.STATISTICS_SUFFIX)][0]
  eval_dir = tmp_path / "logs_statistics" / "Split-eval"
  eval_dir.mkdir()
  eval_path = search_logs.write_csv(tmp_path / "eval.csv",
                                    list(features.LOG_COLUMNS),
                                    search_logs.log_rows(rows=25))
  (eval_dir / spec.STATISTICS_FILE).write_bytes(schemas.csv_statistics(
      [eval_path], 10_000).SerializeToString())
  statistics.split_names = artifact_utils.encode_split_names(
      ["train", "eval"])
  assert executor.examples_count(statistics) == len(_logs()) + 25


def test_failing_inputs_stop_with_one_message_naming_everything(tmp_path):
  with pytest.raises(executor.InputRejected) as rejected:
    _run(tmp_path, catalog_header=("item_id",))
  message = str(rejected.value)
  assert message.startswith(
      f"The catalogue {tmp_path / 'catalog.csv'} fail the schema "
      "catalog.pbtxt:\n  - column 'title' is missing (columns present: "
      "item_id)\n")
  assert message.endswith("`mmse run --schema DIR` uses it).")
  assert "search logs" not in message


def _serve_statistics(tmp_path, inputs, version=3):
  """A served release whose query tower carries these logs' statistics."""
  serving_dir = tmp_path / "serving"
  for name in serving_layout.SERVED_MODELS:
    version_dir = serving_dir / name / str(version)
    version_dir.mkdir(parents=True)
    (version_dir / serving_layout.SAVED_MODEL_FILE).write_bytes(b"")
  statistics = inputs[spec.key(schemas.LOGS, spec.STATISTICS_SUFFIX)][0]
  target = serving_layout.training_statistics_dir(
      str(serving_dir / serving_layout.QUERY_TOWER / str(version)),
      schemas.LOGS)
  os.makedirs(os.path.join(target, "Split-train"))
  with open(os.path.join(statistics.uri, "Split-train",
                         spec.STATISTICS_FILE), "rb") as f:
    data = f.read()
  with open(os.path.join(target, "Split-train", spec.STATISTICS_FILE),
            "wb") as f:
    f.write(data)
  return serving_dir


def test_drift_is_measured_against_the_served_release(tmp_path):
  _, _, inputs = _run(tmp_path / "before")
  serving_dir = _serve_statistics(tmp_path, inputs)
  written, report, _ = _run(tmp_path / "now", serving_dir=serving_dir,
                            logs=_logs(queries=("drill", "lamp")))
  assert written["compared_with"] == 3
  query = next(e for e in written["drift"] if e["column"] == features.QUERY)
  assert query["value"] == pytest.approx(0.5, abs=1e-6) and query["exceeded"]
  assert report.get_int_custom_property("drifted") == 1
  written, _, _ = _run(tmp_path / "same", serving_dir=serving_dir)
  assert not any(e["exceeded"] for e in written["drift"])
