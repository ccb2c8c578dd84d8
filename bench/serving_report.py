"""The serving benchmark's Markdown report, from its JSON results."""
from importlib import metadata
import json
import os
import platform
import time
from typing import Dict, List

import faiss
import grpc
import tensorflow as tf

# Targets from the serving issue.
TARGET_P99_MS_AT_8 = 20.0
TARGET_QPS = 300.0
TARGET_RECALL = 0.95
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


def _render_load(load: Dict[str, object], k: int) -> List[str]:
  rows = load["rows"]
  lines = [
      f"## gRPC query -> top-{k} (`mmse serve`, ANN index)", "",
      _stamp(load) + f" Closed-loop clients, {rows[0]['seconds']:.0f} s "
      "each after a warm-up, one query per Predict call; the response "
      f"carries {k} ids, scores and titles. The clients (grpc.aio, one "
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
      "Regenerate with `python -m bench.serving` (`--sections` reruns a "
      "part, `--serving-dir` names the pushed towers, by default those "
      "`mmse run` pushed to outputs/serving).", ""
  ]
  if "load" in results:
    lines += _render_load(results["load"], k)
  if "ann" in results:
    lines += _render_ann(results["ann"], k)
  lines += _render_build(results)
  lines.append("Environment: " + ", ".join(
      f"{name} {value}" for name, value in env.items() if name != "cpus"))
  return "\n".join(lines) + "\n"
