"""Scores what is being served: the latest pushed towers over a catalogue.

`mmse evaluate` answers "how good is the model TF Serving loads right now" on
any judged query set (the benchmark's dev judgments, a team's own), with the
same scorer and exact whole-catalogue search as the pipeline's evaluator, so
its figures and the blessing's are comparable.
"""
import logging
import os
import time
from typing import Dict, Iterable, Union

from contracts import catalog as catalog_lib
from contracts import serving_layout
from evaluation import config as eval_config
from evaluation import metrics
from retrieval import embedding


def evaluate_serving_dir(serving_dir: str, catalog_csv: str,
                         judgments_csv: str,
                         cutoffs: Iterable[int] = eval_config.EvalConfig.cutoffs
                        ) -> Dict[str, Union[float, int]]:
  """Recall@K and NDCG@K of the latest pushed towers on judged queries.

  Args:
    serving_dir: the pusher's directory (`<name>/<version>/saved_model.pb`).
    catalog_csv: `item_id,title[,side features]`, every retrievable item
      (read with `contracts.catalog`: a duplicate item_id is set aside).
    judgments_csv: `query,item_id,relevance`.
    cutoffs: the K values.

  Returns:
    `metrics.score`'s keys (`recall@K`, `ndcg@K`, `queries`,
    `recall_queries`) plus `items` (catalogue size), `model_version` and
    `seconds` (wall time of embedding, search and scoring).
  """
  cutoffs = tuple(sorted(cutoffs))
  if not cutoffs:
    raise ValueError("At least one cutoff is needed")
  towers = serving_layout.latest_release_dirs(serving_dir)
  query_dir = towers[serving_layout.QUERY_TOWER]
  item_dir = towers[serving_layout.ITEM_TOWER]
  version = os.path.basename(query_dir)
  catalog = catalog_lib.read_catalog(catalog_csv)
  judgments = metrics.read_judgments(judgments_csv)
  if not judgments:
    raise ValueError(f"{judgments_csv} has no judgments")
  num_items = len(catalog)
  logging.info("Evaluating version %s of %s: %d items, %d judged queries",
               version, serving_dir, num_items, len(judgments))
  start = time.monotonic()
  rankings = embedding.rank_catalog(
      embedding.load_signature(query_dir), embedding.load_signature(item_dir),
      catalog, list(judgments), k=max(cutoffs))
  result = metrics.score(rankings, judgments, cutoffs)
  result["items"] = num_items
  result["model_version"] = int(version)
  result["seconds"] = time.monotonic() - start
  return result
