"""The serving benchmark's parts run end to end on toy towers (briefly)."""
import shutil

from bench import serving_ann
from bench import serving_limit
from bench import serving_load
from bench import serving_report
from bench import serving_swap
from contracts import serving_layout
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
      "load": {**serving_report.section_stamp(), "rows": rows},
      "swap": {**serving_report.section_stamp(), "rows": [swap]},
  }
  table = serving_report.render(results)
  assert "| rest | 2 |" in table and "| grpc | 2 |" in table
  assert "Inside the server, from its metrics" in table
  assert "Requests across a hot swap" in table
  assert "| scann, partitioned |" in table
  assert "by exact search" in table and "Index q/s, every core" in table


def test_the_cpu_budget_adds_the_model_and_the_clients_at_the_target_rate():
  at8 = {"qps": 500.0, "client_cores": 0.2, "server_cores": 1.0}
  limit = {"tower_and_index": {"qps": 2000.0, "cores": 1.6}}
  [line] = serving_report._cpu_budget(at8, limit, cpus=2)
  # 0.8 ms of model and 0.4 ms of client per query at 70% of 2,000/s.
  assert "the server 2.00 ms, the clients 0.40 ms" in line
  assert "at batch 8 0.80 ms" in line and "(1,400 queries/s)" in line
  assert "would take 1.7 of the machine's 2 cores" in line
  assert serving_report._cpu_budget(at8, {"tower_and_index": {
      "qps": 2000.0}}, cpus=2) == []
