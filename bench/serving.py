"""The serving benchmark: the model's own limit, the server against it over
gRPC and REST, hot swaps, ANN against exact.

  python -m bench.serving [--serving-dir DIR] [--catalog CSV] [--queries CSV]
                          [--duration 30] [--clients 1,8,32]
                          [--synthetic-sizes 1000000,5000000]

writes `bench/results/serving.md` and `serving.json`:
- The limit (`bench.serving_limit`): the `retrieval` servable the server
  loads (query tower + index search) called in process at batch 1, 8 and
  32, the tower and the index alone, and each part of one request timed
  alone (decode, tower, index, encode).
- Load (`bench.serving_generators`): `mmse serve` in its own process
  (`tfx_pipeline.serve_process`) answers query -> top-100 (ids, scores, titles)
  through the ANN index for 1, 8 and 32 connections of C load generators,
  h2load over gRPC and wrk over REST, `--duration` seconds each after a
  warm-up: queries/s, mean, p50 and p99 latency, failed requests, the
  server's cores and each figure as a share of the in-process limit at the
  same batch size. Side by side in one run: the server without batching
  (TF Serving's default), batched on one batch thread, batched in one
  server process, and batched with the defaults
  (`serving.batching.BatchingParameters`, a server process per core); and
  the pushed `retrieval` (top-1000 with titles) in one process and as it
  ships. The Python clients
  (`bench.serving_load`) check every answer's k ids meanwhile.
- Hot swap (`bench.serving_swap`): the first request to a freshly published
  version against the median, with and without its warm-up requests.
- ANN against exact (`bench.serving_ann`): recall@100 of the index's top-100
  against the exact top-100 and the speed-up, one query at a time (as a
  server searches) and in one batch, on the benchmark catalogue's item
  embeddings and on synthetic ones (1M, 5M; clustered like learned
  embeddings, plus an isotropic stress case).
- Index build time against catalogue size.

The towers are trained ones: the latest pushed to `--serving-dir`, by default
`outputs/serving`, where `mmse run` (`make run`) pushes; when that holds none,
`mmse run` first trains them on the embedded sample. They are linked, never
modified, into a scratch directory where a `retrieval` version with k = 100
over the benchmark catalogue is built beside them.
"""
import argparse
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

from bench import serving_ann
from bench import serving_generators
from bench import serving_limit
from bench import serving_load
from tfx_pipeline import serve_process
from bench import serving_report
from bench import serving_swap
from contracts import catalog as catalog_lib
from contracts import serving_layout
from evaluation import metrics
from retrieval import ann
from retrieval.config import IndexConfig
from serving import batch_retrieve
from serving import indexing

_REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = _REPO.parent / "shared" / "data" / "homedepot"
DEFAULT_RESULTS_DIR = _REPO / "bench" / "results"
# `mmse run`'s default --output, from the repository root, and its serving dir.
DEFAULT_RUN_OUTPUT = _REPO / "outputs"
DEFAULT_SERVING_DIR = DEFAULT_RUN_OUTPUT / "serving"
TABLE_FILE = "serving.md"
JSON_FILE = "serving.json"
K = 100
SECTIONS = ("limit", "plans", "load", "swap", "ann", "build")
APIS = ("grpc", "rest")
# Servers compared under load: name -> `mmse serve` flags (a batching
# parameters file is written for the one that names it).
DEFAULT_SERVER = serving_report.DEFAULT_SERVER
ONE_BATCH_THREAD = "batched, 1 batch thread"
ONE_PROCESS = "batched, 1 process"
SERVERS = {
    "unbatched": (),
    ONE_BATCH_THREAD: ("--enable_batching", "--batching_parameters_file"),
    ONE_PROCESS: ("--enable_batching", "--server_processes", "1"),
    DEFAULT_SERVER: ("--enable_batching",),
}
TOWERS = (serving_layout.QUERY_TOWER, serving_layout.ITEM_TOWER)


def _has_towers(serving_dir: str) -> bool:
  return all(serving_layout.versions(os.path.join(serving_dir, name))
             for name in TOWERS)


def trained_serving_dir(serving_dir: Optional[str]) -> str:
  """The pushed dir whose towers to benchmark.

  `--serving-dir` when given; else `outputs/serving`, after running
  `mmse run` on the embedded sample if it holds no towers yet.
  """
  if serving_dir:
    return serving_dir
  if not _has_towers(str(DEFAULT_SERVING_DIR)):
    logging.info("No towers under %s: training them with `mmse run` on the "
                 "embedded sample (minutes)", DEFAULT_SERVING_DIR)
    subprocess.run([sys.executable, "-m", "tfx_pipeline.cli", "run",
                    "--output", str(DEFAULT_RUN_OUTPUT)],
                   env={**os.environ, "PYTHONPATH": str(_REPO)}, check=True)
    if not _has_towers(str(DEFAULT_SERVING_DIR)):
      raise FileNotFoundError(
          f"`mmse run` pushed no towers to {DEFAULT_SERVING_DIR} (was the "
          "model blessed?); pass --serving-dir")
  return str(DEFAULT_SERVING_DIR)


def prepare_serving_dir(work_dir: str, catalog_csv: str, kind: str,
                        pushed_dir: str) -> Dict[str, object]:
  """Links the latest pushed towers into `work_dir`, builds a top-K index."""
  for name in TOWERS:
    version_dir = serving_layout.latest_version_dir(pushed_dir, name)
    os.makedirs(os.path.join(work_dir, name))
    os.symlink(os.path.abspath(version_dir),
               os.path.join(work_dir, name, os.path.basename(version_dir)))
  started = time.monotonic()
  version = indexing.build_index(work_dir, catalog_csv, kind=kind, k=K)
  return {"towers": f"pushed towers from {pushed_dir}",
          "retrieval_version": version, "index_kind": kind,
          "mmse_index_seconds": round(time.monotonic() - started, 1)}


def read_query_texts(path: Optional[str], catalog: catalog_lib.Catalog,
                     limit: int = 2000) -> List[str]:
  """Distinct benchmark queries, or title prefixes when none are given."""
  if path:
    queries = list(dict.fromkeys(q for q in batch_retrieve.read_queries(path)
                                 if q.strip()))
  else:
    titles = catalog.titles
    rng = np.random.default_rng(0)
    queries = [" ".join(str(titles[i]).split()[:3])
               for i in rng.choice(len(titles), min(limit, len(titles)),
                                   replace=False)]
  if not queries:
    raise ValueError(f"{path}: no queries")
  return queries[:limit]


def read_judgments(path: str) -> Optional[metrics.Judgments]:
  """The judgments in `path` when it is a judgments CSV, else None."""
  try:
    return metrics.read_judgments(path)
  except (OSError, ValueError):
    return None


def _ints(text: str) -> List[int]:
  return [int(x) for x in text.split(",") if x.strip()]


def _server_flags(name: str, work_dir: str) -> List[str]:
  flags = list(SERVERS[name])
  if "--batching_parameters_file" in flags:
    path = os.path.join(work_dir, "one_batch_thread.config")
    with open(path, "w", encoding="utf-8") as f:
      f.write("num_batch_threads { value: 1 }\n")
    flags.append(path)
  return flags


def load_section(serving_dir: str, pushed_dir: str, work_dir: str,
                 queries: List[str], args) -> Dict[str, object]:
  """Each server of SERVERS under h2load (and the default under wrk and the
  Python clients' check), then the pushed `retrieval` at 8 connections."""
  missing = serving_generators.missing_tools()
  if missing:
    raise FileNotFoundError(
        f"the load generators are missing: apt-get install {' '.join(missing)}"
        " (`make bench-serving` installs them)")
  stamp = serving_report.section_stamp()
  duration, warmup = int(args.duration), int(args.warmup)
  rows, checks = [], []
  apis = args.apis.split(",")
  for name in SERVERS:
    with serve_process.running_server(
        serving_dir, flags=_server_flags(name, work_dir)) as endpoints:
      load = dict(server_pid=endpoints.pid, metrics_url=endpoints.rest_url)
      for clients in _ints(args.clients):
        if "grpc" in apis:
          rows.append({"server": name, "k": K, **serving_generators.h2load_grpc(
              endpoints.grpc_address, queries, clients, duration, warmup,
              **load)})
        if "rest" in apis and name == DEFAULT_SERVER:
          rows.append({"server": name, "k": K, **serving_generators.wrk_rest(
              endpoints.rest_url, queries, clients, duration, warmup,
              **load)})
      if name == DEFAULT_SERVER:
        checks = [serving_load.load_test(
            endpoints.grpc_address if api == "grpc" else endpoints.rest_url,
            queries, 8, args.check_seconds, 1.0, K, api=api)
                  for api in apis]
  pushed_k = serving_generators.served_k(pushed_dir)
  for name in (ONE_PROCESS, DEFAULT_SERVER):
    with serve_process.running_server(
        pushed_dir, flags=_server_flags(name, work_dir)) as endpoints:
      rows.append({"server": name, "k": pushed_k,
                   **serving_generators.h2load_grpc(
                       endpoints.grpc_address, queries, 8, duration, warmup,
                       server_pid=endpoints.pid,
                       metrics_url=endpoints.rest_url)})
  return {**stamp, "rows": rows, "python_check": checks}


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--serving-dir",
                      help="A pushed serving dir whose towers to use "
                      f"(default: {DEFAULT_SERVING_DIR}, made by `mmse run` "
                      "on the embedded sample when empty).")
  parser.add_argument("--catalog",
                      default=str(DEFAULT_DATA_DIR / "catalog.csv"))
  parser.add_argument("--queries",
                      default=str(DEFAULT_DATA_DIR / "dev_judgments.csv"),
                      help="CSV with a query column, or one query a line.")
  parser.add_argument("--sections", default=",".join(SECTIONS),
                      help="Parts to run (load, ann, build); the others are "
                      "kept from the existing serving.json.")
  parser.add_argument("--kind", default=IndexConfig.kind, choices=ann.KINDS,
                      help="Index the server answers through.")
  parser.add_argument("--duration", type=int, default=10,
                      help="Seconds of each load, after its warm-up.")
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--check-seconds", type=float, default=3.0,
                      help="Seconds the Python clients check answers.")
  parser.add_argument("--clients", default="1,8,32")
  parser.add_argument("--batch-sizes", default="1,8,32",
                      help="Batch sizes of the in-process limit.")
  parser.add_argument("--apis", default=",".join(APIS))
  parser.add_argument("--synthetic-sizes", default="1000000,5000000")
  parser.add_argument("--isotropic-sizes", default="1000000")
  parser.add_argument("--build-sizes", default="100000,300000",
                      help="Extra synthetic sizes timed for index build only.")
  parser.add_argument("--faiss-max-items", type=int, default=1_000_000)
  parser.add_argument("--dim", type=int, default=64,
                      help="Dimension of the synthetic embeddings.")
  parser.add_argument("--single-queries", type=int, default=200)
  parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR))
  return parser


def main(argv=None) -> int:
  parser = _parser()
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
  results.update(environment=serving_report.environment(), k=K)
  catalog = catalog_lib.read_catalog(args.catalog)
  results["catalog_items"] = len(catalog)

  if sections & {"limit", "plans", "load", "swap", "ann"}:
    queries = read_query_texts(
        args.queries if os.path.exists(args.queries) else None, catalog)
    pushed_dir = trained_serving_dir(args.serving_dir)
    work_dir = tempfile.mkdtemp(prefix="mmse-bench-serving-")
    try:
      serving_dir = os.path.join(work_dir, "serving")
      results["setup"] = prepare_serving_dir(serving_dir, args.catalog,
                                             args.kind, pushed_dir)
      if "limit" in sections:
        stamp = serving_report.section_stamp()
        results["limit"] = {
            **stamp,
            "rows": serving_limit.in_process_limit(
                serving_dir, queries, _ints(args.batch_sizes)),
            "parts_ms": serving_limit.request_parts(serving_dir, queries[0]),
            **serving_limit.index_quality(serving_dir, queries,
                                          read_judgments(args.queries)),
        }
      if "plans" in sections:
        stamp = serving_report.section_stamp()
        results["plans"] = {**stamp, "rows": serving_ann.catalogue_plans(
            serving_dir, queries, read_judgments(args.queries), K)}
      if "load" in sections:
        results["load"] = load_section(serving_dir, pushed_dir, work_dir,
                                       queries, args)
      if "swap" in sections:
        with serve_process.running_server(serving_dir) as endpoints:
          if "swap" in sections:
            stamp = serving_report.section_stamp()
            results["swap"] = {**stamp, "rows": [
                serving_swap.hot_swap(endpoints.grpc_address, serving_dir,
                                      queries, with_warmup)
                for with_warmup in (False, True, False, True)]}
      if "ann" in sections:
        ann_stamp = serving_report.section_stamp()
        ann_rows = [serving_ann.catalogue_ann_vs_exact(
            serving_dir, queries, K, args.single_queries)]
    finally:
      shutil.rmtree(work_dir, ignore_errors=True)
    if "ann" in sections:
      results["ann"] = {**ann_stamp, "rows": ann_rows + (
          serving_ann.synthetic_ann_vs_exact(
              _ints(args.synthetic_sizes), _ints(args.isotropic_sizes),
              args.dim, K, args.faiss_max_items, args.single_queries))}
  if "build" in sections:
    stamp = serving_report.section_stamp()
    results["build"] = {**stamp, "rows": serving_ann.build_times(
        _ints(args.build_sizes), args.dim, K)}

  os.makedirs(args.results_dir, exist_ok=True)
  with open(json_path, "w", encoding="utf-8") as f:
    json.dump(results, f, indent=2, default=str)
  table = serving_report.render(results)
  with open(os.path.join(args.results_dir, TABLE_FILE), "w",
            encoding="utf-8") as f:
    f.write(table)
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
