"""Beam work of MultiStageSamples: search-log impressions to training slates.

One pipeline does what the project's mining contract fixes:

1. Clean. Every log row either feeds mining or goes to the quarantine with
   the reason it was set aside; a row failing several checks counts once,
   under the first of `SET_ASIDE_REASONS` (the order the checks run in).
2. Group impressions by normalised query. An item's stage for a query is the
   strongest evidence over its impressions (ordered > clicked or carted >
   shown), so a single order outweighs any number of skipped impressions.
3. Split queries into train and eval by a stable hash, so no query and none
   of its items' labels leak from one split into the other.
4. Emit one fixed-length slate per (query, positive item): the anchor, items
   of the same query with a lower stage, random catalogue items the query was
   never shown (drawn by popularity), then padding.
5. Join catalogue features into every slot.

Rows travel as Arrow record batches until they are grouped, so the per-row
Python work is a tuple and a few comparisons; everything after the grouping
is per query. The catalogue (tens of thousands of items) is a side input.
"""
import collections
import dataclasses
import functools
import hashlib
import itertools
import json
import logging
import os
from typing import (Any, Dict, Iterator, List, NamedTuple, Optional, Sequence,
                    Tuple)

import apache_beam as beam
import numpy as np
import pyarrow as pa
from pyarrow import compute as pc
import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import io_utils

from model import features
from model import preprocessing
from tfx_pipeline import configs

# Keys of the component's inputs and outputs.
LOGS_KEY = "logs"
CATALOG_KEY = "catalog"
EXAMPLES_KEY = "examples"
REPORT_KEY = "report"

TRAIN = "train"
EVAL = "eval"
SPLITS = (TRAIN, EVAL)

# Layout of the MiningReport artifact.
COUNTS_FILE = "counts.json"
QUARANTINE_DIR = "quarantine"

# Why a log row is set aside, in the order the checks run.
MALFORMED = "malformed"  # item_id, position or a flag missing; position < 1.
EMPTY_QUERY = "empty_query"  # Nothing left after normalisation.
UNKNOWN_ITEM = "unknown_item"  # item_id not in the catalogue.
INCONSISTENT_FLAGS = "inconsistent_flags"  # Not 0/1, or cart/order unclicked.
DUPLICATE = "duplicate"  # Exact copy of a row kept before it.
SET_ASIDE_REASONS = (MALFORMED, EMPTY_QUERY, UNKNOWN_ITEM, INCONSISTENT_FLAGS,
                     DUPLICATE)

# Catalogue rows: one without an item_id cannot be used (set aside); a second
# row for an item_id is set aside (the smallest row wins, so the choice does
# not depend on read order); a missing title or an unparsable side feature
# takes the feature's default.
CATALOG_MISSING_ITEM_ID = "missing_item_id"
CATALOG_DUPLICATE_ITEM_ID = "duplicate_item_id"
CATALOG_MISSING_TITLE = "missing_title"
CATALOG_SET_ASIDE_REASONS = (CATALOG_MISSING_ITEM_ID, CATALOG_DUPLICATE_ITEM_ID)

_TELEMETRY = ["MultiStageSamples"]
_BATCH_SIZE = 2048  # Log rows per Arrow record batch.
_LOG_EVERY_ROWS = 250_000
_LOG_EVERY_QUERIES = 2_000
_QUARANTINE = "quarantine"
_COUNTS = "counts"

# Positions in a kept log row: the LOG_COLUMNS values, then a tuple of the
# (name, value) pairs of any further columns the logs carry. The columns from
# item_id on (item_id, position and the three flags) are parsed as ints.
_QUERY = features.LOG_COLUMNS.index(features.QUERY)
_ITEM = features.LOG_COLUMNS.index(features.ITEM_ID)
_CLICKED = features.LOG_COLUMNS.index(features.CLICKED)
_CARTED = features.LOG_COLUMNS.index(features.ADDED_TO_CART)
_ORDERED = features.LOG_COLUMNS.index(features.ORDERED)
_EXTRAS = len(features.LOG_COLUMNS)


@functools.lru_cache(maxsize=200_000)
def normalize_query(raw: Optional[bytes]) -> str:
  """Lower-cases, collapses whitespace and strips; missing becomes ""."""
  if raw is None:
    return ""
  text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
  return " ".join(text.lower().split())


def stable_hash(*parts: Any) -> int:
  """64-bit hash of `parts` that is the same in every process and run."""
  text = "\x1f".join(str(p) for p in parts).encode("utf-8")
  return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def split_of(query: str, config: configs.MiningConfig) -> str:
  """Train or eval, by a stable hash of the normalised query and the seed."""
  fraction = stable_hash(config.seed, "split", query) / 2.0**64
  return EVAL if fraction < config.eval_fraction else TRAIN


def _as_int(value: Any) -> Optional[int]:
  """An int from an int, integral float or digit string cell; else None."""
  if type(value) is int:  # pylint: disable=unidiomatic-typecheck
    return value
  if isinstance(value, float):
    return int(value) if value.is_integer() else None
  if isinstance(value, bytes):
    try:
      return int(value)
    except ValueError:
      return None
  return None


def _as_bytes(value: Any) -> bytes:
  return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _jsonable(value: Any) -> Any:
  return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _first_values(batch: pa.RecordBatch, name: str) -> List[Any]:
  """Each row's (first) value of feature `name`; None where it is missing."""
  rows = batch.num_rows
  index = batch.schema.get_field_index(name)
  if index < 0:
    return [None] * rows
  column = batch.column(index)
  if pa.types.is_null(column.type):
    return [None] * rows
  lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy()
  present = np.flatnonzero(lengths > 0)
  starts = column.offsets.to_numpy()[present]
  values = column.values.take(pa.array(starts)).to_numpy(
      zero_copy_only=False).tolist()
  if len(present) == rows:
    return values
  result = [None] * rows
  for row, value in zip(present.tolist(), values):
    result[row] = value
  return result


def _record(names: Sequence[str], values: Sequence[Any],
            extras: Sequence[Tuple[str, Any]], reason: str) -> Dict[str, Any]:
  """A set-aside row as written to the quarantine: its columns and reason."""
  record = {n: _jsonable(v) for n, v in zip(names, values)}
  record.update((n, _jsonable(v)) for n, v in extras)
  record["reason"] = reason
  return record


# --- Catalogue. -------------------------------------------------------------


class Catalog:
  """Catalogue columns sorted by item_id: membership, lookups and slot values.

  `columns` holds `item_id`, `title` and each side feature that any catalogue
  row has, as arrays aligned with `item_ids`; cells a row lacks hold the
  feature's default.
  """

  def __init__(self, entries: Dict[int, Tuple[Tuple[str, Any], ...]]):
    if not entries:
      raise ValueError("The catalogue has no row with an item_id.")
    self.item_ids = np.array(sorted(entries), dtype=np.int64)
    rows = [dict(entries[i]) for i in self.item_ids.tolist()]
    present = set().union(*rows)
    self.side_features = tuple(
        n for n in features.ITEM_SIDE_FEATURES if n in present)
    self.defaults = {features.ITEM_ID: 0, features.TITLE: b""}
    self.columns = {features.ITEM_ID: self.item_ids}
    self.columns[features.TITLE] = np.array(
        [r.get(features.TITLE, b"") for r in rows], dtype=object)
    for name in self.side_features:
      kind, default = features.ITEM_SIDE_FEATURES[name]
      if kind is float:
        self.defaults[name] = float(default)
        self.columns[name] = np.array([r.get(name, default) for r in rows],
                                      dtype=np.float32)
      else:
        self.defaults[name] = _as_bytes(default)
        self.columns[name] = np.array(
            [r.get(name, self.defaults[name]) for r in rows], dtype=object)
    self._ids = frozenset(self.item_ids.tolist())

  def __len__(self) -> int:
    return len(self.item_ids)

  def __contains__(self, item_id: int) -> bool:
    return item_id in self._ids

  def indexes(self, item_ids: np.ndarray) -> np.ndarray:
    """Positions of catalogue items (every id must be in the catalogue)."""
    return np.searchsorted(self.item_ids, item_ids)

  def slot_values(self, indexes: np.ndarray) -> Dict[str, np.ndarray]:
    """Each catalogue column at `indexes`; index -1 gives the defaults."""
    padding = indexes < 0
    safe = np.where(padding, 0, indexes)
    values = {}
    for name, column in self.columns.items():
      taken = column[safe]
      taken[padding] = self.defaults[name]
      values[name] = taken
    return values


def _side_value(name: str, value: Any) -> Any:
  """A side-feature cell in its declared type; None when it does not parse."""
  kind, _ = features.ITEM_SIDE_FEATURES[name]
  if kind is float:
    try:
      return float(value)
    except (TypeError, ValueError):
      return None
  return _as_bytes(value)


class _ParseCatalog(beam.DoFn):
  """Catalogue batches to (item_id, entry); rows without an id set aside."""

  def process(self, batch: pa.RecordBatch) -> Iterator[Any]:
    names = batch.schema.names
    columns = [_first_values(batch, n) for n in names]
    counts = collections.Counter(rows_read=batch.num_rows)
    for values in zip(*columns):
      row = dict(zip(names, values))
      item_id = _as_int(row.get(features.ITEM_ID))
      if item_id is None:
        counts[CATALOG_MISSING_ITEM_ID] += 1
        yield beam.pvalue.TaggedOutput(
            _QUARANTINE, _record(names, values, (), CATALOG_MISSING_ITEM_ID))
        continue
      title = row.get(features.TITLE)
      if title is None:
        counts[CATALOG_MISSING_TITLE] += 1
      entry = {features.TITLE: _as_bytes(title or b"")}
      for name in features.ITEM_SIDE_FEATURES:
        if row.get(name) is not None:
          value = _side_value(name, row[name])
          if value is None:
            counts[f"bad_{name}"] += 1
          else:
            entry[name] = value
      yield item_id, tuple(sorted(entry.items()))
    for key, count in counts.items():
      yield beam.pvalue.TaggedOutput(_COUNTS, (f"catalog/{key}", count))


class _CollectCatalog(beam.CombineFn):
  """Gathers catalogue entries by item_id and sets duplicates apart."""

  def create_accumulator(self):
    return {}, []

  def _put(self, accumulator, item_id, entry):
    entries, duplicates = accumulator
    kept = entries.get(item_id)
    if kept is None:
      entries[item_id] = entry
    else:
      entries[item_id], other = min(kept, entry), max(kept, entry)
      duplicates.append((item_id, other))
    return accumulator

  def add_input(self, accumulator, element):
    return self._put(accumulator, *element)

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    merged = next(accumulators)
    for entries, duplicates in accumulators:
      for item_id, entry in entries.items():
        self._put(merged, item_id, entry)
      merged[1].extend(duplicates)
    return merged

  def extract_output(self, accumulator):
    return accumulator


def _catalog_set_asides(collected) -> Iterator[Any]:
  """Quarantine records and counts for the catalogue's duplicate rows."""
  entries, duplicates = collected
  yield beam.pvalue.TaggedOutput(_COUNTS, ("catalog/items", len(entries)))
  yield beam.pvalue.TaggedOutput(
      _COUNTS, (f"catalog/{CATALOG_DUPLICATE_ITEM_ID}", len(duplicates)))
  for item_id, entry in duplicates:
    names = [features.ITEM_ID] + [n for n, _ in entry]
    values = [item_id] + [v for _, v in entry]
    yield _record(names, values, (), CATALOG_DUPLICATE_ITEM_ID)


# --- Cleaning and per-query aggregation. -------------------------------------


def set_aside_reason(query: str, item_id: Optional[int],
                     position: Optional[int], flags: Sequence[Optional[int]],
                     catalog: Catalog) -> Optional[str]:
  """The first check a log row fails, or None when it feeds mining."""
  if item_id is None or position is None or position < 1 or None in flags:
    return MALFORMED
  if not query:
    return EMPTY_QUERY
  if item_id not in catalog:
    return UNKNOWN_ITEM
  clicked, carted, ordered = flags
  if (any(f not in (0, 1) for f in flags) or
      (not clicked and (carted or ordered))):
    return INCONSISTENT_FLAGS
  return None


class _CleanLogs(beam.DoFn):
  """Sets bad log rows aside and groups a batch's other rows by query.

  Emits (query, (rows, also_shown)): the kept rows of the batch for the query,
  and the catalogue items of its set-aside rows, which the query was shown
  all the same and which random negatives must therefore avoid.
  """

  def __init__(self):
    self._rows = 0

  def process(self, batch: pa.RecordBatch, catalog: Catalog) -> Iterator[Any]:
    names = batch.schema.names
    extra_names = sorted(set(names) - set(features.LOG_COLUMNS))
    columns = [_first_values(batch, n) for n in features.LOG_COLUMNS]
    extra_columns = [_first_values(batch, n) for n in extra_names]
    extras = ([tuple(zip(extra_names, v)) for v in zip(*extra_columns)]
              if extra_names else itertools.repeat(()))
    by_query = collections.defaultdict(lambda: ([], []))
    counts = collections.Counter(rows_read=batch.num_rows)
    for values, extra in zip(zip(*columns), extras):
      query = normalize_query(values[_QUERY])
      parsed = tuple(map(_as_int, values[_ITEM:]))
      item_id, position, clicked, carted, ordered = parsed
      reason = set_aside_reason(query, item_id, position,
                                (clicked, carted, ordered), catalog)
      if reason is None:
        by_query[query][0].append(values[:_ITEM] + parsed + (extra,))
        continue
      counts[f"set_aside/{reason}"] += 1
      yield beam.pvalue.TaggedOutput(
          _QUARANTINE,
          _record(features.LOG_COLUMNS, values, extra, reason))
      if query and item_id in catalog:
        by_query[query][1].append(item_id)
    yield from by_query.items()
    for key, count in counts.items():
      yield beam.pvalue.TaggedOutput(_COUNTS, (key, count))
    before, self._rows = self._rows, self._rows + batch.num_rows
    if before // _LOG_EVERY_ROWS != self._rows // _LOG_EVERY_ROWS:
      logging.info("MultiStageSamples: cleaned %d log rows", self._rows)


class QueryLog(NamedTuple):
  """What the logs say about one normalised query, after cleaning."""
  query: str
  split: str
  item_ids: np.ndarray  # Sorted distinct items with a kept impression.
  stages: np.ndarray  # Stage of each item: max over its impressions.
  impressions: np.ndarray  # Kept impressions of each item.
  shown_ids: np.ndarray  # Sorted items the query was shown, set-asides too.


def _impression_stage(row: Tuple[Any, ...]) -> int:
  if row[_ORDERED]:
    return features.Stage.ORDERED
  if row[_CLICKED] or row[_CARTED]:
    return features.Stage.CLICKED
  return features.Stage.UNCLICKED


class _AggregateQuery(beam.DoFn):
  """Deduplicates one query's rows and rolls them up into a QueryLog."""

  def __init__(self, config: configs.MiningConfig):
    self._config = config
    self._queries = 0

  def process(self, element) -> Iterator[Any]:
    query, blocks = element
    seen = set()
    item_stats = {}  # item_id -> [impressions, stage]
    also_shown = set()
    for rows, shown in blocks:
      also_shown.update(shown)
      for row in rows:
        if row in seen:
          yield beam.pvalue.TaggedOutput(
              _QUARANTINE,
              _record(features.LOG_COLUMNS, row[:_EXTRAS], row[_EXTRAS],
                      DUPLICATE))
          yield beam.pvalue.TaggedOutput(_COUNTS,
                                         (f"set_aside/{DUPLICATE}", 1))
          continue
        seen.add(row)
        stage = _impression_stage(row)
        stats = item_stats.get(row[_ITEM])
        if stats is None:
          item_stats[row[_ITEM]] = [1, stage]
        else:
          stats[0] += 1
          stats[1] = max(stats[1], stage)
    if item_stats:  # Else every row of the query was set aside.
      yield from self._query_log(query, item_stats, also_shown, len(seen))

  def _query_log(self, query, item_stats, also_shown, rows_kept):
    item_ids = np.array(sorted(item_stats), dtype=np.int64)
    impressions = np.array([item_stats[i][0] for i in item_ids.tolist()],
                           dtype=np.int64)
    stages = np.array([item_stats[i][1] for i in item_ids.tolist()],
                      dtype=np.int64)
    split = split_of(query, self._config)
    counts = collections.Counter({"rows_kept": rows_kept,
                                  f"queries/{split}": 1})
    for stage in stages.tolist():
      counts[f"query_items/{features.Stage(stage).name}"] += 1
    for key, count in counts.items():
      yield beam.pvalue.TaggedOutput(_COUNTS, (key, count))
    yield QueryLog(query, split, item_ids, stages, impressions,
                   np.union1d(item_ids, np.array(sorted(also_shown),
                                                 dtype=np.int64)))
    self._queries += 1
    if self._queries % _LOG_EVERY_QUERIES == 0:
      logging.info("MultiStageSamples: aggregated %d queries", self._queries)


class _SumImpressions(beam.CombineFn):
  """Impressions per item over every query (exposure, for negatives)."""

  def create_accumulator(self):
    return collections.Counter()

  def add_input(self, accumulator, log: QueryLog):
    accumulator.update(dict(zip(log.item_ids.tolist(),
                                log.impressions.tolist())))
    return accumulator

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    merged = next(accumulators)
    for accumulator in accumulators:
      merged.update(accumulator)
    return merged

  def extract_output(self, accumulator):
    return accumulator


# --- Slates. ----------------------------------------------------------------


class NegativeSampler:
  """Draws distinct catalogue items with P(item) ~ (impressions + 1) ** a.

  A query is shown a sliver of the catalogue, so drawing from the whole
  catalogue and rejecting what it was shown costs a few draws; a query shown
  much of it (by count or by probability mass) gets an exact draw over the
  items left instead.
  """

  _REJECTION_ROUNDS = 8

  def __init__(self, impressions: np.ndarray, exponent: float):
    weights = (impressions.astype(np.float64) + 1.0)**exponent
    self.probabilities = weights / weights.sum()
    self._cdf = np.cumsum(self.probabilities)

  @classmethod
  def for_catalog(cls, impressions: Dict[int, int], catalog: Catalog,
                  exponent: float) -> "NegativeSampler":
    counts = np.zeros(len(catalog), dtype=np.int64)
    if impressions:
      ids = np.array(list(impressions), dtype=np.int64)
      counts[catalog.indexes(ids)] = list(impressions.values())
    return cls(counts, exponent)

  def sample(self, rng: np.random.Generator, excluded: np.ndarray,
             count: int) -> np.ndarray:
    """Up to `count` distinct catalogue indexes, none of them in `excluded`.

    Args:
      rng: the slate's generator.
      excluded: sorted distinct catalogue indexes never to return.
      count: how many to draw; fewer come back only when fewer are left.

    Returns:
      int64 catalogue indexes in draw order.
    """
    available = len(self.probabilities) - len(excluded)
    count = min(count, available)
    if count <= 0:
      return np.zeros(0, dtype=np.int64)
    if (available >= 4 * count and
        self.probabilities[excluded].sum() <= 0.5):
      chosen = self._by_rejection(rng, excluded, count)
      if chosen is not None:
        return chosen
    allowed = np.ones(len(self.probabilities), dtype=bool)
    allowed[excluded] = False
    candidates = np.flatnonzero(allowed)
    p = self.probabilities[candidates]
    return rng.choice(candidates, size=count, replace=False, p=p / p.sum())

  def _by_rejection(self, rng, excluded, count) -> Optional[np.ndarray]:
    chosen = []
    for _ in range(self._REJECTION_ROUNDS):
      draws = np.searchsorted(self._cdf, rng.random(2 * count) * self._cdf[-1],
                              side="right")
      draws = np.minimum(draws, len(self._cdf) - 1)
      for index in draws[~np.isin(draws, excluded)].tolist():
        if index not in chosen:
          chosen.append(index)
          if len(chosen) == count:
            return np.array(chosen, dtype=np.int64)
    return None


def slates(log: QueryLog, catalog: Catalog, sampler: NegativeSampler,
           config: configs.MiningConfig
          ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
  """(catalogue indexes, stages) of each slate of a query; -1 is padding.

  One slate per positive item, strongest first. Deterministic: each slate
  draws from a generator seeded by (seed, query, anchor item_id).
  """
  indexes = catalog.indexes(log.item_ids)
  excluded = catalog.indexes(log.shown_ids)
  by_stage = {s: indexes[log.stages == s] for s in features.Stage}
  order = np.lexsort((log.item_ids, -log.stages))
  for position in order.tolist():
    anchor_stage = int(log.stages[position])
    if anchor_stage not in features.POSITIVE_STAGES:
      continue
    rng = np.random.default_rng(
        stable_hash(config.seed, log.query, int(log.item_ids[position])))
    slots = [indexes[position]]
    lower = [s for s in (features.Stage.CLICKED, features.Stage.UNCLICKED)
             if s < anchor_stage]
    slot_stages = [anchor_stage]
    for stage in lower:
      room = config.num_context_items - (len(slots) - 1)
      pool = by_stage[stage]
      if len(pool) > room:
        pool = rng.choice(pool, size=room, replace=False)
      slots.extend(pool.tolist())
      slot_stages.extend([stage] * len(pool))
    negatives = sampler.sample(rng, excluded, config.num_random_negatives)
    slots.extend(negatives.tolist())
    slot_stages.extend([features.Stage.RANDOM] * len(negatives))
    padding = config.slate_size - len(slots)
    slots.extend([-1] * padding)
    slot_stages.extend([features.Stage.PADDING] * padding)
    yield (np.array(slots, dtype=np.int64),
           np.array(slot_stages, dtype=np.int64))


def title_query(words: Sequence[str], rng: np.random.Generator,
                config: configs.MiningConfig) -> Optional[str]:
  """A few distinct `words` (of a title) in random order; None if too few."""
  words = list(dict.fromkeys(words))
  if len(words) < config.title_query_min_words:
    return None
  count = min(len(words), int(rng.integers(config.title_query_min_words,
                                           config.title_query_max_words + 1)))
  return " ".join(rng.choice(words, size=count, replace=False).tolist())


def title_query_slates(catalog: Catalog, sampler: NegativeSampler,
                       config: configs.MiningConfig
                      ) -> Iterator[Tuple[str, np.ndarray, np.ndarray]]:
  """(pseudo-query, catalogue indexes, stages) for a share of the catalogue.

  The item is the clicked anchor, followed by random negatives. Whether an
  item gets one, and its words, are seeded by (seed, item_id): the same
  catalogue always gives the same slates.
  """
  if config.title_query_fraction <= 0:
    return
  # Split as the Transform splits text, in one batch for the catalogue.
  titles = preprocessing.words(
      tf.constant(catalog.columns[features.TITLE].tolist())).to_list()
  for index, item_id in enumerate(catalog.item_ids.tolist()):
    rng = np.random.default_rng(stable_hash(config.seed, "title", item_id))
    if rng.random() >= config.title_query_fraction:
      continue
    query = title_query([w.decode("utf-8") for w in titles[index]], rng,
                        config)
    if query is None:
      continue
    negatives = sampler.sample(rng, np.array([index]),
                               config.num_random_negatives)
    padding = config.slate_size - 1 - len(negatives)
    yield (query,
           np.concatenate([[index], negatives, [-1] * padding]).astype(np.int64),
           np.array([features.Stage.CLICKED] +
                    [features.Stage.RANDOM] * len(negatives) +
                    [features.Stage.PADDING] * padding, dtype=np.int64))


def _title_query_examples(catalog: Catalog, sampler: NegativeSampler,
                          config: configs.MiningConfig) -> Iterator[Any]:
  """Title pseudo-query slates as train examples, with their count."""
  count = 0
  for query, indexes, stages in title_query_slates(catalog, sampler, config):
    yield TRAIN, _example(query, catalog.slot_values(indexes),
                          stages).SerializeToString()
    count += 1
  logging.info("MultiStageSamples: built %d title pseudo-query slates", count)
  yield beam.pvalue.TaggedOutput(_COUNTS, ("title_queries", count))
  yield beam.pvalue.TaggedOutput(_COUNTS, (f"examples/{TRAIN}", count))


def _example(query: str, values: Dict[str, np.ndarray],
             stages: np.ndarray) -> tf.train.Example:
  feature = {
      features.QUERY: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[query.encode("utf-8")])),
      features.STAGE: tf.train.Feature(
          int64_list=tf.train.Int64List(value=stages.tolist())),
  }
  for name, column in values.items():
    if column.dtype == np.int64:
      feature[name] = tf.train.Feature(
          int64_list=tf.train.Int64List(value=column.tolist()))
    elif column.dtype == np.float32:
      feature[name] = tf.train.Feature(
          float_list=tf.train.FloatList(value=column.tolist()))
    else:
      feature[name] = tf.train.Feature(
          bytes_list=tf.train.BytesList(value=column.tolist()))
  return tf.train.Example(features=tf.train.Features(feature=feature))


class _BuildSlates(beam.DoFn):
  """A query's slates as serialized tf.Examples, keyed by split."""

  def __init__(self, config: configs.MiningConfig):
    self._config = config
    self._examples = 0

  def process(self, log: QueryLog, catalog: Catalog,
              sampler: NegativeSampler) -> Iterator[Any]:
    counts = collections.Counter()
    for indexes, stages in slates(log, catalog, sampler, self._config):
      example = _example(log.query, catalog.slot_values(indexes), stages)
      yield log.split, example.SerializeToString()
      counts[f"examples/{log.split}"] += 1
      counts[f"positives/{features.Stage(int(stages[0])).name}"] += 1
      for stage, count in zip(*np.unique(stages, return_counts=True)):
        counts[f"slots/{features.Stage(int(stage)).name}"] += int(count)
    if counts:
      counts[f"queries_with_examples/{log.split}"] += 1
    for key, count in counts.items():
      yield beam.pvalue.TaggedOutput(_COUNTS, (key, count))
    before = self._examples
    self._examples += counts[f"examples/{log.split}"]
    if before // 20_000 != self._examples // 20_000:
      logging.info("MultiStageSamples: built %d slates", self._examples)


# --- Report. ----------------------------------------------------------------


def report_from_counts(counts: Dict[str, int],
                       config: configs.MiningConfig) -> Dict[str, Any]:
  """Nests "a/b" count keys and fills every expected key (zero if unseen)."""
  report = {
      "rows_read": 0,
      "rows_kept": 0,
      "set_aside": {r: 0 for r in SET_ASIDE_REASONS},
      "queries": {s: 0 for s in SPLITS},
      "queries_with_examples": {s: 0 for s in SPLITS},
      "examples": {s: 0 for s in SPLITS},
      "title_queries": 0,
      "positives": {s.name: 0 for s in features.POSITIVE_STAGES},
      "query_items": {s.name: 0 for s in (features.Stage.ORDERED,
                                          features.Stage.CLICKED,
                                          features.Stage.UNCLICKED)},
      "slots": {s.name: 0 for s in features.Stage},
      "catalog": {
          "rows_read": 0, "items": 0, CATALOG_MISSING_ITEM_ID: 0,
          CATALOG_DUPLICATE_ITEM_ID: 0, CATALOG_MISSING_TITLE: 0},
  }
  for key, count in sorted(counts.items()):
    *path, name = key.split("/")
    node = report
    for part in path:
      node = node.setdefault(part, {})
    node[name] = count
  report["rows_set_aside"] = sum(report["set_aside"].values())
  report["mining_config"] = dataclasses.asdict(config)
  report["slate_size"] = config.slate_size
  return report


def _write_json(value: Any, path: str) -> None:
  with fileio.open(path, "w") as f:
    f.write(json.dumps(value, indent=2, sort_keys=True))


def _headline(report: Dict[str, Any]) -> Dict[str, int]:
  """The counts worth a glance in the pipeline UI and the run log."""
  return {
      "rows_read": report["rows_read"],
      "rows_kept": report["rows_kept"],
      "rows_set_aside": report["rows_set_aside"],
      "catalog_items": report["catalog"]["items"],
      **{f"{s}_queries": report["queries"][s] for s in SPLITS},
      **{f"{s}_examples": report["examples"][s] for s in SPLITS},
      "title_queries": report["title_queries"],
  }


# --- Executor. --------------------------------------------------------------


def _split_patterns(examples: types.Artifact) -> List[str]:
  """File patterns of every split of an Examples artifact."""
  splits = artifact_utils.decode_split_names(examples.split_names)
  if not splits:
    raise ValueError(f"Examples artifact {examples.uri} has no split_names.")
  return [io_utils.all_files_pattern(
      artifact_utils.get_split_uri([examples], s)) for s in splits]


def _record_batches(pipeline, examples: types.Artifact, label: str):
  tfxio = tfxio_utils.get_tfxio_factory_from_artifact(
      [examples], _TELEMETRY)(_split_patterns(examples))
  return pipeline | label >> tfxio.BeamSource(batch_size=_BATCH_SIZE)


def mining_config_from(exec_properties: Dict[str, Any]) -> configs.MiningConfig:
  """The MiningConfig the component's execution parameters spell out."""
  names = [f.name for f in dataclasses.fields(configs.MiningConfig)]
  return configs.mining_config({
      n: exec_properties[n] for n in names
      if exec_properties.get(n) is not None})


class Executor(base_beam_executor.BaseBeamExecutor):
  """Mines multi-stage slates from search logs; see the module docstring."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Runs the mining pipeline.

    Args:
      input_dict: `logs` and `catalog`, one Examples artifact each (every
        split is read).
      output_dict: `examples` (Examples, splits train and eval) and `report`
        (MiningReport: counts.json and the quarantine).
      exec_properties: the MiningConfig fields.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    config = mining_config_from(exec_properties)
    logs = artifact_utils.get_single_instance(input_dict[LOGS_KEY])
    catalog_examples = artifact_utils.get_single_instance(
        input_dict[CATALOG_KEY])
    examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
    report = artifact_utils.get_single_instance(output_dict[REPORT_KEY])
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples_utils.set_payload_format(
        examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    counts_path = os.path.join(report.uri, COUNTS_FILE)
    quarantine = os.path.join(report.uri, QUARANTINE_DIR)

    with self._make_beam_pipeline() as pipeline:
      parsed_catalog = (
          _record_batches(pipeline, catalog_examples, "ReadCatalog")
          | "ParseCatalog" >> beam.ParDo(_ParseCatalog()).with_outputs(
              _QUARANTINE, _COUNTS, main="entries"))
      collected = (parsed_catalog.entries
                   | "CollectCatalog" >> beam.CombineGlobally(
                       _CollectCatalog()))
      catalog = collected | "IndexCatalog" >> beam.Map(
          lambda entries_and_duplicates: Catalog(entries_and_duplicates[0]))
      catalog_duplicates = (
          collected | "CatalogDuplicates" >> beam.FlatMap(
              _catalog_set_asides).with_outputs(_COUNTS, main="records"))
      catalog_side = beam.pvalue.AsSingleton(catalog)

      cleaned = (
          _record_batches(pipeline, logs, "ReadLogs")
          | "Clean" >> beam.ParDo(_CleanLogs(), catalog_side).with_outputs(
              _QUARANTINE, _COUNTS, main="blocks"))
      aggregated = (
          cleaned.blocks
          | "GroupByQuery" >> beam.GroupByKey()
          | "Aggregate" >> beam.ParDo(_AggregateQuery(config)).with_outputs(
              _QUARANTINE, _COUNTS, main="logs"))
      sampler = (
          aggregated.logs
          | "SumImpressions" >> beam.CombineGlobally(_SumImpressions())
          | "Sampler" >> beam.Map(NegativeSampler.for_catalog, catalog_side,
                                  config.popularity_exponent))
      built = (
          aggregated.logs
          | "BuildSlates" >> beam.ParDo(
              _BuildSlates(config), catalog_side,
              beam.pvalue.AsSingleton(sampler)).with_outputs(
                  _COUNTS, main="examples"))
      title_queries = (
          catalog
          | "TitleQueries" >> beam.FlatMap(
              _title_query_examples, beam.pvalue.AsSingleton(sampler),
              config).with_outputs(_COUNTS, main="examples"))
      by_split = ((built.examples, title_queries.examples)
                  | "FlattenExamples" >> beam.Flatten()
                  | "BySplit" >> beam.Partition(
                      lambda kv, _: SPLITS.index(kv[0]), len(SPLITS)))
      for split, split_examples in zip(SPLITS, by_split):
        _ = (split_examples
             | f"Values[{split}]" >> beam.Values()
             # Slates of one query come out together; spread them out.
             | f"Shuffle[{split}]" >> beam.Reshuffle()
             | f"Write[{split}]" >> beam.io.WriteToTFRecord(
                 os.path.join(artifact_utils.get_split_uri([examples], split),
                              "data_tfrecord"),
                 file_name_suffix=".gz"))

      _ = ((cleaned[_QUARANTINE], aggregated[_QUARANTINE])
           | "FlattenLogQuarantine" >> beam.Flatten()
           | "LogRecordsToJson" >> beam.Map(json.dumps)
           | "WriteLogQuarantine" >> beam.io.WriteToText(
               os.path.join(quarantine, "logs"), file_name_suffix=".jsonl.gz"))
      _ = ((parsed_catalog[_QUARANTINE], catalog_duplicates.records)
           | "FlattenCatalogQuarantine" >> beam.Flatten()
           | "CatalogRecordsToJson" >> beam.Map(json.dumps)
           | "WriteCatalogQuarantine" >> beam.io.WriteToText(
               os.path.join(quarantine, "catalog"),
               file_name_suffix=".jsonl.gz"))
      _ = ((parsed_catalog[_COUNTS], catalog_duplicates[_COUNTS],
            cleaned[_COUNTS], aggregated[_COUNTS], built[_COUNTS],
            title_queries[_COUNTS])
           | "FlattenCounts" >> beam.Flatten()
           | "SumCounts" >> beam.CombinePerKey(sum)
           | "CountsToDict" >> beam.combiners.ToDict()
           | "Report" >> beam.Map(report_from_counts, config)
           | "WriteReport" >> beam.Map(_write_json, counts_path))

    with fileio.open(counts_path) as f:
      counts = json.load(f)
    for name, value in _headline(counts).items():
      report.set_int_custom_property(name, value)
    logging.info("MultiStageSamples: %s; set aside %s; catalogue %s",
                 _headline(counts), counts["set_aside"], counts["catalog"])
    catalog_errors = {k: v for k, v in counts["catalog"].items()
                      if k not in ("rows_read", "items") and v}
    if catalog_errors:
      logging.warning("MultiStageSamples: catalogue errors %s (rows set aside "
                      "are in %s)", catalog_errors, quarantine)
    if not counts["examples"][TRAIN]:
      logging.warning("MultiStageSamples: no training slate was mined (no "
                      "clicked or ordered impression in the train split).")
