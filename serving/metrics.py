"""What the server measures of its models, in Prometheus' text format.

TF Serving exports its metrics at `PATH` on the REST port (when given a
monitoring config); `mmse serve` does too, with the figures that say where a
request's time goes: the rows of each batch a model ran, the seconds each
batch took, and for an index-backed `retrieval` the share of those seconds
in the query tower and in the index search.
"""
import os
from typing import Dict, Tuple

import prometheus_client
from prometheus_client import multiprocess
from prometheus_client import parser

PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# prometheus_client's multiprocess mode: set (to an empty directory) before
# the server processes start, each records its metrics in files there.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# One registry per process, apart from prometheus_client's default one, so
# that only these metrics are exported.
REGISTRY = prometheus_client.CollectorRegistry()

_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SECOND_BUCKETS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064,
                   0.128, 0.256)

BATCH_ROWS = prometheus_client.Histogram(
    "mmse_batch_rows", "Rows of each batch a model ran.",
    ["model", "signature"], buckets=_ROW_BUCKETS, registry=REGISTRY)
BATCH_SECONDS = prometheus_client.Histogram(
    "mmse_batch_seconds", "Seconds each batch took in the model.",
    ["model", "signature"], buckets=_SECOND_BUCKETS, registry=REGISTRY)
RETRIEVAL_STAGE_SECONDS = prometheus_client.Counter(
    "mmse_retrieval_stage_seconds",
    "Seconds an index-backed retrieval spent in each stage (its warm-up "
    "requests included).",
    ["model", "stage"], registry=REGISTRY)

QUERY_TOWER_STAGE = "query_tower"
INDEX_STAGE = "index"


def observe_batch(model: str, signature: str, rows: int,
                  seconds: float) -> None:
  BATCH_ROWS.labels(model, signature).observe(rows)
  BATCH_SECONDS.labels(model, signature).observe(seconds)


def exposition() -> bytes:
  """Every metric, as a scrape of `PATH` returns it: summed over the server
  processes when there are several (`MULTIPROCESS_DIR_ENV` set), whichever
  of them answers the scrape."""
  if os.environ.get(MULTIPROCESS_DIR_ENV):
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return prometheus_client.generate_latest(registry)
  return prometheus_client.generate_latest(REGISTRY)


def samples(text: str) -> Dict[Tuple[str, tuple], float]:
  """A scrape's values by (sample name, sorted label pairs)."""
  return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
          for family in parser.text_string_to_metric_families(text)
          for sample in family.samples}


def growth(before: Dict[Tuple[str, tuple], float],
           after: Dict[Tuple[str, tuple], float], name: str,
           **labels: str) -> float:
  """How much a sample grew between two scrapes (`samples`); 0 if absent."""
  key = (name, tuple(sorted(labels.items())))
  return after.get(key, 0.0) - before.get(key, 0.0)
