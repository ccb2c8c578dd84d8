"""Writes the simulated world in the benchmark's file formats.

Plain or gzip CSV, written atomically and byte-identical for a seed.
"""
import csv
import gzip
import io
import logging
import os
import re
from typing import List, Sequence

import numpy as np

from contracts import features
from sample_data.world import Catalog
from sample_data.world import Impressions
from sample_data.world import Query
from sample_data.world import World
from sample_data.world import judgment_pool


def _write_atomically(path: str, rows: Sequence[Sequence], compress: bool):
  """Writes CSV rows to `path` through a temporary file and a rename.

  A reader never sees half a file; gzip with mtime 0 and no file name keeps
  reruns byte-identical wherever they write.
  """
  tmp = path + ".tmp"
  with open(tmp, "wb") as raw:
    binary = gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                           mtime=0) if compress else raw
    with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
      csv.writer(text, lineterminator="\n").writerows(rows)
    if compress:
      binary.close()
  os.replace(tmp, path)


def write_catalog(path: str, catalog: Catalog):
  """`item_id,title,brand,category,price`; no brand is an empty cell."""
  brands = [b[0] for b in catalog.brands] + [""]  # Index -1: no brand.
  rows = [(features.ITEM_ID, features.TITLE, *features.ITEM_SIDE_FEATURES)]
  for i, title in enumerate(catalog.titles):
    rows.append((int(catalog.item_ids[i]), title,
                 brands[catalog.brand_index[i]], catalog.categories[i],
                 f"{catalog.prices[i]:.2f}"))
  _write_atomically(path, rows, compress=False)


def log_shard_name(shard: int, num_shards: int) -> str:
  return f"search_logs-{shard:05d}-of-{num_shards:05d}.csv.gz"


def write_logs(logs_dir: str, impressions: Impressions,
               queries: Sequence[Query], num_shards: int) -> List[str]:
  """Time-ordered rows cut into `num_shards` files at request boundaries."""
  os.makedirs(logs_dir, exist_ok=True)
  stale = [
      f for f in os.listdir(logs_dir)
      if re.fullmatch(r"search_logs-\d{5}-of-\d{5}\.csv\.gz", f) and
      not f.endswith(f"-of-{num_shards:05d}.csv.gz")
  ]
  for name in sorted(stale):
    # An earlier run with another shard count; its files would join the glob.
    logging.warning("Removing stale log shard %s", name)
    os.remove(os.path.join(logs_dir, name))
  texts = [q.text for q in queries] + [""]  # Index -1 is the empty query.
  starts = np.flatnonzero(np.r_[True, np.diff(impressions.request) != 0])
  bounds = [chunk[0] for chunk in np.array_split(starts, num_shards)]
  bounds.append(len(impressions.request))
  paths = []
  for shard in range(num_shards):
    part = impressions.take(np.arange(bounds[shard], bounds[shard + 1]))
    rows = [features.LOG_COLUMNS]
    for r, t, u, q, i, p, c, a, o in zip(
        part.request.tolist(), part.event_time.tolist(), part.user.tolist(),
        part.query.tolist(), part.item_id.tolist(), part.position.tolist(),
        part.clicked.tolist(), part.added_to_cart.tolist(),
        part.ordered.tolist()):
      rows.append((f"r{r:07d}", t, f"u{u:05d}", texts[q], i, p, c, a, o))
    path = os.path.join(logs_dir, log_shard_name(shard, num_shards))
    _write_atomically(path, rows, compress=True)
    paths.append(path)
  return paths


def write_judgments(path: str, rng: np.random.Generator, world: World) -> int:
  """Writes `query,item_id,relevance` for the held-out queries; returns rows."""
  rows = [(features.QUERY, features.ITEM_ID, features.RELEVANCE)]
  for query, grades in zip(world.judged_queries, world.judged_grades):
    rows += [(query.text, int(world.catalog.item_ids[i]), float(grades[i]))
             for i in judgment_pool(rng, grades)]
  _write_atomically(path, rows, compress=False)
  return len(rows) - 1
