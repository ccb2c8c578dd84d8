"""The data gate's rules on small files: which problems stop a run, how they
read, what drift is measured, and what `mmse schema` infers."""
import pytest
import tensorflow_data_validation as tfdv

from contracts import features
from tests.fixtures import search_logs
from validation import anomalies
from validation import drift
from validation import schemas
from validation.config import ValidationConfig

LOG_HEADER = search_logs.LOG_HEADER


def _csv(tmp_path, rows, header=LOG_HEADER, name="logs.csv"):
  return search_logs.write_csv(tmp_path / name, header, rows)


def _statistics(path, schema):
  return schemas.csv_statistics([path], 10_000, schema)


def _findings(path, name=schemas.LOGS):
  schema = schemas.shipped(name)
  statistics = _statistics(path, schema)
  return anomalies.findings(tfdv.validate_statistics(statistics, schema),
                            schema, statistics.datasets[0])


def _without(header, rows, column):
  index = header.index(column)
  return ([c for c in header if c != column],
          [[v for i, v in enumerate(row) if i != index] for row in rows])


def test_the_shipped_schemas_hold_the_contract_columns():
  logs = schemas.shipped(schemas.LOGS)
  assert {f.name for f in logs.feature} == set(features.LOG_COLUMNS)
  assert {f.name for f in logs.feature if schemas.is_required(f)} == {
      features.QUERY, features.ITEM_ID, features.POSITION, features.CLICKED,
      features.ADDED_TO_CART, features.ORDERED}
  catalog = schemas.shipped(schemas.CATALOG)
  assert {f.name for f in catalog.feature} == {
      *features.CATALOG_REQUIRED_COLUMNS, *features.ITEM_SIDE_FEATURES}
  assert {f.name for f in catalog.feature if schemas.is_required(f)} == set(
      features.CATALOG_REQUIRED_COLUMNS)


def test_clean_logs_pass(tmp_path):
  found = _findings(_csv(tmp_path, search_logs.log_rows()))
  assert found == anomalies.Findings([], [])


def test_a_missing_required_column_blocks_and_says_which(tmp_path):
  header, rows = _without(LOG_HEADER, search_logs.log_rows(), features.POSITION)
  found = _findings(_csv(tmp_path, rows, header))
  assert len(found.blocking) == 1
  assert found.blocking[0].startswith("column 'position' is missing")
  assert "query" in found.blocking[0]  # The columns that are there.


def test_a_missing_optional_column_is_fine(tmp_path):
  header, rows = _without(LOG_HEADER, search_logs.log_rows(), features.USER_ID)
  assert not _findings(_csv(tmp_path, rows, header)).blocking


def test_text_in_a_number_column_blocks(tmp_path):
  rows = search_logs.log_rows()
  rows[3][LOG_HEADER.index(features.POSITION)] = "top"
  found = _findings(_csv(tmp_path, rows))
  assert found.blocking == [
      "column 'position' holds text where the schema expects whole numbers "
      "(a single cell of another kind changes the whole column)"]


def test_item_ids_of_any_shape_pass(tmp_path):
  # SKUs, leading zeros, unicode: item ids are text, never numbers.
  rows = search_logs.log_rows()
  column = LOG_HEADER.index(features.ITEM_ID)
  for row, item_id in zip(rows, ["SKU-17", "0042", "Ü-7", "B00X4WHP5E"]):
    row[column] = item_id
  assert _findings(_csv(tmp_path, rows)) == anomalies.Findings([], [])


def test_a_mostly_empty_required_column_blocks(tmp_path):
  rows = search_logs.log_rows()
  for row in rows[:150]:
    row[LOG_HEADER.index(features.QUERY)] = ""
  found = _findings(_csv(tmp_path, rows))
  assert found.blocking == [
      "column 'query' is filled in 25.0% of the rows; the schema asks for at "
      "least 90%"]


def test_row_level_dirt_and_new_columns_are_only_reported(tmp_path):
  rows = search_logs.log_rows()
  rows[5][LOG_HEADER.index(features.CLICKED)] = "2"
  rows[6][LOG_HEADER.index(features.POSITION)] = "0"
  found = _findings(_csv(tmp_path, [row + ["mobile"] for row in rows],
                              LOG_HEADER + ["device"]))
  assert found.blocking == []
  assert len(found.reported) == 3
  assert any("'clicked'" in s for s in found.reported)
  assert any("'position'" in s for s in found.reported)
  assert any("'device'" in s for s in found.reported)


def test_an_input_without_rows_blocks(tmp_path):
  found = _findings(_csv(tmp_path, [], ["item_id", "title"],
                              "catalog.csv"), schemas.CATALOG)
  assert "it has no rows" in found.blocking


def _drift(tmp_path, current_rows, previous_rows, config=ValidationConfig()):
  schema = schemas.shipped(schemas.LOGS)
  return drift.measure(
      _statistics(_csv(tmp_path, current_rows, name="now.csv"),
                  schema),
      _statistics(_csv(tmp_path, previous_rows, name="before.csv"),
                  schema),
      schema, config)


def _by_column(entries):
  return {(e["column"], e["measure"]): e for e in entries}


def test_the_same_logs_do_not_drift(tmp_path):
  entries = _by_column(_drift(tmp_path, search_logs.log_rows(),
                                 search_logs.log_rows()))
  assert set(entries) == {
      (features.QUERY, drift.L_INFINITY), (features.ITEM_ID, drift.L_INFINITY),
      *((c, drift.RELATIVE_RATE_CHANGE) for c in (features.CLICKED,))}
  assert all(e["value"] == pytest.approx(0.0, abs=1e-9)
             for e in entries.values())
  assert not any(e["exceeded"] for e in entries.values())


def test_other_queries_and_fewer_clicks_drift(tmp_path):
  entries = _by_column(_drift(
      tmp_path, search_logs.log_rows(queries=("drill", "saw", "lamp", "rug"),
                          clicked_every=8), search_logs.log_rows()))
  query = entries[(features.QUERY, drift.L_INFINITY)]
  assert query["value"] == pytest.approx(0.25, abs=1e-6)
  assert query["exceeded"]
  clicks = entries[(features.CLICKED, drift.RELATIVE_RATE_CHANGE)]
  assert clicks["value"] == pytest.approx(0.5, abs=1e-6)
  assert clicks["exceeded"]
  assert not entries[(features.ITEM_ID, drift.L_INFINITY)]["exceeded"]
  report = {"compared_with": 3, "drift": list(entries.values()),
            "drift_accepted": False}
  assert drift.problems(report) == [
      "drift against served version 3: clicked relative rate change 0.5000 "
      "(threshold 0.2500): rate 0.2500 -> 0.1250",
      "drift against served version 3: query L-infinity 0.2500 (threshold "
      "0.0500)"]
  assert drift.problems({**report, "drift_accepted": True}) == []


def test_inferred_schema_keeps_the_pipeline_rules(tmp_path):
  header = LOG_HEADER + ["device"]
  rows = [row + ["mobile"] for row in search_logs.log_rows()]
  rows[0][LOG_HEADER.index(features.ITEM_ID)] = "SKU-17"
  rows[1][LOG_HEADER.index(features.POSITION)] = "top"
  schema, warnings = schemas.infer(
      [_csv(tmp_path, rows, header)],
      schemas.shipped(schemas.LOGS))
  by_name = {f.name: f for f in schema.feature}
  assert set(by_name) == set(header)
  assert by_name["device"].type == schemas.schema_pb2.BYTES
  assert not schemas.is_required(by_name["device"])
  # request_id holds text, user_id too; event_time whole numbers: the
  # shipped optional rules fit and are kept.
  assert by_name[features.EVENT_TIME].type == schemas.schema_pb2.INT
  for name in (features.ITEM_ID, features.POSITION):
    assert by_name[name] == next(
        f for f in schemas.shipped(schemas.LOGS).feature if f.name == name)
  assert warnings == ["column 'position' holds text; the pipeline needs whole "
                      "numbers"]
  path = tmp_path / "out" / "logs.pbtxt"
  schemas.write(schema, str(path), "line one\nline two")
  assert path.read_text().startswith("# line one\n# line two\n")
  assert schemas.load(str(path)) == schema


def test_a_broken_schema_file_is_named(tmp_path):
  path = tmp_path / "logs.pbtxt"
  path.write_text("feature { name: ")
  with pytest.raises(ValueError, match="logs.pbtxt: not a TFDV schema"):
    schemas.load(str(path))
