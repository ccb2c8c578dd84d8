"""`mmse retrieve`: top-k items for a file of queries, from the pushed model.

Reads the latest version of the pushed `retrieval` SavedModel directly (no
server), so a batch job can score a query file offline. One output line per
input query, in input order, so nothing is lost or reordered.
"""
import csv
import json
import logging
from typing import List

from contracts import features
from contracts import serving_layout
from retrieval import embedding


def read_queries(path: str) -> List[str]:
  """A CSV with a `query` column, or plain text with one query a line.

  A file without a single query is an error: a batch job must not write an
  empty result and look successful.
  """
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      first = f.readline()
      f.seek(0)
      if path.endswith(".csv") or first.rstrip("\r\n").split(",")[0] == \
          features.QUERY:
        reader = csv.DictReader(f)
        if features.QUERY not in (reader.fieldnames or ()):
          raise ValueError(f"{path}: CSV without a '{features.QUERY}' column")
        queries = [row[features.QUERY] or "" for row in reader]
      else:
        queries = [line.rstrip("\r\n") for line in f]
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 text ({e})") from e
  if not queries:
    raise ValueError(f"{path}: no queries")
  return queries


def retrieve_file(serving_dir: str, queries_path: str, k: int,
                  out_path: str, batch_size: int = 256) -> int:
  """Writes `{"query", "item_ids", "scores"}` lines; returns how many."""
  queries = read_queries(queries_path)
  model_dir = serving_layout.latest_version_dir(serving_dir,
                                                serving_layout.RETRIEVAL)
  retrieval = embedding.load_signature(model_dir,
                                       output=serving_layout.ITEM_IDS_OUTPUT)
  served_k = retrieval.structured_outputs[
      serving_layout.ITEM_IDS_OUTPUT].shape[-1]
  if k < 1 or (served_k is not None and k > served_k):
    raise ValueError(f"k must be in 1..{served_k} for the model at {model_dir}")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with open(out_path, "w", encoding="utf-8") as out:
    for start in range(0, len(queries), batch_size):
      batch = queries[start:start + batch_size]
      result = retrieval(**{
          serving_layout.QUERY_INPUT: tf.constant(batch, dtype=tf.string)})
      ids = result[serving_layout.ITEM_IDS_OUTPUT].numpy()[:, :k]
      scores = result[serving_layout.SCORES_OUTPUT].numpy()[:, :k]
      for query, row_ids, row_scores in zip(batch, ids, scores):
        out.write(json.dumps({
            "query": query,
            "item_ids": [i.decode("utf-8") for i in row_ids.tolist()],
            "scores": [round(float(s), 6) for s in row_scores],
        }) + "\n")
      logging.info("Retrieved %d/%d queries", start + len(batch), len(queries))
  return len(queries)
