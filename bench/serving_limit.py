"""The model's own limit: query tower + index search called in process.

The server answers `retrieval` by running the same servable the registry
loads (query tower, then the index search) on batches its batcher merges;
here that servable is called directly at fixed batch sizes, so a server
figure can be read as a share of what the model alone sustains on the same
machine. The parts of one request (decoding it, the tower, the index search,
encoding the answer for gRPC and for REST) are timed alone too.
"""
import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from tensorflow_serving.apis import predict_pb2

from contracts import serving_layout
from evaluation import metrics
from retrieval import ann
from retrieval import topk
from serving import batching
from serving import rest
from serving import server
from serving import servables
from serving import tensor_codec


def _load(serving_dir: str, name: str) -> servables.Servable:
  base_paths = {n: os.path.join(serving_dir, n)
                for n in serving_layout.SERVED_MODELS}
  version_dir = serving_layout.latest_version_dir(serving_dir, name)
  return servables.make_loader(base_paths, servables.RunOptions())(
      name, int(os.path.basename(version_dir)), version_dir)


def rate(fn, batches: Sequence, seconds: float) -> Dict[str, float]:
  """Calls `fn` on the batches in turn for `seconds`; rows/s, ms per call,
  and the process's CPU seconds per second (cores) while it ran."""
  fn(batches[0])
  calls, rows, started = 0, 0, time.perf_counter()
  cpu_started = time.process_time()
  while time.perf_counter() - started < seconds:
    batch = batches[calls % len(batches)]
    fn(batch)
    calls += 1
    rows += len(batch) if not isinstance(batch, dict) else len(
        next(iter(batch.values())))
  elapsed = time.perf_counter() - started
  return {"qps": round(rows / elapsed, 1),
          "ms_per_batch": round(1000 * elapsed / calls, 3),
          "cores": round((time.process_time() - cpu_started) / elapsed, 2)}


def in_process_limit(serving_dir: str, queries: Sequence[str],
                     batch_sizes: Sequence[int],
                     seconds: float = 5.0) -> List[Dict[str, object]]:
  """Queries/s of tower + index, tower alone and index alone, per batch,
  with the index on the server's threads; and the index on every core."""
  # The threads each batch of `mmse serve --enable_batching` gets.
  served_threads = server.ServerOptions(
      batching_parameters=batching.BatchingParameters()
  ).run_options.threads_per_call
  ann.set_search_threads(served_threads)
  retrieval = _load(serving_dir, serving_layout.RETRIEVAL)
  tower = _load(serving_dir, serving_layout.QUERY_TOWER)
  signature = serving_layout.SERVING_SIGNATURE
  rows = []
  for size in batch_sizes:
    texts = [np.asarray([queries[(i * size + j) % len(queries)]
                         for j in range(size)], dtype=object)
             for i in range(64)]
    inputs = [{serving_layout.QUERY_INPUT: t} for t in texts]
    embeddings = [tower.call(signature, x)[serving_layout.EMBEDDING_OUTPUT]
                  for x in inputs]
    index = retrieval.index
    search = lambda e: index.search_rows(e, index_k(retrieval))
    row = {
        "batch": size,
        "tower_and_index": rate(lambda x: retrieval.call(signature, x),
                                 inputs, seconds),
        "tower": rate(lambda x: tower.call(signature, x), inputs, seconds),
        "index": None, "index_all_cores": None,
    }
    if index is not None:
      row["index"] = rate(search, embeddings, seconds)
      row["index_all_cores"] = row["index"]
      if served_threads != os.cpu_count():  # Else the same search again.
        ann.set_search_threads(os.cpu_count())
        row["index_all_cores"] = rate(search, embeddings, seconds)
        ann.set_search_threads(served_threads)
    rows.append(row)
  return rows


def index_quality(serving_dir: str, queries: Sequence[str],
                  judgments: Optional[metrics.Judgments] = None
                 ) -> Dict[str, object]:
  """Share of the exact top-k the served index returns for `queries`; with
  judgments of them, also their Recall@k through the index and exact."""
  retrieval = _load(serving_dir, serving_layout.RETRIEVAL)
  tower = _load(serving_dir, serving_layout.QUERY_TOWER)
  index, k = retrieval.index, index_k(retrieval)
  embeddings = np.concatenate([
      tower.call(serving_layout.SERVING_SIGNATURE, {
          serving_layout.QUERY_INPUT: np.asarray(queries[i:i + 256],
                                                 dtype=object)
      })[serving_layout.EMBEDDING_OUTPUT] for i in range(0, len(queries), 256)
  ])
  found, _ = index.search_rows(embeddings, k)
  exact, _ = topk.exact_top_k(embeddings, index.embeddings, k)
  quality = {f"index_recall@{k}": round(metrics.index_recall(found, exact), 4)}
  if judgments:
    for name, rows in (("index", found), ("exact", exact)):
      quality[f"judged_recall@{k}_{name}"] = round(judged_scores(
          queries, index.item_ids[rows], judgments, (k,))[f"recall@{k}"], 4)
  return quality


def judged_scores(queries: Sequence[str], ranked_ids: np.ndarray,
                  judgments: metrics.Judgments,
                  cutoffs: Sequence[int]) -> Dict[str, float]:
  """`metrics.score` of the judged queries among `queries`, each ranked by
  its row of `ranked_ids`."""
  ranked = dict(zip(queries, ranked_ids))
  return metrics.score(
      ranked, {q: g for q, g in judgments.items() if q in ranked}, cutoffs)


def index_k(retrieval: servables.Servable) -> int:
  dims = retrieval.signature_defs[serving_layout.SERVING_SIGNATURE].outputs[
      serving_layout.ITEM_IDS_OUTPUT].tensor_shape.dim
  return dims[-1].size


def request_parts(serving_dir: str, query: str,
                  repeats: int = 2000) -> Dict[str, float]:
  """Milliseconds of one single-query request's parts, each timed alone."""
  retrieval = _load(serving_dir, serving_layout.RETRIEVAL)
  tower = _load(serving_dir, serving_layout.QUERY_TOWER)
  signature = serving_layout.SERVING_SIGNATURE
  request = predict_pb2.PredictRequest()
  request.model_spec.name = serving_layout.RETRIEVAL
  request.inputs[serving_layout.QUERY_INPUT].CopyFrom(
      tensor_codec.from_ndarray(np.asarray([query], dtype=object)))
  wire = request.SerializeToString()
  inputs = {serving_layout.QUERY_INPUT: np.asarray([query], dtype=object)}
  outputs = retrieval.call(signature, inputs)
  embedding = tower.call(signature, inputs)[serving_layout.EMBEDDING_OUTPUT]
  index = retrieval.index
  body = json.dumps({"instances": [query]}).encode()

  def grpc_decode():
    parsed = predict_pb2.PredictRequest.FromString(wire)
    tensor_codec.to_ndarray(parsed.inputs[serving_layout.QUERY_INPUT])

  def grpc_encode():
    response = predict_pb2.PredictResponse()
    for name, value in outputs.items():
      tensor_codec.fill(response.outputs[name], value)
    response.SerializeToString()

  def rest_decode():
    json.loads(body)

  def rest_encode():
    json.dumps(rest.encode_outputs(outputs, row_format=True))

  parts = {
      "grpc_decode": grpc_decode,
      "tower": lambda: tower.call(signature, inputs),
      "index": ((lambda: index.search_rows(embedding, index_k(retrieval)))
                if index is not None else None),
      "grpc_encode": grpc_encode,
      "rest_decode": rest_decode,
      "rest_encode": rest_encode,
  }
  timed = {}
  for name, fn in parts.items():
    if fn is None:
      continue
    fn()
    started = time.perf_counter()
    for _ in range(repeats):
      fn()
    timed[name] = round(1000 * (time.perf_counter() - started) / repeats, 4)
  return timed
