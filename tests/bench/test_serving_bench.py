"""The serving benchmark's parts run end to end on toy towers (briefly)."""
import os
import shutil

import pytest

from bench import serving_ann
from bench import serving_generators
from bench import serving_limit
from bench import serving_load
from bench import serving_report
from bench import serving_swap
from contracts import serving_layout
from serving import batching
from serving import server
from tests.fixtures import toy_serving

QUERIES = list(toy_serving.TITLES.values())


def test_limit_load_swap_and_report(serving_dir, tmp_path):
  limit = serving_limit.in_process_limit(serving_dir, QUERIES, [1, 4],
                                         seconds=0.2)
  assert [row["batch"] for row in limit] == [1, 4]
  assert all(row["tower_and_index"]["qps"] > 0 for row in limit)
  assert all(row["tower_and_index"]["cores"] > 0 for row in limit)
  parts = serving_limit.request_parts(serving_dir, QUERIES[0], repeats=5)
  assert set(parts) == {"grpc_decode", "tower", "index", "grpc_encode",
                        "rest_decode", "rest_encode"}
  assert all(row["index_all_cores"]["qps"] > 0 for row in limit)
  judgments = {title: {item_id: 3.0}
               for item_id, title in toy_serving.TITLES.items()}
  quality = serving_limit.index_quality(serving_dir, QUERIES, judgments)
  k = toy_serving.K
  assert set(quality) == {f"index_recall@{k}", f"judged_recall@{k}_index",
                          f"judged_recall@{k}_exact"}
  assert all(0.0 <= value <= 1.0 for value in quality.values())
  plans = serving_ann.catalogue_plans(serving_dir, QUERIES, judgments, k,
                                      batch=2, seconds=0.1)
  assert [p["plan"] for p in plans] == ["exact", "faiss", "scann",
                                        "scann, partitioned"]
  assert plans[0][f"recall@{k}"] == 1.0
  assert all(p["qps"] > 0 and 0.0 <= p[f"judged_recall@{k}"] <= 1.0
             for p in plans)

  swap_dir = str(tmp_path / "swap")
  shutil.copytree(serving_dir, swap_dir, symlinks=True)
  serving_layout.write_models_config(swap_dir)  # Its own base paths.
  running = server.start(swap_dir, server.ServerOptions(
      port=0, rest_port=0, poll_interval_s=0.1))
  try:
    rows = [serving_load.load_test(
        running.address if api == "grpc" else running.rest_url, QUERIES, 2,
        0.5, 0.2, toy_serving.K, api=api, metrics_url=running.rest_url)
            for api in ("grpc", "rest")]
    swap = serving_swap.hot_swap(running.address, swap_dir, QUERIES,
                                 with_warmup=False, settle_s=0.3)
  finally:
    running.stop()
  for row in rows:
    assert row["requests"] > 0 and row["failed"] == 0
    # Every request ran in some batch of the server's.
    batches = row["server_batches"]
    assert 1 <= batches["batches"] and batches["mean_batch_rows"] >= 1
    rows_run = batches["batches"] * batches["mean_batch_rows"]
    assert rows_run >= row["requests"] - 0.01 * batches["batches"]
    assert batches["model_ms_per_batch"] > 0
  assert swap["version"] == 3 and swap["first_new_ms"] > 0

  results = {
      "environment": serving_report.environment(), "k": toy_serving.K,
      "catalog_items": len(toy_serving.TITLES),
      "limit": {**serving_report.section_stamp(), "rows": limit,
                "parts_ms": parts, **quality},
      "plans": {**serving_report.section_stamp(), "rows": plans},
      "load": {**serving_report.section_stamp(),
               "rows": [{"server": serving_report.DEFAULT_SERVER, "k": k,
                         **row} for row in rows],
               "python_check": rows},
      "swap": {**serving_report.section_stamp(), "rows": [swap]},
  }
  table = serving_report.render(results)
  assert f"| batched | rest | {k} | 2 |" in table
  assert f"| batched | grpc | {k} | 2 |" in table
  assert f"every answer carries {k} ids (Python grpc clients" in table
  assert "Inside the server, from its metrics" in table
  assert "Requests across a hot swap" in table
  assert "| scann, partitioned |" in table
  assert "by exact search" in table and "Index q/s, every core" in table


@pytest.mark.skipif(bool(serving_generators.missing_tools()),
                    reason="h2load or wrk is not installed")
def test_c_generators_load_the_server(serving_dir):
  running = server.start(serving_dir, server.ServerOptions(
      port=0, rest_port=0,
      batching_parameters=batching.BatchingParameters()))
  try:
    rows = [serving_generators.h2load_grpc(
        running.address, QUERIES, 2, 1, 1, server_pid=os.getpid(),
        metrics_url=running.rest_url),
            serving_generators.wrk_rest(
                running.rest_url, QUERIES, 2, 1, 1,
                metrics_url=running.rest_url)]
  finally:
    running.stop()
  for row in rows:
    assert row["requests"] > 0 and row["failed"] == 0, row
    assert 0 < row["p50_ms"] <= row["p99_ms"] and row["mean_ms"] > 0
    # Every request ran in some batch of the server's.
    batches = row["server_batches"]
    assert batches["batches"] * batches["mean_batch_rows"] >= row["requests"]
  assert rows[0]["server_cores"] > 0

