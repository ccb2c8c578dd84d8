"""The item catalogue as column arrays, read from CSV or from ExampleGen output.

Towers take raw item features as batched columns (`item_id`, `title` and the
side features the model was trained with), so everything that embeds the
catalogue - the evaluator, the index builder, `mmse evaluate`, `mmse index` -
reads it through here into the same shape.
"""
import csv
import glob
import logging
import os
from typing import Dict, Iterable, Optional

import numpy as np

from model import features

Catalog = Dict[str, np.ndarray]


def _column(name, values):
  kind, _ = features.ITEM_SIDE_FEATURES.get(name, (str, ""))
  if name == features.ITEM_ID:
    return np.asarray(values, dtype=np.int64)
  if kind is float:
    return np.asarray(values, dtype=np.float32)
  return np.asarray(values, dtype=object)


def _value(name, raw):
  """Parses one raw cell; empty side features take their default."""
  if name == features.ITEM_ID:
    return int(raw)
  if name == features.TITLE:
    return raw or ""
  kind, default = features.ITEM_SIDE_FEATURES[name]
  if raw in (None, ""):
    return default
  return kind(raw)


def read_catalog_csv(path: str) -> Catalog:
  """Reads `item_id,title[,side features]`; bad rows raise with their line."""
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    missing = set(features.CATALOG_REQUIRED_COLUMNS) - set(header)
    if missing:
      raise ValueError(f"{path}: catalogue lacks columns {sorted(missing)}")
    names = list(features.CATALOG_REQUIRED_COLUMNS) + [
        c for c in header if c in features.ITEM_SIDE_FEATURES]
    columns = {n: [] for n in names}
    seen = set()
    for line, row in enumerate(reader, start=2):
      try:
        parsed = {n: _value(n, row[n]) for n in names}
      except (TypeError, ValueError) as e:
        raise ValueError(f"{path}:{line}: bad catalogue row {row}") from e
      if parsed[features.ITEM_ID] in seen:
        raise ValueError(
            f"{path}:{line}: duplicate item_id {parsed[features.ITEM_ID]}")
      seen.add(parsed[features.ITEM_ID])
      for n in names:
        columns[n].append(parsed[n])
  if not seen:
    raise ValueError(f"{path}: the catalogue is empty")
  return {n: _column(n, v) for n, v in columns.items()}


def read_catalog_examples(examples_uri: str,
                          splits: Optional[Iterable[str]] = None) -> Catalog:
  """Reads an Examples artifact of catalogue rows (every split by default)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  pattern = [os.path.join(examples_uri, f"Split-{s}", "*") for s in splits
            ] if splits else [os.path.join(examples_uri, "Split-*", "*")]
  files = sorted(f for p in pattern for f in glob.glob(p))
  if not files:
    raise FileNotFoundError(f"No catalogue examples under {examples_uri}")
  rows = []
  names = set()
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    example = tf.train.Example.FromString(record.numpy())
    row = {}
    for name, feature in example.features.feature.items():
      kind = feature.WhichOneof("kind")
      values = getattr(feature, kind).value if kind else []
      if values:
        value = values[0]
        row[name] = value.decode("utf-8") if isinstance(value, bytes) else value
    rows.append(row)
    names.update(row)
  if not rows:
    raise ValueError(f"{examples_uri}: the catalogue is empty")
  present = list(features.CATALOG_REQUIRED_COLUMNS) + sorted(
      n for n in names if n in features.ITEM_SIDE_FEATURES)
  columns = {n: [] for n in present}
  without_id = 0
  for row in rows:
    if features.ITEM_ID not in row:
      without_id += 1  # Cannot be retrieved; ExampleValidator flags it too.
      continue
    for n in present:
      columns[n].append(_value(n, row.get(n)) if n != features.ITEM_ID
                        else int(row[n]))
  if without_id:
    logging.warning("%s: %d catalogue rows have no item_id and are skipped",
                    examples_uri, without_id)
  return {n: _column(n, v) for n, v in columns.items()}
