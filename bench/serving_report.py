"""The serving benchmark's Markdown report, from its JSON results."""
import functools
from importlib import metadata
import json
import os
import platform
import time
from typing import Dict, List, Optional

import faiss
import grpc
import tensorflow as tf

# Targets from the serving issues.
TARGET_INDEX_QPS_AT_8 = 5000.0
TARGET_QPS_AT_8 = 1500.0
TARGET_MEAN_MS_AT_8 = 5.0
TARGET_P99_MS_AT_8 = 10.0
TARGET_QPS_AT_32 = 2000.0
TARGET_CORES_AT_32 = 1.8
TARGET_PUSHED_QPS_AT_8 = 1000.0
TARGET_MEAN_MS_AT_1 = 1.2
TARGET_REST_GAP = 0.2
TARGET_RECALL = 0.95
# The server the targets are read on (bench.serving's SERVERS).
DEFAULT_SERVER = "batched"
TARGET_SPEEDUP = 5.0


def environment() -> Dict[str, object]:
  """Cores and library versions the numbers were measured with."""
  return {
      "cpus": os.cpu_count(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "scann": metadata.version("scann"),
      "faiss": faiss.__version__,
      "grpcio": grpc.__version__,
  }


def section_stamp() -> Dict[str, object]:
  """When a section was measured, and how busy the machine was then."""
  return {"date": time.strftime("%Y-%m-%d %H:%M"),
          "load_average": round(os.getloadavg()[0], 1)}


def _mark(ok: bool) -> str:
  return "met" if ok else "NOT met"


def _stamp(section: Dict[str, object]) -> str:
  return (f"Measured {section['date']}, load average "
          f"{section['load_average']} at start (other work shares the "
          "cores).")


def _limit_at(results: Dict[str, object], batch: int):
  rows = results.get("limit", {}).get("rows", [])
  return next((r for r in rows if r["batch"] == batch), None)


def _render_limit(results: Dict[str, object], k: int) -> List[str]:
  limit = results["limit"]
  lines = [
      f"## The model's own limit: query -> top-{k} in process", "",
      _stamp(limit) + " The `retrieval` servable the server loads (query "
      "tower, then the index search), called on one thread at a fixed "
      "batch size (*cores*: the process's CPU seconds per second, as the "
      "tower and the index spread over threads), and the tower and the "
      "index alone; the index searches "
      "on as many threads as one batch of the batched server (`ServerOptions.run_options`), "
      "and on every core in the last column. Recall@"
      f"{k} of the index against exact search on these queries: "
      f"{limit.get(f'index_recall@{k}', 'not measured')}" +
      (f"; Recall@{k} of the judged items "
       f"{limit[f'judged_recall@{k}_index']} through the index, "
       f"{limit[f'judged_recall@{k}_exact']} by exact search"
       if f"judged_recall@{k}_index" in limit else "") + ".", "",
      "| Batch | Tower + index q/s | ms/batch | Cores | Tower q/s | "
      "Index q/s | Index q/s, every core |",
      "|---:|---:|---:|---:|---:|---:|---:|"
  ]
  missing = {"qps": float("nan")}
  for r in limit["rows"]:
    index = r["index"] or missing
    all_cores = r.get("index_all_cores") or missing
    lines.append(f"| {r['batch']} | {r['tower_and_index']['qps']:,.0f} | "
                 f"{r['tower_and_index']['ms_per_batch']:.2f} | "
                 f"{r['tower_and_index'].get('cores', '-')} | "
                 f"{r['tower']['qps']:,.0f} | {index['qps']:,.0f} | "
                 f"{all_cores['qps']:,.0f} |")
  at8 = _limit_at(results, 8)
  recall = limit.get(f"index_recall@{k}")
  if at8 and at8["index"]:
    lines.append("")
    for label, measured in (("as served", at8["index"]),
                            ("every core", at8.get("index_all_cores"))):
      if not measured:
        continue
      met = (measured["qps"] >= TARGET_INDEX_QPS_AT_8 and
             (recall or 0) >= TARGET_RECALL)
      lines.append(
          f"- index search at batch 8 ({label}) >= "
          f"{TARGET_INDEX_QPS_AT_8:,.0f} queries/s with recall@{k} >= "
          f"{TARGET_RECALL}: {_mark(met)} ({measured['qps']:,.0f} "
          f"queries/s, recall@{k} "
          f"{recall if recall is not None else 'not measured'})")
  parts = limit.get("parts_ms")
  if parts:
    lines += ["", "One single-query request's parts, each timed alone (ms): "
              + ", ".join(f"{name} {value:.3f}" for name, value in
                          parts.items()) + "."]
  return lines + [""]


def _render_plans(section: Dict[str, object], k: int) -> List[str]:
  rows = section["rows"]
  judged = f"judged_recall@{k}" in rows[0]
  lines = [
      "## Index plans on the served embeddings", "",
      _stamp(section) + " Each plan built over the served item embeddings "
      "and searched in one process on one thread, queries in batches of "
      f"{rows[0]['batch']}. *Recall@{k}*: share of the exact top-{k} "
      "found" + ("; *judged*: Recall@{k} and NDCG@10 of the judged queries "
                 "(items graded 2.5 or more) through the plan".format(k=k)
                 if judged else "") + ". *scann, partitioned* is ScaNN's "
      "plan above 250,000 items (and the default before), searching 30% of "
      "about 2 sqrt(N) partitions.", "",
      f"| Plan | Build s | Recall@{k} | "
      + (f"Judged Recall@{k} | Judged NDCG@10 | " if judged else "")
      + "Queries/s | Parameters |",
      "|---|---:|---:|" + ("---:|---:|" if judged else "") + "---:|---|",
  ]
  for r in rows:
    lines.append(
        f"| {r['plan']} | {r['build_s']} | {r[f'recall@{k}']} | "
        + (f"{r[f'judged_recall@{k}']} | {r['judged_ndcg@10']} | "
           if judged else "")
        + f"{r['qps']:,} | `{json.dumps(r['params'])}` |")
  return lines + [""]


def _row(rows: List[Dict[str, object]], server: str, api: str, k: int,
         clients: int) -> Optional[Dict[str, object]]:
  return next((r for r in rows if r.get("server") == server and
               r["api"] == api and r["k"] == k and r["clients"] == clients),
              None)


def _targets(rows: List[Dict[str, object]], k: int) -> List[str]:
  """The serving targets, on the default (batched) server's rows."""
  lines = []
  row = functools.partial(_row, rows, DEFAULT_SERVER)
  at8 = row("grpc", k, 8)
  if at8:
    ok = (at8["qps"] >= TARGET_QPS_AT_8 and
          at8["mean_ms"] <= TARGET_MEAN_MS_AT_8 and
          at8["p99_ms"] <= TARGET_P99_MS_AT_8 and at8["failed"] == 0)
    lines.append(
        f"- top-{k}, 8 connections (h2load): >= {TARGET_QPS_AT_8:,.0f} "
        f"queries/s, mean <= {TARGET_MEAN_MS_AT_8:.0f} ms, p99 <= "
        f"{TARGET_P99_MS_AT_8:.0f} ms, 0 failed: {_mark(ok)} "
        f"({at8['qps']:,.0f}/s, mean {at8['mean_ms']:.2f} ms, p99 "
        f"{at8['p99_ms']:.2f} ms, {at8['failed']} failed)")
  at32 = row("grpc", k, 32)
  if at32:
    ok = (at32["qps"] >= TARGET_QPS_AT_32 and
          at32.get("server_cores", 0) >= TARGET_CORES_AT_32)
    lines.append(
        f"- top-{k}, 32 connections: >= {TARGET_QPS_AT_32:,.0f} queries/s "
        f"on >= {TARGET_CORES_AT_32} server cores: {_mark(ok)} "
        f"({at32['qps']:,.0f}/s, {at32.get('server_cores', '-')} cores)")
  pushed = next((r for r in rows if r.get("server") == DEFAULT_SERVER and
                 r["api"] == "grpc" and r["k"] != k and r["clients"] == 8),
                None)
  if pushed:
    ok = pushed["qps"] >= TARGET_PUSHED_QPS_AT_8 and pushed["failed"] == 0
    lines.append(
        f"- the pushed top-{pushed['k']}, 8 connections: >= "
        f"{TARGET_PUSHED_QPS_AT_8:,.0f} queries/s, 0 failed: {_mark(ok)} "
        f"({pushed['qps']:,.0f}/s, {pushed['failed']} failed)")
  at1 = row("grpc", k, 1)
  if at1:
    lines.append(
        f"- top-{k}, 1 connection: mean <= {TARGET_MEAN_MS_AT_1} ms: "
        f"{_mark(at1['mean_ms'] <= TARGET_MEAN_MS_AT_1)} "
        f"({at1['mean_ms']:.2f} ms)")
  rest8 = row("rest", k, 8)
  if rest8 and at8:
    ratio = rest8["qps"] / at8["qps"]
    lines.append(
        f"- REST (wrk) at 8 connections within {TARGET_REST_GAP:.0%} of "
        f"gRPC: {_mark(ratio >= 1 - TARGET_REST_GAP)} ({ratio:.0%} of "
        "gRPC's queries/s)")
  return lines


def _render_load(results: Dict[str, object], k: int) -> List[str]:
  load = results["load"]
  rows = load["rows"]
  lines = [
      f"## Through `mmse serve`: query -> top-{k} (ANN index)", "",
      _stamp(load) + f" C load generators, one request in flight per "
      f"connection, {rows[0]['seconds']:.0f} s each after a warm-up: h2load "
      "posting gRPC Predict (one h2load process per connection, each with "
      "the request of a different real query) and wrk posting TF Serving "
      "JSON (rotating over the queries). They run on the same cores as the "
      "server. *Server*: `mmse serve` without batching (TF Serving's "
      "default), with `--enable_batching` and `num_batch_threads` 1 (one "
      "batch at a time, on every core), with `--enable_batching` in one "
      "process (`--server_processes 1`), and with `--enable_batching` as it "
      "ships (one server process per core); the answer carries k ids, "
      "scores and titles. *Cores*: the server's CPU seconds per second, "
      "all its processes. *CPU ms/query*: its CPU per answered query. "
      "*MiB*: its resident memory, all its processes. *Share of limit*: "
      "queries/s over the in-process limit at a batch as large as the "
      "number of connections.", "",
      "| Server | API | Top-k | Connections | Requests | Failed | "
      "Queries/s | Share of limit | Mean ms | p50 ms | p99 ms | "
      "Server cores | CPU ms/query | MiB |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  ]
  for r in rows:
    limit = _limit_at(results, r["clients"]) if r["k"] == k else None
    share = (f"{r['qps'] / limit['tower_and_index']['qps']:.0%}"
             if limit else "-")
    lines.append(
        f"| {r['server']} | {r['api']} | {r['k']} | {r['clients']} | "
        f"{r['requests']:,} | {r['failed']} | {r['qps']:,.0f} | {share} | "
        f"{r['mean_ms']:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
        f"{r.get('server_cores', '-')} | {_cpu_ms_per_query(r)} | "
        f"{r.get('server_rss_mib', '-')} |")
  lines += _render_batches(rows)
  lines += [""] + _targets(rows, k)
  for check in load.get("python_check", []):
    lines.append(
        f"- every answer carries {k} ids (Python {check['api']} clients, "
        f"{check['clients']} at once, {check['seconds']:.0f} s): "
        f"{_mark(check['failed'] == 0)} ({check['requests']:,} answers, "
        f"{check['failed']} failed)")
  return lines + [""]


def _cpu_ms_per_query(row: Dict[str, object]) -> str:
  if "server_cores" not in row or not row["qps"]:
    return "-"
  return f"{row['server_cores'] * 1000 / row['qps']:.2f}"


def _render_batches(rows: List[Dict[str, object]]) -> List[str]:
  """Where the server's time went under each load, from its metrics."""
  measured = [r for r in rows if r.get("server_batches", {}).get("batches")]
  if not measured:
    return []
  lines = [
      "", "Inside the server, from its metrics (`GET "
      "/monitoring/prometheus/metrics`, warm-up included): the `retrieval` "
      "batches each load ran, their mean rows, and the milliseconds a batch "
      "took in the model, of which in the query tower and in the index "
      "search.", "",
      "| Server | API | Top-k | Connections | Batches | Mean rows | "
      "Model ms/batch | Tower ms | Index ms |",
      "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  ]
  for r in measured:
    b = r["server_batches"]
    lines.append(
        f"| {r['server']} | {r['api']} | {r['k']} | {r['clients']} | "
        f"{b['batches']:,} | {b['mean_batch_rows']:.2f} | "
        f"{b['model_ms_per_batch']:.2f} | {b['tower_ms_per_batch']:.2f} | "
        f"{b['index_ms_per_batch']:.2f} |")
  return lines


def _render_swap(swap: Dict[str, object]) -> List[str]:
  lines = [
      "## Requests across a hot swap", "",
      _stamp(swap) + " One client sends single-query requests back to "
      "back while a copy of the served `retrieval` version is published, "
      "with or without its `tf_serving_warmup_requests`; the server loads "
      "it, replays the warm-up, collects garbage and swaps it in.", "",
      "| Warm-up requests | Median before ms | First on the new version ms | "
      "First / median | Median on the new version ms | Slowest during the "
      "swap ms |", "|---|---:|---:|---:|---:|---:|"
  ]
  for r in swap["rows"]:
    lines.append(f"| {'replayed' if r['warmup'] else 'none'} | "
                 f"{r['median_before_ms']:.2f} | {r['first_new_ms']:.2f} | "
                 f"{r['first_over_median']:.1f}x | {r['median_new_ms']:.2f} "
                 f"| {r['slowest_during_swap_ms']:.2f} |")
  return lines + [""]


def _render_ann(section: Dict[str, object], k: int) -> List[str]:
  recall = f"recall@{k}"
  lines = [
      "## ANN against exact search", "",
      _stamp(section) + f" Recall@{k} = share of the exact top-{k} the "
      "index returns. Speed-up = exact time / index time per query, for one "
      "query per call (as the server searches) and for all queries in one "
      "call. Exact search is a NumPy matrix product + partial sort "
      "(multi-threaded BLAS); ScaNN searches on one thread. Synthetic "
      "embeddings are unit vectors: *clustered* around 2 sqrt(N) centres "
      "with queries near items (as learned embeddings cluster by category), "
      "or *isotropic* (uniform on the sphere, the hardest case for "
      "partitioning).", "",
      f"| Items | Embeddings | Index | Build s | Recall@{k} | ms/query "
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
          f"| {r[recall]:.3f} | {r['single_ms']:.3f} | "
          f"{r['speedup_single']:.1f}x | {r['batched_ms']:.3f} | "
          f"{r['speedup_batched']:.1f}x |")
  target = next((r["indexes"].get("scann") for r in section["rows"]
                 if r["items"] == 1_000_000 and r["dataset"] == "clustered"),
                None)
  if target:
    ok = (target[recall] >= TARGET_RECALL and
          target["speedup_single"] >= TARGET_SPEEDUP)
    lines += ["", f"- ScaNN at 1M: {recall} >= {TARGET_RECALL} at >= "
              f"{TARGET_SPEEDUP:.0f}x faster than exact: {_mark(ok)} "
              f"({target[recall]:.3f} at {target['speedup_single']:.1f}x"
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
  """The whole report: setup, then each section the results hold."""
  env = results["environment"]
  setup = results.get("setup", {})
  k = results["k"]
  lines = [
      "# Serving benchmark", "",
      f"{env['cpus']} CPU cores; {setup.get('towers', 'no towers')}; "
      f"catalogue of {results['catalog_items']:,} items; top-{k}. "
      "Regenerate with `make bench-serving` (it installs the load "
      "generators, h2load and wrk, when missing), or `python -m "
      "bench.serving` (`--sections` reruns a part, `--serving-dir` names "
      "the pushed towers, by default those `mmse run` pushed to "
      "outputs/serving; through make, `BENCH_ARGS=\"...\"`).", ""
  ]
  if "limit" in results:
    lines += _render_limit(results, k)
  if "plans" in results:
    lines += _render_plans(results["plans"], k)
  if "load" in results:
    lines += _render_load(results, k)
  if "swap" in results:
    lines += _render_swap(results["swap"])
  if "ann" in results:
    lines += _render_ann(results["ann"], k)
  lines += _render_build(results)
  lines.append("Environment: " + ", ".join(
      f"{name} {value}" for name, value in env.items() if name != "cpus"))
  return "\n".join(lines) + "\n"
