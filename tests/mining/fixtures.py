"""Small catalogues and configs shared by the mining library tests."""
import collections

from contracts import catalog as catalog_lib
from contracts import features
from mining import aggregation
from mining import cleaning
from mining.config import MiningConfig

# Three context slots and two random negatives: slates of six.
CONFIG = MiningConfig(num_context_items=3, num_random_negatives=2,
                      popularity_exponent=0.5, eval_fraction=0.5,
                      title_query_fraction=0.0, seed=3)
R, U, C, O, P = 0, 1, 2, 3, -1  # Stage values, for short expected slates.


def catalog(size=30, title="item {}"):
  """Items 1..size titled `title`; even items priced, items <= 10 branded."""
  builder = catalog_lib.CatalogBuilder()
  for i in range(1, size + 1):
    row = {features.ITEM_ID: i, features.TITLE: title.format(i)}
    if i <= 10:
      row["brand"] = f"b{i}"
    if i % 2 == 0:
      row["price"] = i * 1.5
    builder.add_row(row)
  return builder.build()


def log_row(query, item, position=1, clicked=0, carted=0, ordered=0,
            request="r1"):
  """LOG_COLUMNS values of one impression."""
  return (request, 1767225600, "u1", query, item, position, clicked, carted,
          ordered)


def query_stats(kept, shown, counts: collections.Counter):
  """One query's cleaned rows rolled up as the Beam graph does, in plain
  Python: each distinct kept row once, its copies set aside (tallied in
  `counts`). Returns the QueryStats and the copies' quarantine records."""
  stats = aggregation.QueryStats()
  quarantine = []
  for row, copies in collections.Counter(kept).items():
    quarantine += aggregation.set_aside_copies(row, copies, counts)
    stats.add_impression(row[cleaning.ITEM_INDEX],
                         aggregation.impression_stage(row))
  for item_id in shown:
    stats.add_shown(item_id)
  return stats, quarantine
