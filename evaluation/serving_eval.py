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

from evaluation import embedding
from evaluation import metrics
from model import catalog as catalog_lib
from model import features
from tfx_pipeline import configs


def latest_version_dir(serving_dir: str, model_name: str) -> str:
  """The highest integer version directory of a model in a serving dir.

  TF Serving loads the highest version by default; other entries (a pusher's
  temporary directory, stray files) are ignored as TF Serving ignores them.
  """
  model_dir = os.path.join(serving_dir, model_name)
  if not os.path.isdir(model_dir):
    raise FileNotFoundError(f"No model {model_name!r} under {serving_dir}")
  versions = [
      int(name) for name in os.listdir(model_dir)
      if name.isdigit() and os.path.isdir(os.path.join(model_dir, name))
  ]
  if not versions:
    raise FileNotFoundError(f"{model_dir} has no integer version directory")
  return os.path.join(model_dir, str(max(versions)))


def evaluate_serving_dir(serving_dir: str, catalog_csv: str,
                         judgments_csv: str,
                         cutoffs: Iterable[int] = (10, 100, 1000)
                        ) -> Dict[str, Union[float, int]]:
  """Recall@K and NDCG@K of the latest pushed towers on judged queries.

  Args:
    serving_dir: the pusher's directory (`<name>/<version>/saved_model.pb`).
    catalog_csv: `item_id,title[,side features]`, every retrievable item.
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
  query_dir = latest_version_dir(serving_dir, configs.QUERY_TOWER)
  item_dir = latest_version_dir(serving_dir, configs.ITEM_TOWER)
  version = os.path.basename(query_dir)
  if os.path.basename(item_dir) != version:
    raise ValueError(
        f"{query_dir} and {item_dir} differ in version: the towers must come "
        "from one push (is a push still in progress?)")
  catalog = catalog_lib.read_catalog_csv(catalog_csv)
  judgments = metrics.read_judgments(judgments_csv)
  if not judgments:
    raise ValueError(f"{judgments_csv} has no judgments")
  num_items = len(catalog[features.ITEM_ID])
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
