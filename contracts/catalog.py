"""The item catalogue: one reader and one policy for bad and duplicate rows.

Mining (over ExampleGen's rows), the evaluator and IndexBuilder (over the
cleaned catalogue mining writes), `mmse index`, `mmse evaluate` and the
benchmarks (over a CSV) all build a `Catalog` through `CatalogBuilder`, so an
item is kept, defaulted or set aside the same way everywhere:

- an `item_id` is an opaque string, compared byte for byte: `0123`, `123`
  and `123 ` are three items, and no id is ever read as a number;
- a row without an `item_id` is set aside (`missing_item_id`), and so is one
  whose id is longer than `MAX_ITEM_ID_BYTES` in UTF-8 or holds a control
  character (`bad_item_id`);
- a second row for an `item_id` is set aside (`duplicate_item_id`); the
  smallest row wins, so the choice does not depend on read order;
- a missing title becomes "" and an unparsable side feature takes its
  default; both are counted (`missing_title`, `bad_<feature>`).

Set-aside rows are kept, with their reason, in `Catalog.set_aside`.
"""
import collections
import csv
import gzip
import io
import logging
import unicodedata
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from contracts import features

MISSING_ITEM_ID = "missing_item_id"
BAD_ITEM_ID = "bad_item_id"
DUPLICATE_ITEM_ID = "duplicate_item_id"
MISSING_TITLE = "missing_title"
SET_ASIDE_REASONS = (MISSING_ITEM_ID, BAD_ITEM_ID, DUPLICATE_ITEM_ID)
# Longer ids are set aside: SKUs, ASINs and GTINs are far shorter, and a
# longer cell is almost always a shifted column.
MAX_ITEM_ID_BYTES = 256
REASON = "reason"  # The key of a set-aside record that says why.

# A parsed row without its id: sorted (name, value) pairs, so that entries
# compare (the smallest duplicate wins) and travel between Beam workers.
Entry = Tuple[Tuple[str, Any], ...]


def _text(value: Any) -> str:
  return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(
      value)


def _missing(value: Any) -> bool:
  return value is None or (isinstance(value, (str, bytes)) and not value)


def parse_item_id(value: Any) -> Tuple[Optional[str], Optional[str]]:
  """(item id, None) of a usable id cell, else (None, the set-aside reason).

  Text (str, or bytes in UTF-8) is the id as it stands: nothing is stripped
  or normalised. A whole number (a caller's int, never a parsed cell) stands
  for its decimal digits. Anything else is `bad_item_id`.
  """
  if _missing(value):
    return None, MISSING_ITEM_ID
  if isinstance(value, (int, np.integer)) and not isinstance(
      value, (bool, np.bool_)):
    return str(int(value)), None
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError:
      return None, BAD_ITEM_ID
  if not isinstance(value, str):
    return None, BAD_ITEM_ID
  if len(value.encode("utf-8")) > MAX_ITEM_ID_BYTES or any(
      unicodedata.category(c) == "Cc" for c in value):
    return None, BAD_ITEM_ID
  return value, None


def id_array(item_ids: Iterable[str]) -> np.ndarray:
  """Item ids as a NumPy string array (sorts, searches and saves as text)."""
  return np.array(list(item_ids), dtype=str)


def parse_row(row: Mapping[str, Any]
             ) -> Tuple[Optional[str], Entry, List[str]]:
  """(item_id or None, entry, problems) of one raw catalogue row.

  Cells may be str, bytes, numbers or None (missing); columns other than
  `item_id`, `title` and `features.ITEM_SIDE_FEATURES` are ignored. Without
  an item id, the first problem is the reason to set the row aside.
  """
  problems = []
  item_id, id_problem = parse_item_id(row.get(features.ITEM_ID))
  if id_problem:
    problems.append(id_problem)
  title = row.get(features.TITLE)
  if _missing(title):
    problems.append(MISSING_TITLE)
    title = ""
  entry = {features.TITLE: _text(title)}
  for name, (kind, _) in features.ITEM_SIDE_FEATURES.items():
    value = row.get(name)
    if _missing(value):
      continue
    try:
      entry[name] = float(value) if kind is float else _text(value)
    except (TypeError, ValueError):
      problems.append(f"bad_{name}")
  return item_id, tuple(sorted(entry.items())), problems


def _record(row: Mapping[str, Any], reason: str) -> Dict[str, Any]:
  """A set-aside row as the quarantine keeps it: its cells and the reason."""
  record = {name: _text(value) if isinstance(value, bytes) else value
            for name, value in row.items()}
  record[REASON] = reason
  return record


class CatalogBuilder:
  """Collects rows under the catalogue policy; mergeable across workers."""

  def __init__(self):
    self.entries: Dict[str, Entry] = {}
    self.set_aside: List[Dict[str, Any]] = []
    self.counts = collections.Counter()

  def add_row(self, row: Mapping[str, Any]) -> None:
    """Parses and adds one raw row (or sets it aside)."""
    self.counts["rows_read"] += 1
    item_id, entry, problems = parse_row(row)
    self.counts.update(problems)
    if item_id is None:
      self.set_aside.append(_record(row, problems[0]))
      return
    self.add(item_id, entry)

  def add(self, item_id: str, entry: Entry) -> None:
    """Adds a parsed row; of two rows for one id the smaller one stays."""
    kept = self.entries.get(item_id)
    if kept is None:
      self.entries[item_id] = entry
      return
    self.entries[item_id], dropped = min(kept, entry), max(kept, entry)
    self.counts[DUPLICATE_ITEM_ID] += 1
    self.set_aside.append(
        _record({features.ITEM_ID: item_id, **dict(dropped)},
                DUPLICATE_ITEM_ID))

  def merge(self, other: "CatalogBuilder") -> "CatalogBuilder":
    """Folds `other` into this builder; returns this builder."""
    self.set_aside.extend(other.set_aside)
    counts = other.counts.copy()
    counts.pop(DUPLICATE_ITEM_ID, None)  # Recounted by `add` below.
    self.counts.update(counts)
    self.counts[DUPLICATE_ITEM_ID] += other.counts[DUPLICATE_ITEM_ID]
    for item_id, entry in other.entries.items():
      self.add(item_id, entry)
    return self

  def build(self, source: str = "the catalogue") -> "Catalog":
    if not self.entries:
      raise ValueError(f"{source}: no catalogue row has a usable "
                       f"{features.ITEM_ID}")
    return Catalog(self.entries, self.set_aside, self.counts)


class Catalog:
  """Catalogue columns sorted by item_id, and the rows set aside.

  `columns` holds `item_id` and `title` (str) and each side feature any
  row has (float32 or str), aligned with `item_ids`; a row lacking a side
  feature holds its default.
  """

  def __init__(self, entries: Mapping[str, Entry],
               set_aside: Iterable[Dict[str, Any]] = (),
               counts: Optional[Mapping[str, int]] = None):
    self.item_ids = id_array(sorted(entries))
    rows = [dict(entries[i]) for i in self.item_ids.tolist()]
    present = set().union(*rows) if rows else set()
    self.side_features = tuple(
        n for n in features.ITEM_SIDE_FEATURES if n in present)
    self.defaults: Dict[str, Any] = {features.ITEM_ID: "", features.TITLE: ""}
    self.columns: Dict[str, np.ndarray] = {features.ITEM_ID: self.item_ids}
    self.columns[features.TITLE] = np.array(
        [r.get(features.TITLE, "") for r in rows], dtype=object)
    for name in self.side_features:
      kind, default = features.ITEM_SIDE_FEATURES[name]
      self.defaults[name] = default
      self.columns[name] = np.array(
          [r.get(name, default) for r in rows],
          dtype=np.float32 if kind is float else object)
    self.set_aside = list(set_aside)
    self.counts = collections.Counter(counts or {})
    self.counts["items"] = len(self.item_ids)
    self._ids = frozenset(self.item_ids.tolist())

  def __len__(self) -> int:
    return len(self.item_ids)

  def has_item(self, item_id: str) -> bool:
    return item_id in self._ids

  @property
  def titles(self) -> np.ndarray:
    return self.columns[features.TITLE]

  def indexes(self, item_ids: np.ndarray) -> np.ndarray:
    """Positions of catalogue items (every id must be in the catalogue)."""
    return np.searchsorted(self.item_ids, item_ids)

  def slot_values(self, indexes: np.ndarray) -> Dict[str, np.ndarray]:
    """Each column at `indexes`; index -1 gives the defaults."""
    padding = indexes < 0
    safe = np.where(padding, 0, indexes)
    values = {}
    for name, column in self.columns.items():
      taken = column[safe]
      taken[padding] = self.defaults[name]
      values[name] = taken
    return values

  def batches(self, batch_size: int):
    """(start, {column: rows}) in catalogue order, `batch_size` rows each."""
    for start in range(0, len(self), batch_size):
      yield start, {name: column[start:start + batch_size]
                    for name, column in self.columns.items()}


def _open_text(path: str):
  """A text stream of a local path or a URI tf.io.gfile reads (gs://...)."""
  if "://" in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    raw = tf.io.gfile.GFile(path, "rb")
  else:
    raw = open(path, "rb")  # pylint: disable=consider-using-with
  if path.endswith(".gz"):
    raw = gzip.GzipFile(fileobj=raw)
  return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def read_catalog(path: str) -> Catalog:
  """Reads a catalogue CSV (`item_id,title[,side features]`, gzip or not).

  Raises ValueError naming the file when a required column is missing, the
  file is not UTF-8 or no row is usable; rows the policy sets aside are kept
  in `Catalog.set_aside` and logged as a count.
  """
  builder = CatalogBuilder()
  try:
    with _open_text(path) as f:
      reader = csv.DictReader(f)
      missing = set(features.CATALOG_REQUIRED_COLUMNS) - set(
          reader.fieldnames or ())
      if missing:
        raise ValueError(f"{path}: the catalogue lacks the columns "
                         f"{sorted(missing)} (it has "
                         f"{reader.fieldnames or 'no header row'})")
      for row in reader:
        builder.add_row(row)
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 text ({e})") from e
  catalog = builder.build(path)
  set_aside = collections.Counter(r[REASON] for r in catalog.set_aside)
  if set_aside:
    logging.warning("%s: set aside %s catalogue rows (kept %d items)", path,
                    dict(set_aside), len(catalog))
  return catalog


def write_catalog(catalog: Catalog, path: str) -> None:
  """Writes the kept rows as a catalogue CSV that `read_catalog` reads back."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  names = list(catalog.columns)
  with tf.io.gfile.GFile(path, "w") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(names)
    for row in zip(*(catalog.columns[n].tolist() for n in names)):
      writer.writerow(row)
