"""Log-row checks: every row feeds mining or is set aside with its reason.

A row failing several checks counts once, under the first of
`SET_ASIDE_REASONS` (the order the checks run in). Kept rows are grouped by
the query's canonical text (`contracts.text.canonical`), the identity the
model's text rule gives it, so "Drill," and "drill" are one query.
"""
import collections
import functools
from typing import (Any, Dict, Iterable, List, NamedTuple, Optional, Sequence,
                    Tuple)

import numpy as np

from contracts import catalog as catalog_lib
from contracts import features
from contracts import text
from mining import count_keys

# Why a log row is set aside, in the order the checks run.
MALFORMED = "malformed"  # item_id, position or a flag missing; position < 1.
BAD_ITEM_ID = catalog_lib.BAD_ITEM_ID  # Over-long, control characters.
EMPTY_QUERY = "empty_query"  # No word left after normalisation.
UNKNOWN_ITEM = "unknown_item"  # item_id not in the catalogue.
INCONSISTENT_FLAGS = "inconsistent_flags"  # Not 0/1, or cart/order unclicked.
DUPLICATE = "duplicate"  # Exact copy of a row kept before it.
SET_ASIDE_REASONS = (MALFORMED, BAD_ITEM_ID, EMPTY_QUERY, UNKNOWN_ITEM,
                     INCONSISTENT_FLAGS, DUPLICATE)
REASON = "reason"  # The key of a set-aside record that says why.

# A kept row is a plain tuple (hashed to find duplicates, cheap to move
# between Beam workers): the LOG_COLUMNS values, the query as logged, the
# item_id as text (`catalog.parse_item_id`), position and the three flags
# parsed as ints, then a tuple of the
# (name, value) pairs of any further columns the logs carry.
QUERY_INDEX = features.LOG_COLUMNS.index(features.QUERY)
ITEM_INDEX = features.LOG_COLUMNS.index(features.ITEM_ID)
CLICKED_INDEX = features.LOG_COLUMNS.index(features.CLICKED)
CARTED_INDEX = features.LOG_COLUMNS.index(features.ADDED_TO_CART)
ORDERED_INDEX = features.LOG_COLUMNS.index(features.ORDERED)
EXTRAS_INDEX = len(features.LOG_COLUMNS)

Extras = Tuple[Tuple[str, Any], ...]


@functools.lru_cache(maxsize=200_000)
def query_key(raw: Any) -> str:
  """The canonical text of a logged query cell; a missing cell gives ""."""
  if raw is None:
    return ""
  return text.canonical(
      raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))


def parse_int(value: Any) -> Optional[int]:
  """An int cell (position, a flag): an int, an integral float or digits."""
  if type(value) is int:  # pylint: disable=unidiomatic-typecheck
    return value  # ExampleGen's int64 cells: most cells of every row.
  if isinstance(value, (bool, np.bool_)):
    return None
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    return int(value) if float(value).is_integer() else None
  if isinstance(value, (str, bytes)):
    try:
      return int(value)
    except ValueError:
      return None
  return None


# Ids repeat across rows (the catalogue is far smaller than the logs), and
# checking one costs a pass over its characters. `typed`: True and 1 hash
# alike but are a bad id and the id "1".
_parse_item_id = functools.lru_cache(maxsize=200_000, typed=True)(
    catalog_lib.parse_item_id)


def set_aside_reason(query: str, item_id: Optional[str],
                     position: Optional[int], flags: Sequence[Optional[int]],
                     catalog: catalog_lib.Catalog,
                     item_id_problem: Optional[str] = None) -> Optional[str]:
  """The first check a log row fails, or None when it feeds mining.

  `item_id_problem` is why `catalog.parse_item_id` gave no id.
  """
  if ((item_id is None and item_id_problem != BAD_ITEM_ID) or
      position is None or position < 1 or None in flags):
    return MALFORMED
  if item_id is None:
    return BAD_ITEM_ID
  if not query:
    return EMPTY_QUERY
  if not catalog.has_item(item_id):
    return UNKNOWN_ITEM
  clicked, carted, ordered = flags
  if (any(f not in (0, 1) for f in flags) or
      (not clicked and (carted or ordered))):
    return INCONSISTENT_FLAGS
  return None


def _jsonable(value: Any) -> Any:
  return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def set_aside_record(values: Sequence[Any], extras: Extras,
                     reason: str) -> Dict[str, Any]:
  """A set-aside log row as the quarantine keeps it: its cells and reason."""
  record = {n: _jsonable(v) for n, v in zip(features.LOG_COLUMNS, values)}
  record.update((n, _jsonable(v)) for n, v in extras)
  record[REASON] = reason
  return record


class Cleaned(NamedTuple):
  """One batch of log rows after the checks."""
  # Canonical query -> (its kept rows, the catalogue items of its set-aside
  # rows: the query was shown them all the same, so random negatives must
  # avoid them).
  by_query: Dict[str, Tuple[List[tuple], List[str]]]
  set_aside: List[Dict[str, Any]]  # Quarantine records.
  counts: collections.Counter


def clean_rows(rows: Iterable[Tuple[Sequence[Any], Extras]],
               catalog: catalog_lib.Catalog) -> Cleaned:
  """Checks log rows and groups the kept ones by canonical query.

  Args:
    rows: per row, its LOG_COLUMNS values (None where missing) and the
      (name, value) pairs of any further columns.
    catalog: the cleaned catalogue; rows of other items are set aside.

  Returns:
    The kept rows by query, the quarantine records and the counts.
  """
  by_query = collections.defaultdict(lambda: ([], []))
  set_aside = []
  counts = collections.Counter()
  for values, extras in rows:
    counts[count_keys.ROWS_READ] += 1
    query = query_key(values[QUERY_INDEX])
    item_id, id_problem = _parse_item_id(values[ITEM_INDEX])
    position, *flags = map(parse_int, values[ITEM_INDEX + 1:])
    parsed = (item_id, position, *flags)
    reason = set_aside_reason(query, item_id, position, flags, catalog,
                              id_problem)
    if reason is None:
      by_query[query][0].append(tuple(values[:ITEM_INDEX]) + parsed +
                                (tuple(extras),))
      continue
    counts[count_keys.set_aside(reason)] += 1
    set_aside.append(set_aside_record(values, extras, reason))
    if query and item_id is not None and catalog.has_item(item_id):
      by_query[query][1].append(item_id)
  return Cleaned(dict(by_query), set_aside, counts)
