"""Closed-loop load on `retrieval` over gRPC and REST: latency percentiles,
queries/s, the CPU the clients and the server used, and from the server's
metrics the batches it ran and where their time went."""
import asyncio
import contextlib
import functools
import json
import logging
import os
import time
import urllib.request
from typing import Callable, Dict, List, Optional, Sequence

import aiohttp
import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contracts import serving_layout
from serving import metrics
from serving import tensor_codec

# Clients walk the query list from places this far apart.
_CLIENT_STRIDE = 7919


def predict_requests(
    queries: Sequence[str]) -> List[predict_pb2.PredictRequest]:
  """One `retrieval` Predict per query."""
  requests = []
  for query in queries:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = serving_layout.RETRIEVAL
    request.inputs[serving_layout.QUERY_INPUT].CopyFrom(
        tensor_codec.from_ndarray(np.asarray([query], dtype=object)))
    requests.append(request)
  return requests


def summarize(latencies_s: Sequence[float], failures: Sequence[str],
              clients: int, duration_s: float) -> Dict[str, object]:
  """Requests, failures, queries/s and p50/p99/mean latency in ms."""
  if not latencies_s:
    raise RuntimeError(f"no request succeeded with {clients} clients; "
                       f"failures: {sorted(set(failures))[:3]}")
  millis = np.asarray(latencies_s) * 1000
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
  return result


def scrape_metrics(rest_url: str) -> Dict[tuple, float]:
  """The server's metrics (`serving.metrics`), by (sample name, labels)."""
  with urllib.request.urlopen(rest_url + metrics.PATH, timeout=30) as r:
    return metrics.samples(r.read().decode("utf-8"))


def batch_breakdown(before: Dict[tuple, float],
                    after: Dict[tuple, float]) -> Dict[str, float]:
  """The `retrieval` batches run between two scrapes: how many, their mean
  rows, and milliseconds a batch in the model, the query tower and the
  index."""
  grew = functools.partial(metrics.growth, before, after)
  batch = {"model": serving_layout.RETRIEVAL,
           "signature": serving_layout.SERVING_SIGNATURE}
  batches = grew("mmse_batch_rows_count", **batch)
  if not batches:
    return {"batches": 0}
  per_batch = lambda seconds: round(1000 * seconds / batches, 2)
  stage = lambda name: grew("mmse_retrieval_stage_seconds_total",
                            model=serving_layout.RETRIEVAL, stage=name)
  return {"batches": int(batches),
          "mean_batch_rows": round(grew("mmse_batch_rows_sum", **batch) /
                                   batches, 2),
          "model_ms_per_batch": per_batch(grew("mmse_batch_seconds_sum",
                                               **batch)),
          "tower_ms_per_batch": per_batch(stage(metrics.QUERY_TOWER_STAGE)),
          "index_ms_per_batch": per_batch(stage(metrics.INDEX_STAGE))}


def process_cpu_seconds(pid: int) -> float:
  """User + system CPU seconds a process and its live child processes (a
  server's `--server_processes`) have used (Linux /proc)."""
  with open(f"/proc/{pid}/stat", encoding="ascii") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return ((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") +
          sum(process_cpu_seconds(child) for child in _children(pid)))


def _children(pid: int) -> List[int]:
  with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
    return [int(child) for child in f.read().split()]


def process_rss_mib(pid: int) -> float:
  """Resident memory of a process and its child processes (Linux /proc)."""
  with open(f"/proc/{pid}/status", encoding="ascii") as f:
    kib = next(int(line.split()[1]) for line in f
               if line.startswith("VmRSS:"))
  return kib / 1024 + sum(process_rss_mib(child) for child in _children(pid))


async def _closed_loop(clients: int, duration_s: float, warmup_s: float,
                       open_client: Callable, latencies: List[float],
                       failures: List[str]) -> None:
  """Runs `clients` loops; `open_client()` is an async context manager
  yielding `call(i) -> problem or None`."""

  async def client(index, start, measure_from, end):
    async with open_client() as call:
      await asyncio.sleep(max(0.0, start - time.monotonic()))
      i = index * _CLIENT_STRIDE
      while True:
        sent = time.monotonic()
        if sent >= end:
          return
        problem = await call(i)
        done = time.monotonic()
        i += 1
        if sent >= measure_from and done <= end:
          if problem is None:
            latencies.append(done - sent)
          else:
            failures.append(problem)

  start = time.monotonic() + 1.0
  measure_from = start + warmup_s
  await asyncio.gather(*[
      client(i, start, measure_from, measure_from + duration_s)
      for i in range(clients)
  ])


def _grpc_client(address: str, requests: Sequence[predict_pb2.PredictRequest],
                 k: int):
  """`open_client` for gRPC: one channel, and connection, per client."""

  @contextlib.asynccontextmanager
  async def open_client():
    # Channels of one process share their connections unless told not to;
    # separate clients do not.
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      await channel.channel_ready()

      async def call(i):
        try:
          response = await stub.Predict(requests[i % len(requests)],
                                        timeout=30)
          item_ids = tensor_codec.to_ndarray(
              response.outputs[serving_layout.ITEM_IDS_OUTPUT])
          return None if item_ids.shape == (1, k) else "bad response"
        except grpc.RpcError as e:
          return f"{e.code().name}: {e.details()}"

      yield call

  return open_client


def _rest_client(url: str, queries: Sequence[str], k: int):
  """`open_client` for REST: one kept-alive connection per client."""
  path = f"{url}/v1/models/{serving_layout.RETRIEVAL}:predict"
  bodies = [json.dumps({"instances": [q]}) for q in queries]

  @contextlib.asynccontextmanager
  async def open_client():
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1)) as session:

      async def call(i):
        try:
          async with session.post(
              path, data=bodies[i % len(bodies)],
              headers={"Content-Type": "application/json"},
              timeout=aiohttp.ClientTimeout(total=30)) as response:
            body = await response.json()
            if response.status != 200:
              return f"HTTP {response.status}: {body.get('error')}"
            ids = body["predictions"][0][serving_layout.ITEM_IDS_OUTPUT]
            return None if len(ids) == k else "bad response"
        except aiohttp.ClientError as e:
          return f"{type(e).__name__}: {e}"

      yield call

  return open_client


def load_test(address: str, queries: Sequence[str], clients: int,
              duration_s: float, warmup_s: float, k: int,
              api: str = "grpc",
              server_pid: Optional[int] = None,
              metrics_url: Optional[str] = None) -> Dict[str, object]:
  """Closed-loop clients, each on its own connection, one query per call.

  The clients are coroutines on one asyncio loop (grpc.aio or aiohttp), the
  leanest Python clients, since they share the cores with the server.
  Latency is measured around each call; calls started in the warm-up are
  not counted, and neither is a call still running when the time is up. A
  response without `k` item ids is a failure. `address` is host:port for
  gRPC and the REST root URL for REST; `metrics_url`, the REST root URL
  whose metrics tell the server's batches (warm-up included).
  """
  latencies, failures = [], []
  open_client = (_grpc_client(address, predict_requests(queries), k)
                 if api == "grpc" else _rest_client(address, queries, k))
  cpu = {"client": time.process_time()}
  if server_pid:
    cpu["server"] = process_cpu_seconds(server_pid)
  scraped = scrape_metrics(metrics_url) if metrics_url else None
  started = time.monotonic()
  asyncio.run(_closed_loop(clients, duration_s, warmup_s, open_client,
                           latencies, failures))
  wall = time.monotonic() - started
  result = summarize(latencies, failures, clients, duration_s)
  result["api"] = api
  # Cores busy on average over the run (warm-up included).
  result["client_cores"] = round((time.process_time() - cpu["client"]) /
                                 wall, 2)
  if server_pid:
    result["server_cores"] = round(
        (process_cpu_seconds(server_pid) - cpu["server"]) / wall, 2)
  if scraped is not None:
    result["server_batches"] = batch_breakdown(scraped,
                                               scrape_metrics(metrics_url))
  logging.info("%s load with %d clients: %s", api, clients, result)
  return result
