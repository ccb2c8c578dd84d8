"""The schemas of the two inputs: the shipped ones, and one inferred from a
user's own files for them to review (`mmse schema`).

A schema file is a TFDV `Schema` text proto, as TFX's ImportSchemaGen reads.
A feature is required when its `presence.min_fraction` is above 0.
TFDV, pandas and Arrow load on first use: the pipeline's configuration
imports this module for its paths.
"""
import os
from typing import Dict, List, Optional, Tuple

from tensorflow_metadata.proto.v0 import schema_pb2

from contracts import features

LOGS = "logs"
CATALOG = "catalog"
INPUTS = (LOGS, CATALOG)
INPUT_LABELS = {LOGS: "search logs", CATALOG: "catalogue"}

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "schemas")


def schema_file(schema_dir: str, name: str) -> str:
  """`<schema_dir>/<name>.pbtxt`: where a schema of one input lives."""
  return os.path.join(schema_dir, f"{name}.pbtxt")


def load(path: str) -> schema_pb2.Schema:
  """A schema text proto; an error names the file when it is not one."""
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
  try:
    return tfdv.load_schema_text(path)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{path}: not a TFDV schema text proto: {e}") from None


def is_required(feature: schema_pb2.Feature) -> bool:
  return (feature.presence.min_fraction > 0 or
          feature.presence.min_count > 0)


_TYPE_WORDS = {
    schema_pb2.INT: "whole numbers",
    schema_pb2.FLOAT: "decimal numbers",
    schema_pb2.BYTES: "text",
}


def type_words(feature_type: int) -> str:
  return _TYPE_WORDS.get(feature_type, schema_pb2.FeatureType.Name(
      feature_type))


def column_statistics(dataset) -> Dict[str, object]:
  """A `DatasetFeatureStatistics`' feature statistics by column name."""
  return {(f.path.step[0] if f.path.step else f.name): f
          for f in dataset.features}


def read_csv_cells(paths: List[str], max_rows: Optional[int] = None):
  """The cells of CSV files (gzip by extension) as text, a pandas DataFrame;
  with `max_rows`, only that many rows."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  frames, rows = [], 0
  for path in paths:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False,
                        encoding="utf-8-sig",
                        nrows=None if max_rows is None else max_rows - rows)
    frames.append(frame)
    rows += len(frame)
    if max_rows is not None and rows >= max_rows:
      break
  return pd.concat(frames, ignore_index=True)


def _column(name: str, cells):
  """CSV cells (a pandas Series of text) as an Arrow list array of ints or
  floats when every filled cell is one, else of bytes; the contract's text
  columns (`features.TEXT_COLUMNS`) always of bytes.

  Empty cells are missing values, as the pipeline's CSV reader takes them.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  filled = (cells != "").to_numpy()
  kinds = ((np.int64, pa.int64()), (np.float64, pa.float64()),
           (None, pa.binary()))
  for kind, arrow_type in (kinds[-1:] if name in features.TEXT_COLUMNS else
                           kinds):
    try:
      values = (cells[filled].str.encode("utf-8") if kind is None else
                cells[filled].astype(kind))
    except (ValueError, OverflowError):
      continue
    rows = iter(values.tolist())
    return pa.array([[next(rows)] if present else None for present in filled],
                    type=pa.list_(arrow_type))
  raise AssertionError("text always converts")


def csv_statistics(paths: List[str], max_rows: int,
                   schema: Optional[schema_pb2.Schema] = None):
  """TFDV statistics of up to `max_rows` rows of CSV files (`frame_statistics`
  of their cells)."""
  return frame_statistics(read_csv_cells(paths, max_rows), schema)


def frame_statistics(cells, schema: Optional[schema_pb2.Schema] = None):
  """TFDV statistics of a pandas DataFrame of CSV cells (text), typed as the
  pipeline's reader types them; with `schema`, as StatisticsGen computes
  them with that schema (categorical ints counted by value)."""
  # pylint: disable=g-import-not-at-top
  import pyarrow as pa
  import tensorflow_data_validation as tfdv
  from tensorflow_data_validation.statistics import stats_impl
  # pylint: enable=g-import-not-at-top
  batch = pa.RecordBatch.from_arrays(
      [_column(name, cells[name]) for name in cells.columns],
      list(cells.columns))
  return stats_impl.generate_statistics_in_memory(
      batch, tfdv.StatsOptions(schema=schema))


def infer(paths: List[str], shipped: schema_pb2.Schema,
          max_rows: int = 200_000) -> Tuple[schema_pb2.Schema, List[str]]:
  """A schema for files like `paths`, and what to review in it.

  The columns the shipped schema requires keep its rules (the pipeline
  needs them as they are); a difference in the files is a warning. Its
  optional columns keep their rules where the files agree on the type;
  every other column gets the type its cells have and is optional.
  """
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
  statistics = csv_statistics(paths, max_rows)
  inferred = tfdv.infer_schema(statistics, infer_feature_shape=False)
  shipped_features = {f.name: f for f in shipped.feature}
  schema = schema_pb2.Schema()
  schema.CopyFrom(shipped)
  del schema.feature[:]
  warnings = []
  for feature in inferred.feature:
    rule = shipped_features.get(feature.name)
    if rule is not None and is_required(rule):
      if feature.type != rule.type:
        warnings.append(
            f"column {feature.name!r} holds {type_words(feature.type)}; the "
            f"pipeline needs {type_words(rule.type)}")
      schema.feature.add().CopyFrom(rule)
      continue
    kept = schema.feature.add()
    if rule is not None and rule.type == feature.type:
      kept.CopyFrom(rule)
      continue
    kept.name, kept.type = feature.name, feature.type
    kept.presence.min_fraction = 0
  present = {f.name for f in inferred.feature}
  for name, rule in shipped_features.items():
    if is_required(rule) and name not in present:
      warnings.append(f"required column {name!r} is missing")
      schema.feature.add().CopyFrom(rule)
  return schema, warnings


def write(schema: schema_pb2.Schema, path: str, header: str = "") -> None:
  """Writes a schema text proto, `header` lines first as comments."""
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  comments = "".join(f"# {line}\n" for line in header.splitlines())
  with open(path, "w", encoding="utf-8") as f:
    f.write(comments + text_format.MessageToString(schema))


def shipped(name: str) -> schema_pb2.Schema:
  return load(schema_file(SHIPPED_DIR, name))


_HEADER = """The {label} schema, inferred by `mmse schema` from {files}.
Review it: a column whose presence.min_fraction is above 0 is required, and a
problem with it (missing, another type, mostly empty) stops `mmse run`."""


def infer_inputs(sources: Dict[str, List[str]], out_dir: str,
                 max_rows: int = 200_000) -> Dict[str, List[str]]:
  """Writes `<out_dir>/{logs,catalog}.pbtxt`; returns warnings by input."""
  warnings = {}
  for name, paths in sources.items():
    schema, warnings[name] = infer(paths, shipped(name), max_rows)
    write(schema, schema_file(out_dir, name), _HEADER.format(
        label=INPUT_LABELS[name], files=", ".join(paths[:3]) +
        (f" and {len(paths) - 3} more" if len(paths) > 3 else "")))
  return warnings
