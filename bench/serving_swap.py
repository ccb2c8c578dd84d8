"""Requests across a hot swap, with and without warm-up requests.

While one client sends single-query requests back to back, a new
`retrieval` version is published (a copy of the served one, with or without
its warm-up file). The latency of the first request the new version
answers, and the slowest request of the whole swap, against the median
before it, say what a user arriving just after a push sees.
"""
import os
import shutil
import threading
import time
from typing import Dict, Sequence

import grpc
import numpy as np
from tensorflow_serving.apis import prediction_service_pb2_grpc

from bench import serving_load
from tfx_pipeline import serve_process
from contracts import serving_layout
from contracts import serving_warmup


def _publish_copy(serving_dir: str, with_warmup: bool) -> int:
  source = serving_layout.latest_version_dir(serving_dir,
                                             serving_layout.RETRIEVAL)

  def write(staging):
    shutil.copytree(source, staging)
    if not with_warmup and os.path.exists(serving_warmup.path(staging)):
      os.remove(serving_warmup.path(staging))

  return serving_layout.publish_release(serving_dir,
                                        {serving_layout.RETRIEVAL: write})


def hot_swap(address: str, serving_dir: str, queries: Sequence[str],
             with_warmup: bool, settle_s: float = 2.0) -> Dict[str, object]:
  """Latencies (ms) of a steady stream of requests across one swap."""
  requests = serving_load.predict_requests(queries[:500])
  calls = []  # (latency ms, version that answered)
  stop = threading.Event()
  with grpc.insecure_channel(address) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def stream():
      i = 0
      while not stop.is_set():
        sent = time.perf_counter()
        response = stub.Predict(requests[i % len(requests)], timeout=60)
        calls.append((1000 * (time.perf_counter() - sent),
                      response.model_spec.version.value))
        i += 1

    client = threading.Thread(target=stream)
    client.start()
    try:
      time.sleep(settle_s)
      before = len(calls)
      version = _publish_copy(serving_dir, with_warmup)
      serve_process.wait_until_available(address, version=version,
                                           timeout_s=120, interval_s=0.005)
      time.sleep(settle_s)
    finally:
      stop.set()
      client.join()
  steady = np.median([ms for ms, _ in calls[:before]])
  new = [ms for ms, v in calls if v == version]
  return {"warmup": with_warmup, "version": version,
          "median_before_ms": round(float(steady), 2),
          "first_new_ms": round(new[0], 2),
          "median_new_ms": round(float(np.median(new)), 2),
          "slowest_during_swap_ms": round(max(
              ms for ms, _ in calls[before:]), 2),
          "first_over_median": round(new[0] / steady, 2)}
