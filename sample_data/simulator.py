"""Embedded sample data: a small home-improvement shop and its search logs.

`mmse run` and the end-to-end test need data without the network or the
licensed benchmark beside the checkout, so this module writes a synthetic
equivalent in the benchmark's exact formats (see the README of
../shared/data/homedepot): a catalogue, sharded gzip search logs and graded
judgments for held-out queries that never occur in the logs.

The world is built so that the multi-stage signals mean something:
  * Products come from templates (brand, product type, attributes such as
    voltage, size, colour, pack count), so titles look like real ones.
  * Queries are written the way people type them: a product type's everyday
    name (often one no title contains, e.g. "fridge", "rattle can"), a few
    of a product's attributes, sometimes its brand, lower case, now and then
    misspelled. Their popularity is Zipf-like.
  * Every (query, item) pair has a relevance grade derived from attribute
    overlap, as the mean of three noisy raters (1.0, 1.33, ..., 3.0), like
    the benchmark's human grades.
  * A production-like ranker (grade plus noise plus a few injected
    irrelevant items) fills each page; a position-based click model turns
    grades into clicks, carts and orders, so ordered > clicked > shown holds
    on average but not item by item.
  * About 0.5% of the rows carry the dirt real logs have: empty queries,
    unknown item ids, orders without a click, exact duplicate rows.

The product templates live in templates.py, the world and click model in
world.py and the file writers in writers.py; this module checks the sizes and
runs the stages. Only the standard library and numpy are used, so `mmse
simulate` takes seconds and imports no TensorFlow. Output is byte-identical
for a seed.
"""
import logging
import os

import numpy as np

from sample_data.world import DIRT_STREAM
from sample_data.world import JUDGMENT_STREAM
from sample_data.world import LOG_STREAM
from sample_data.world import add_dirt
from sample_data.world import build_world
from sample_data.world import random_stream
from sample_data.world import simulate_impressions
from sample_data.writers import write_catalog
from sample_data.writers import write_judgments
from sample_data.writers import write_logs


def _check_sizes(num_items, num_queries, num_judged_queries, num_requests,
                 page_size, num_log_shards, dirt_fraction, seed):
  """Rejects sizes that cannot make a sensible sample, naming the argument."""
  positive = dict(num_items=num_items, num_queries=num_queries,
                  num_judged_queries=num_judged_queries,
                  num_requests=num_requests, page_size=page_size,
                  num_log_shards=num_log_shards)
  for name, value in positive.items():
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if seed < 0:
    raise ValueError(f"seed must be non-negative, got {seed}")
  if page_size > num_items:
    raise ValueError(f"page_size {page_size} exceeds num_items {num_items}")
  if num_requests < num_queries:
    raise ValueError(f"num_requests {num_requests} < num_queries "
                     f"{num_queries}: every training query needs a request")
  if num_log_shards > num_requests:
    raise ValueError(f"num_log_shards {num_log_shards} exceeds num_requests "
                     f"{num_requests}")
  if not 0.0 <= dirt_fraction <= 0.2:
    raise ValueError(f"dirt_fraction must be in [0, 0.2], got {dirt_fraction}")


def simulate(out_dir: str,
             *,
             seed: int = 7,
             num_items: int = 2000,
             num_queries: int = 300,
             num_judged_queries: int = 60,
             num_requests: int = 3000,
             page_size: int = 12,
             num_log_shards: int = 2,
             dirt_fraction: float = 0.005) -> dict:
  """Writes the sample catalogue, search logs and judgments under `out_dir`.

  The defaults make a set the whole pipeline trains on in minutes on two
  cores (about 36k impressions); e.g. num_items=300, num_queries=40,
  num_judged_queries=10, num_requests=400 makes a tiny one for tests.

  Args:
    out_dir: Gets catalog.csv, logs/search_logs-0000N-of-0000M.csv.gz and
      judgments.csv (created if needed; these files are replaced).
    seed: Same seed and sizes, byte-identical files.
    num_items: Catalogue size.
    num_queries: Distinct training queries in the logs (each at least once).
    num_judged_queries: Held-out queries, judged, never in the logs.
    num_requests: Search requests (pages) in the logs.
    page_size: Items per page (impressions per request).
    num_log_shards: Log files, cut in time order at request boundaries.
    dirt_fraction: Share of rows spoiled (empty query, unknown item, order
      without click, duplicate row), split evenly over the kinds.

  Returns:
    A JSON-ready summary: paths written, counts of items, queries,
    judgments, requests, impressions (rows written, dirt included), clicks,
    carts and orders in the written rows, and `dirty_rows` by kind.
  """
  _check_sizes(num_items, num_queries, num_judged_queries, num_requests,
               page_size, num_log_shards, dirt_fraction, seed)
  os.makedirs(out_dir, exist_ok=True)
  world = build_world(seed, num_items, num_queries, num_judged_queries)
  logging.info("Simulated %d items, %d training and %d judged queries",
               num_items, len(world.queries), len(world.judged_queries))
  impressions = simulate_impressions(random_stream(seed, LOG_STREAM),
                                     world.catalog, world.queries, world.grades,
                                     num_requests, page_size)
  impressions, dirt = add_dirt(random_stream(seed, DIRT_STREAM), impressions,
                               world.catalog, dirt_fraction)
  catalog_path = os.path.join(out_dir, "catalog.csv")
  judgments_path = os.path.join(out_dir, "judgments.csv")
  write_catalog(catalog_path, world.catalog)
  log_paths = write_logs(os.path.join(out_dir, "logs"), impressions,
                         world.queries, num_log_shards)
  num_judgments = write_judgments(judgments_path,
                                  random_stream(seed, JUDGMENT_STREAM), world)
  summary = {
      "catalog": catalog_path,
      "logs": log_paths,
      "judgments": judgments_path,
      "seed": seed,
      "items": num_items,
      "queries": len(world.queries),
      "judged_queries": len(world.judged_queries),
      "judgment_rows": num_judgments,
      "requests": num_requests,
      "impressions": len(impressions.request),
      "clicks": int(impressions.clicked.sum()),
      "carts": int(impressions.added_to_cart.sum()),
      "orders": int(impressions.ordered.sum()),
      "dirty_rows": dirt,
  }
  logging.info("Wrote %d impressions (%d clicks, %d orders) to %s",
               summary["impressions"], summary["clicks"], summary["orders"],
               out_dir)
  return summary
