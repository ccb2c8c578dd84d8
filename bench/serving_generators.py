"""Load on `mmse serve` from C generators: `h2load` for gRPC, `wrk` for REST.

Python clients cost the shared cores more CPU per request than the server's
own work, so the figures the serving targets name come from these (Debian's
`nghttp2-client` and `wrk`). Each generator keeps one request in flight per
connection (closed loop) for a fixed time after a warm-up.

- gRPC: h2load posts a prebuilt gRPC frame (a length-prefixed serialized
  `PredictRequest`) as an HTTP/2 POST with `content-type: application/grpc`.
  h2load posts one body per process, so each connection is an h2load
  process of its own with the body of a different real query; per-request
  times come from its `--log-file`. A gRPC error is an HTTP 200 whose
  trailers carry the status, with no message: failures are the requests
  whose answers did not add up to messages of the expected size.
- REST: wrk runs a Lua script that posts TF Serving JSON, rotating over the
  queries (one body per query), and prints its latency distribution.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from bench import serving_load
from contracts import serving_layout

TOOLS = {"h2load": "nghttp2-client", "wrk": "wrk"}
_PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"

_WRK_SCRIPT = """
local bodies, n = {}, 0
for line in io.lines(os.getenv("MMSE_WRK_BODIES")) do
  n = n + 1
  bodies[n] = line
end
local i = tonumber(os.getenv("MMSE_WRK_OFFSET") or "0")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function request()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i % n) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "errors": %d, "mean_us": %f, "p50_us": %d, '
    .. '"p99_us": %d, "duration_us": %d}\\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99),
    summary.duration))
end
"""


def missing_tools() -> List[str]:
  """The Debian packages of the generators not on PATH."""
  return [package for tool, package in TOOLS.items()
          if shutil.which(tool) is None]


def grpc_frame(query: str) -> bytes:
  """A `retrieval` Predict for one query as gRPC sends it: a flag byte (not
  compressed), the length, the serialized message."""
  message = serving_load.predict_requests([query])[0].SerializeToString()
  return struct.pack(">BI", 0, len(message)) + message


def _answer_bytes(address: str, query: str) -> int:
  """Bytes of the DATA frames of one successful answer to `query`."""
  import grpc  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  with grpc.insecure_channel(address) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(serving_load.predict_requests([query])[0],
                            timeout=30)
  return 5 + response.ByteSize()


def _server_cpu(server_pid: Optional[int]) -> Optional[float]:
  return serving_load.process_cpu_seconds(server_pid) if server_pid else None


def _finish(row: Dict[str, object], server_pid: Optional[int],
            cpu_before: Optional[float], wall: float,
            metrics_url: Optional[str], scraped) -> Dict[str, object]:
  if server_pid:
    row["server_cores"] = round(
        (_server_cpu(server_pid) - cpu_before) / wall, 2)
    row["server_rss_mib"] = round(serving_load.process_rss_mib(server_pid))
  if scraped is not None:
    row["server_batches"] = serving_load.batch_breakdown(
        scraped, serving_load.scrape_metrics(metrics_url))
  row["load_average"] = round(os.getloadavg()[0], 1)
  return row


def h2load_grpc(address: str, queries: Sequence[str], connections: int,
                duration_s: int, warmup_s: int,
                server_pid: Optional[int] = None,
                metrics_url: Optional[str] = None) -> Dict[str, object]:
  """`connections` h2load processes, one connection and one query each."""
  chosen = [queries[(i * 7919) % len(queries)] for i in range(connections)]
  sizes = {q: _answer_bytes(address, q) for q in set(chosen)}
  work = tempfile.mkdtemp(prefix="mmse-h2load-")
  try:
    commands = []
    for i, query in enumerate(chosen):
      body = os.path.join(work, f"{i}.bin")
      with open(body, "wb") as f:
        f.write(grpc_frame(query))
      commands.append([
          "h2load", "-c1", "-m1", "-D", str(duration_s), "--warm-up-time",
          str(warmup_s), "-H", "content-type: application/grpc", "-H",
          "te: trailers", "-d", body, "--log-file",
          os.path.join(work, f"{i}.log"), f"http://{address}{_PREDICT_PATH}"
      ])
    scraped = serving_load.scrape_metrics(metrics_url) if metrics_url else None
    cpu_before = _server_cpu(server_pid)
    started = time.monotonic()
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for c in commands]
    outputs = [p.communicate()[0] for p in processes]
    wall = time.monotonic() - started
    requests, failed, micros = 0, 0, []
    for i, (query, output) in enumerate(zip(chosen, outputs)):
      done = re.search(r"requests: .*? (\d+) succeeded, (\d+) failed, "
                       r"(\d+) errored", output)
      data = re.search(r"traffic: .*?\((\d+)\) data", output)
      if not (done and data):
        raise RuntimeError(f"h2load said: {output[-500:]}")
      succeeded = int(done.group(1))
      # Answers without a message are gRPC errors.
      answered = round(int(data.group(1)) / sizes[query])
      requests += succeeded
      failed += (int(done.group(2)) + int(done.group(3)) +
                 max(0, succeeded - answered))
      log = os.path.join(work, f"{i}.log")
      if os.path.getsize(log):
        # start (us since epoch), status, us to the end of the answer, of
        # the requests after the warm-up.
        micros.append(np.loadtxt(log, usecols=2, ndmin=1))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  millis = np.concatenate(micros) / 1000 if micros else np.zeros(1)
  row = {"api": "grpc", "generator": "h2load", "clients": connections,
         "seconds": duration_s, "requests": requests, "failed": failed,
         "qps": round(requests / duration_s, 1),
         "mean_ms": round(float(millis.mean()), 2),
         "p50_ms": round(float(np.percentile(millis, 50)), 2),
         "p99_ms": round(float(np.percentile(millis, 99)), 2)}
  return _finish(row, server_pid, cpu_before, wall, metrics_url, scraped)


def wrk_rest(rest_url: str, queries: Sequence[str], connections: int,
             duration_s: int, warmup_s: int,
             server_pid: Optional[int] = None,
             metrics_url: Optional[str] = None) -> Dict[str, object]:
  """wrk on `connections` connections, rotating over `queries` (a warm-up
  run first, not counted)."""
  work = tempfile.mkdtemp(prefix="mmse-wrk-")
  try:
    script = os.path.join(work, "predict.lua")
    with open(script, "w", encoding="utf-8") as f:
      f.write(_WRK_SCRIPT)
    bodies = os.path.join(work, "bodies.jsonl")
    with open(bodies, "w", encoding="utf-8") as f:
      f.writelines(json.dumps({"instances": [q]}) + "\n" for q in queries)
    url = f"{rest_url}/v1/models/{serving_layout.RETRIEVAL}:predict"
    env = {**os.environ, "MMSE_WRK_BODIES": bodies}
    threads = str(min(2, connections))

    def run(seconds):
      return subprocess.run(
          ["wrk", "-t", threads, "-c", str(connections), "-d", f"{seconds}s",
           "--latency", "-s", script, url], env=env, check=True,
          capture_output=True, text=True).stdout

    run(warmup_s)
    scraped = serving_load.scrape_metrics(metrics_url) if metrics_url else None
    cpu_before = _server_cpu(server_pid)
    started = time.monotonic()
    output = run(duration_s)
    wall = time.monotonic() - started
  finally:
    shutil.rmtree(work, ignore_errors=True)
  summary = json.loads(next(line for line in output.splitlines()
                            if line.startswith('{"requests"')))
  seconds = summary["duration_us"] / 1e6
  row = {"api": "rest", "generator": "wrk", "clients": connections,
         "seconds": duration_s, "requests": summary["requests"],
         "failed": summary["errors"],
         "qps": round(summary["requests"] / seconds, 1),
         "mean_ms": round(summary["mean_us"] / 1000, 2),
         "p50_ms": round(summary["p50_us"] / 1000, 2),
         "p99_ms": round(summary["p99_us"] / 1000, 2)}
  return _finish(row, server_pid, cpu_before, wall, metrics_url, scraped)


def served_k(serving_dir: str) -> int:
  """Items per query of the latest `retrieval` in a serving dir."""
  from serving import servables  # pylint: disable=g-import-not-at-top
  version_dir = serving_layout.latest_version_dir(serving_dir,
                                                  serving_layout.RETRIEVAL)
  signature = servables.read_signature_defs(version_dir)[
      serving_layout.SERVING_SIGNATURE]
  return signature.outputs[serving_layout.ITEM_IDS_OUTPUT].tensor_shape.dim[
      -1].size
