"""The serving benchmark: gRPC latency and throughput, ANN against exact.

  python -m bench.serving [--serving-dir DIR] [--catalog CSV] [--queries CSV]
                          [--duration 30] [--clients 1,8,32]
                          [--synthetic-sizes 1000000,5000000]

writes `bench/results/serving.md` and `serving.json`:
- gRPC load: `mmse serve` in its own process answers query -> top-100 (ids,
  scores, titles) through the ANN index for 1, 8 and 32 closed-loop clients,
  `--duration` seconds each after a warm-up; p50/p99 latency, queries/s and
  failed requests.
- ANN against exact: recall@100 of the index's top-100 against the exact
  top-100 and the speed-up, one query at a time (as a server searches) and
  in one batch, on the benchmark catalogue's item embeddings and on
  synthetic ones (1M, 5M; clustered like learned embeddings, plus an
  isotropic stress case).
- Index build time against catalogue size.

Without `--serving-dir` the towers are toys (`bench.toy_serving`: hashed
bag of words, D = 64), which embed at a different cost than trained towers;
with `--serving-dir` the latest pushed towers are used (linked, never
modified) and a `retrieval` version with k = 100 is built beside them in a
scratch directory.
"""
import argparse
import asyncio
from importlib import metadata
import json
import logging
import os
import pathlib
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import faiss
import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from bench import toy_serving
from evaluation import embedding
from model import catalog as catalog_lib
from model import features
from serving import ann
from serving import batch_retrieve
from serving import indexing
from serving import model_registry
from serving import tensor_codec
from tfx_pipeline import configs

_REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = _REPO.parent / "shared" / "data" / "homedepot"
DEFAULT_RESULTS_DIR = _REPO / "bench" / "results"
TABLE_FILE = "serving.md"
JSON_FILE = "serving.json"
K = 100
# Targets from the serving issue.
TARGET_P99_MS_AT_8 = 20.0
TARGET_QPS = 300.0
TARGET_RECALL = 0.95
TARGET_SPEEDUP = 5.0


# --- Serving directory and server process. ---------------------------------


def prepare_serving_dir(work_dir: str, catalog_csv: str, kind: str,
                        pushed_dir: Optional[str]) -> Dict[str, object]:
  """Towers (toy, or linked from a pushed dir) and a fresh top-100 index."""
  if pushed_dir:
    for name in (configs.QUERY_TOWER, configs.ITEM_TOWER):
      versions = model_registry.loadable_versions(
          os.path.join(pushed_dir, name))
      if not versions:
        raise FileNotFoundError(f"No {name} version under {pushed_dir}")
      os.makedirs(os.path.join(work_dir, name))
      os.symlink(os.path.abspath(os.path.join(pushed_dir, name,
                                              str(versions[-1]))),
                 os.path.join(work_dir, name, str(versions[-1])))
    towers = f"pushed towers from {pushed_dir}"
  else:
    toy_serving.write_towers(work_dir)
    towers = "toy towers (hashed bag of words, D=64)"
  started = time.monotonic()
  version = indexing.build_index(work_dir, catalog_csv, kind=kind, k=K)
  return {"towers": towers, "retrieval_version": version, "index_kind": kind,
          "mmse_index_seconds": round(time.monotonic() - started, 1)}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_server(serving_dir: str, port: int) -> subprocess.Popen:
  """`mmse serve` in its own process, as a user runs it."""
  code = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
          "from serving import server; "
          "server.serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]))")
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
         "PYTHONPATH": str(_REPO)}
  return subprocess.Popen([sys.executable, "-c", code, serving_dir, str(port)],
                          env=env)


def wait_until_serving(address: str, process: subprocess.Popen,
                       timeout_s: float = 600) -> None:
  deadline = time.monotonic() + timeout_s
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = configs.RETRIEVAL
  with grpc.insecure_channel(address) as channel:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    while time.monotonic() < deadline:
      if process.poll() is not None:
        raise RuntimeError(f"the server exited with {process.returncode}")
      try:
        states = stub.GetModelStatus(request, timeout=5).model_version_status
        if any(s.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
               for s in states):
          return
      except grpc.RpcError:
        pass
      time.sleep(0.5)
  raise TimeoutError(f"{address} did not serve {configs.RETRIEVAL} in time")


# --- Load test. -------------------------------------------------------------


def load_test(address: str, queries: Sequence[str], clients: int,
              duration_s: float, warmup_s: float) -> Dict[str, object]:
  """Closed-loop clients, each on its own channel, one query per call.

  The clients are coroutines on one asyncio loop (grpc.aio), the leanest
  Python client, since they share the cores with the server. Latency is
  measured around each Predict; calls started in the warm-up are not
  counted, and neither is a call still running when the time is up.
  """

  requests = []
  for query in queries:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = configs.RETRIEVAL
    request.inputs[features.QUERY].CopyFrom(
        tensor_codec.from_ndarray(np.asarray([query], dtype=object)))
    requests.append(request)
  latencies, failures = [], []

  async def client(index, start, measure_from, end):
    async with grpc.aio.insecure_channel(address) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      await channel.channel_ready()
      await asyncio.sleep(max(0.0, start - time.monotonic()))
      i = index * 7919  # Clients walk the query list from different places.
      while True:
        sent = time.monotonic()
        if sent >= end:
          return
        try:
          response = await stub.Predict(requests[i % len(requests)],
                                        timeout=30)
          problem = None if tensor_codec.to_ndarray(
              response.outputs["item_ids"]).shape == (1, K) else "bad response"
        except grpc.RpcError as e:
          problem = f"{e.code().name}: {e.details()}"
        done = time.monotonic()
        i += 1
        if sent >= measure_from and done <= end:
          if problem is None:
            latencies.append(done - sent)
          else:
            failures.append(problem)

  async def run_all():
    start = time.monotonic() + 1.0
    measure_from = start + warmup_s
    await asyncio.gather(*[
        client(i, start, measure_from, measure_from + duration_s)
        for i in range(clients)
    ])

  asyncio.run(run_all())
  millis = np.asarray(latencies) * 1000
  result = {
      "clients": clients,
      "seconds": duration_s,
      "requests": int(len(millis)),
      "failed": len(failures),
      "qps": round(len(millis) / duration_s, 1),
      "p50_ms": round(float(np.percentile(millis, 50)), 2),
      "p99_ms": round(float(np.percentile(millis, 99)), 2),
      "mean_ms": round(float(millis.mean()), 2),
      "load_average": round(os.getloadavg()[0], 1),
  }
  if failures:
    result["failure_examples"] = sorted(set(failures))[:3]
  logging.info("Load with %d clients: %s", clients, result)
  return result


def run_load(serving_dir: str, queries: Sequence[str], clients: Sequence[int],
             duration_s: float, warmup_s: float) -> List[Dict[str, object]]:
  """Starts `mmse serve` on `serving_dir` and load-tests each client count."""
  port = _free_port()
  address = f"127.0.0.1:{port}"
  process = start_server(serving_dir, port)
  try:
    wait_until_serving(address, process)
    return [load_test(address, queries, c, duration_s, warmup_s)
            for c in clients]
  finally:
    process.terminate()
    process.wait(60)


# --- ANN against exact. -----------------------------------------------------


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
  return float(np.mean([
      len(np.intersect1d(f, e, assume_unique=True)) / len(e)
      for f, e in zip(found, exact)
  ]))


def _time_search(index: ann.Index, queries: np.ndarray,
                 single_queries: int) -> Dict[str, float]:
  started = time.perf_counter()
  ids, _ = index.search(queries, K)
  batched = (time.perf_counter() - started) / len(queries)
  index.search(queries[:1], K)  # Warm caches for the one-query loop.
  started = time.perf_counter()
  for row in range(single_queries):
    index.search(queries[row:row + 1], K)
  single = (time.perf_counter() - started) / single_queries
  return {"ids": ids, "batched_ms": batched * 1000, "single_ms": single * 1000}


def ann_vs_exact(name: str, item_ids: np.ndarray, item_embeddings: np.ndarray,
                 queries: np.ndarray, kinds: Sequence[str],
                 single_queries: int) -> Dict[str, object]:
  """Recall@100 and speed of each index kind against exact search."""
  logging.info("ANN vs exact on %s: %d items x %d, %d queries", name,
               len(item_ids), item_embeddings.shape[1], len(queries))
  exact = _time_search(ann.build(item_ids, item_embeddings, "exact"), queries,
                       single_queries)
  row = {
      "dataset": name,
      "items": int(len(item_ids)),
      "dim": int(item_embeddings.shape[1]),
      "queries": int(len(queries)),
      "exact_single_ms": round(exact["single_ms"], 3),
      "exact_batched_ms": round(exact["batched_ms"], 3),
      "indexes": {},
  }
  for kind in kinds:
    started = time.monotonic()
    index = ann.build(item_ids, item_embeddings, kind, k=K)
    build_s = time.monotonic() - started
    timed = _time_search(index, queries, single_queries)
    row["indexes"][kind] = {
        "build_s": round(build_s, 1),
        "recall@100": round(_recall(timed["ids"], exact["ids"]), 4),
        "single_ms": round(timed["single_ms"], 3),
        "batched_ms": round(timed["batched_ms"], 3),
        "speedup_single": round(exact["single_ms"] / timed["single_ms"], 1),
        "speedup_batched": round(exact["batched_ms"] / timed["batched_ms"],
                                 1),
        "params": index.params,
    }
    logging.info("%s %s: %s", name, kind, row["indexes"][kind])
    del index
  return row


def catalogue_ann_vs_exact(serving_dir: str, retrieval_version: int,
                          queries: Sequence[str],
                          single_queries: int) -> Dict[str, object]:
  """ANN against exact on the catalogue's item embeddings as indexed, with
  the queries embedded by the query tower they pair with."""
  index_dir = os.path.join(serving_dir, configs.RETRIEVAL,
                           str(retrieval_version), ann.INDEX_SUBDIR)
  item_ids = np.load(os.path.join(index_dir, ann.ITEM_IDS_FILE))
  item_embeddings = np.load(os.path.join(index_dir, ann.EMBEDDINGS_FILE))
  tower_base = os.path.join(serving_dir, configs.QUERY_TOWER)
  query_tower = embedding.load_signature(os.path.join(
      tower_base, str(model_registry.loadable_versions(tower_base)[-1])))
  return ann_vs_exact("benchmark catalogue", item_ids, item_embeddings,
                      embedding.embed_queries(query_tower, queries),
                      ("scann", "faiss"), single_queries)


def synthetic_embeddings(num_items: int, num_queries: int, dim: int,
                         clustered: bool, seed: int = 0):
  """Unit-norm item and query embeddings, generated in chunks.

  Clustered: items around 2 sqrt(N) random centres (learned embeddings
  cluster by category), queries near random items. Isotropic: every vector
  uniform on the sphere, the hardest case for partitioning.
  """
  rng = np.random.default_rng(seed)
  items = np.empty((num_items, dim), dtype=np.float32)
  centres = rng.standard_normal(
      (int(2 * np.sqrt(num_items)), dim)).astype(np.float32)
  chunk = 500_000
  for start in range(0, num_items, chunk):
    stop = min(start + chunk, num_items)
    block = rng.standard_normal((stop - start, dim)).astype(np.float32)
    if clustered:
      block += centres[rng.integers(0, len(centres), stop - start)]
    items[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
  if clustered:
    queries = items[rng.integers(0, num_items, num_queries)] + (
        rng.standard_normal((num_queries, dim)).astype(np.float32) * 0.1)
  else:
    queries = rng.standard_normal((num_queries, dim)).astype(np.float32)
  queries /= np.linalg.norm(queries, axis=1, keepdims=True)
  return np.arange(num_items, dtype=np.int64), items, queries


# --- Inputs. ----------------------------------------------------------------


def read_query_texts(path: Optional[str], catalog: catalog_lib.Catalog,
                     limit: int = 2000) -> List[str]:
  """Distinct benchmark queries, or title prefixes when none are given."""
  if path:
    queries = list(dict.fromkeys(q for q in batch_retrieve.read_queries(path)
                                 if q.strip()))
  else:
    titles = catalog[features.TITLE]
    rng = np.random.default_rng(0)
    queries = [" ".join(str(titles[i]).split()[:3])
               for i in rng.choice(len(titles), limit, replace=False)]
  if not queries:
    raise ValueError(f"{path}: no queries")
  return queries[:limit]


# --- Report. ----------------------------------------------------------------

SECTIONS = ("load", "ann", "build")


def _mark(ok: bool) -> str:
  return "met" if ok else "NOT met"


def _stamp(section: Dict[str, object]) -> str:
  return (f"Measured {section['date']}, load average "
          f"{section['load_average']} at start (other work shares the "
          "cores).")


def _render_load(load: Dict[str, object]) -> List[str]:
  rows = load["rows"]
  lines = [
      "## gRPC query -> top-100 (`mmse serve`, ANN index)", "",
      _stamp(load) + f" Closed-loop clients, {rows[0]['seconds']:.0f} s "
      "each after a warm-up, one query per Predict call; the response "
      "carries 100 ids, scores and titles. The clients (grpc.aio, one "
      "process) run on the same cores as the server.", "",
      "| Clients | Requests | Failed | Queries/s | p50 ms | p99 ms | Mean ms |",
      "|---:|---:|---:|---:|---:|---:|---:|"
  ]
  for r in rows:
    lines.append(f"| {r['clients']} | {r['requests']:,} | {r['failed']} | "
                 f"{r['qps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                 f"{r['mean_ms']:.2f} |")
  at8 = next((r for r in rows if r["clients"] == 8), None)
  best_qps = max(r["qps"] for r in rows)
  failed = sum(r["failed"] for r in rows)
  lines.append("")
  if at8:
    lines.append(f"- p99 < {TARGET_P99_MS_AT_8:.0f} ms at 8 clients: "
                 f"{_mark(at8['p99_ms'] < TARGET_P99_MS_AT_8)} "
                 f"({at8['p99_ms']:.2f} ms)")
  lines += [
      f"- >= {TARGET_QPS:.0f} queries/s: {_mark(best_qps >= TARGET_QPS)} "
      f"({best_qps:.0f} at best)",
      f"- zero failed requests: {_mark(failed == 0)} ({failed})", ""
  ]
  return lines


def _render_ann(section: Dict[str, object]) -> List[str]:
  lines = [
      "## ANN against exact search", "",
      _stamp(section) + " Recall@100 = share of the exact top-100 the index "
      "returns. Speed-up = exact time / index time per query, for one query "
      "per call (as the server searches) and for all queries in one call. "
      "Exact search is a NumPy matrix product + partial sort (multi-threaded "
      "BLAS); ScaNN searches on one thread. Synthetic embeddings are unit "
      "vectors: *clustered* around 2 sqrt(N) centres with queries near "
      "items (as learned embeddings cluster by category), or *isotropic* "
      "(uniform on the sphere, the hardest case for partitioning).", "",
      "| Items | Embeddings | Index | Build s | Recall@100 | ms/query "
      "(1 per call) | Speed-up | ms/query (batched) | Speed-up |",
      "|---:|---|---|---:|---:|---:|---:|---:|---:|"
  ]
  for row in section["rows"]:
    lines.append(f"| {row['items']:,} | {row['dataset']} | exact | - | 1 | "
                 f"{row['exact_single_ms']:.3f} | 1 | "
                 f"{row['exact_batched_ms']:.3f} | 1 |")
    for kind, r in row["indexes"].items():
      lines.append(
          f"| {row['items']:,} | {row['dataset']} | {kind} | {r['build_s']} "
          f"| {r['recall@100']:.3f} | {r['single_ms']:.3f} | "
          f"{r['speedup_single']:.1f}x | {r['batched_ms']:.3f} | "
          f"{r['speedup_batched']:.1f}x |")
  target = next((r["indexes"].get("scann") for r in section["rows"]
                 if r["items"] == 1_000_000 and r["dataset"] == "clustered"),
                None)
  if target:
    ok = (target["recall@100"] >= TARGET_RECALL and
          target["speedup_single"] >= TARGET_SPEEDUP)
    lines += ["", f"- ScaNN at 1M: recall@100 >= {TARGET_RECALL} at >= "
              f"{TARGET_SPEEDUP:.0f}x faster than exact: {_mark(ok)} "
              f"({target['recall@100']:.3f} at {target['speedup_single']:.1f}x"
              f" one query per call, {target['speedup_batched']:.1f}x "
              "batched)"]
  lines += ["", "Index parameters (defaults sized by catalogue size):", ""]
  for row in section["rows"]:
    for kind, r in row["indexes"].items():
      lines.append(f"- {row['items']:,} {row['dataset']} {kind}: "
                   f"`{json.dumps(r['params'])}`")
  return lines + [""]


def _render_build(results: Dict[str, object]) -> List[str]:
  rows = [{"items": row["items"], "dataset": row["dataset"], "kind": kind,
           "build_s": r["build_s"]}
          for row in results.get("ann", {}).get("rows", [])
          for kind, r in row["indexes"].items()]
  rows += results.get("build", {}).get("rows", [])
  lines = [
      "## Index build time against catalogue size", "",
      "From the table above and extra synthetic sizes (clustered).", "",
      "| Items | Embeddings | Index | Build s |", "|---:|---|---|---:|"
  ]
  for r in sorted(rows, key=lambda r: (r["kind"], r["items"])):
    lines.append(f"| {r['items']:,} | {r['dataset']} | {r['kind']} | "
                 f"{r['build_s']} |")
  setup = results.get("setup")
  if setup:
    lines += [
        "", f"`mmse index` on the catalogue (embed it with the item tower, "
        f"export the exact SavedModel, build the {setup['index_kind']} "
        f"index, rename into place): {setup['mmse_index_seconds']} s."
    ]
  return lines + [""]


def render(results: Dict[str, object]) -> str:
  env = results["environment"]
  setup = results.get("setup", {})
  lines = [
      "# Serving benchmark", "",
      f"{env['cpus']} CPU cores; {setup.get('towers', 'no towers')}; "
      f"catalogue of {results['catalog_items']:,} items; top-{K}. "
      "Regenerate with `python -m bench.serving` (`--sections` reruns a "
      "part, `--serving-dir` uses pushed towers).", ""
  ]
  if "load" in results:
    lines += _render_load(results["load"])
  if "ann" in results:
    lines += _render_ann(results["ann"])
  lines += _render_build(results)
  lines.append("Environment: " + ", ".join(
      f"{k} {v}" for k, v in env.items() if k != "cpus"))
  return "\n".join(lines) + "\n"


def _environment() -> Dict[str, object]:
  return {
      "cpus": os.cpu_count(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "scann": metadata.version("scann"),
      "faiss": faiss.__version__,
      "grpcio": grpc.__version__,
  }


def _section_stamp() -> Dict[str, object]:
  return {"date": time.strftime("%Y-%m-%d %H:%M"),
          "load_average": round(os.getloadavg()[0], 1)}


def _ints(text: str) -> List[int]:
  return [int(x) for x in text.split(",") if x.strip()]


def _run_synthetic(args) -> List[Dict[str, object]]:
  rows = []
  for clustered, sizes in ((True, _ints(args.synthetic_sizes)),
                           (False, _ints(args.isotropic_sizes))):
    for size in sizes:
      ids, items, queries = synthetic_embeddings(
          size, 1000 if size <= 1_000_000 else 200, args.dim, clustered)
      kinds = ["scann"] + (["faiss"] if size <= args.faiss_max_items else [])
      rows.append(ann_vs_exact(
          "clustered" if clustered else "isotropic", ids, items, queries,
          kinds, min(args.single_queries, 50 if size > 1_000_000 else 200)))
      del items
  return rows


def _run_builds(args) -> List[Dict[str, object]]:
  rows = []
  for size in _ints(args.build_sizes):
    ids, items, _ = synthetic_embeddings(size, 1, args.dim, True)
    for kind in ("scann", "faiss"):
      started = time.monotonic()
      ann.build(ids, items, kind, k=K)
      rows.append({"items": size, "dataset": "clustered", "kind": kind,
                   "build_s": round(time.monotonic() - started, 1)})
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--serving-dir",
                      help="A pushed serving dir whose towers to use "
                      "(default: toy towers).")
  parser.add_argument("--catalog",
                      default=str(DEFAULT_DATA_DIR / "catalog.csv"))
  parser.add_argument("--queries",
                      default=str(DEFAULT_DATA_DIR / "dev_judgments.csv"),
                      help="CSV with a query column, or one query a line.")
  parser.add_argument("--sections", default=",".join(SECTIONS),
                      help="Parts to run (load, ann, build); the others are "
                      "kept from the existing serving.json.")
  parser.add_argument("--kind", default="scann", choices=ann.KINDS,
                      help="Index the server answers through.")
  parser.add_argument("--duration", type=float, default=30.0)
  parser.add_argument("--warmup", type=float, default=3.0)
  parser.add_argument("--clients", default="1,8,32")
  parser.add_argument("--synthetic-sizes", default="1000000,5000000")
  parser.add_argument("--isotropic-sizes", default="1000000")
  parser.add_argument("--build-sizes", default="100000,300000",
                      help="Extra synthetic sizes timed for index build only.")
  parser.add_argument("--faiss-max-items", type=int, default=1_000_000)
  parser.add_argument("--dim", type=int, default=64,
                      help="Dimension of the synthetic embeddings.")
  parser.add_argument("--single-queries", type=int, default=200)
  parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR))
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO,
                      format="%(asctime)s %(levelname)s %(message)s")
  sections = {s.strip() for s in args.sections.split(",") if s.strip()}
  if not sections or sections - set(SECTIONS):
    parser.error(f"--sections takes some of {SECTIONS}")

  json_path = os.path.join(args.results_dir, JSON_FILE)
  results = {}
  if sections != set(SECTIONS) and os.path.exists(json_path):
    with open(json_path, encoding="utf-8") as f:
      results = json.load(f)
  results.update(environment=_environment(), k=K)
  catalog = catalog_lib.read_catalog_csv(args.catalog)
  results["catalog_items"] = len(catalog[features.ITEM_ID])

  if sections & {"load", "ann"}:
    queries = read_query_texts(
        args.queries if os.path.exists(args.queries) else None, catalog)
    work_dir = tempfile.mkdtemp(prefix="mmse-bench-serving-")
    try:
      serving_dir = os.path.join(work_dir, "serving")
      results["setup"] = prepare_serving_dir(serving_dir, args.catalog,
                                             args.kind, args.serving_dir)
      if "load" in sections:
        results["load"] = {**_section_stamp(), "rows": run_load(
            serving_dir, queries, _ints(args.clients), args.duration,
            args.warmup)}
      if "ann" in sections:
        stamp = _section_stamp()
        rows = [catalogue_ann_vs_exact(
            serving_dir, results["setup"]["retrieval_version"], queries,
            args.single_queries)]
    finally:
      shutil.rmtree(work_dir, ignore_errors=True)
    if "ann" in sections:
      results["ann"] = {**stamp, "rows": rows + _run_synthetic(args)}
  if "build" in sections:
    results["build"] = {**_section_stamp(), "rows": _run_builds(args)}

  os.makedirs(args.results_dir, exist_ok=True)
  with open(json_path, "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2, default=str)
  table = render(results)
  with open(os.path.join(args.results_dir, TABLE_FILE), "w",
            encoding="utf-8") as f:
    f.write(table)
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
