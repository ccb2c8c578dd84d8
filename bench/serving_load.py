"""Closed-loop gRPC load on `retrieval`: latency percentiles and queries/s."""
import asyncio
import logging
import os
import time
from typing import Dict, List, Sequence

import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contracts import serving_layout
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


def load_test(address: str, queries: Sequence[str], clients: int,
              duration_s: float, warmup_s: float, k: int) -> Dict[str, object]:
  """Closed-loop clients, each on its own channel, one query per call.

  The clients are coroutines on one asyncio loop (grpc.aio), the leanest
  Python client, since they share the cores with the server. Latency is
  measured around each Predict; calls started in the warm-up are not
  counted, and neither is a call still running when the time is up. A
  response without `k` item ids is a failure.
  """
  requests = predict_requests(queries)
  latencies, failures = [], []

  async def client(index, start, measure_from, end):
    async with grpc.aio.insecure_channel(address) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      await channel.channel_ready()
      await asyncio.sleep(max(0.0, start - time.monotonic()))
      i = index * _CLIENT_STRIDE
      while True:
        sent = time.monotonic()
        if sent >= end:
          return
        try:
          response = await stub.Predict(requests[i % len(requests)],
                                        timeout=30)
          item_ids = tensor_codec.to_ndarray(
              response.outputs[serving_layout.ITEM_IDS_OUTPUT])
          problem = None if item_ids.shape == (1, k) else "bad response"
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
  result = summarize(latencies, failures, clients, duration_s)
  logging.info("Load with %d clients: %s", clients, result)
  return result
