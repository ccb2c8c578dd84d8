"""`mmse serve` in a process of its own, as a user runs it: the serving
chain's end-to-end tests and the serving benchmarks start it this way."""
import contextlib
import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Iterator, Optional, Sequence

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc

from contracts import serving_layout

_REPO = pathlib.Path(__file__).resolve().parents[1]
_HOST = "127.0.0.1"
# How the chain's tests and the benchmarks serve: batched, as in production.
BATCHED = ("--enable_batching",)


def free_port() -> int:
  with socket.socket() as s:
    s.bind((_HOST, 0))
    return s.getsockname()[1]


def start_server(serving_dir: str, port: int, rest_port: int = 0,
                 log_file=None,
                 flags: Sequence[str] = BATCHED) -> subprocess.Popen:
  """Runs `mmse serve --model-base-path serving_dir --port port` (REST on
  `rest_port`; 0 turns it off) with `flags`, its output to `log_file` when
  given."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(_REPO)}
  return subprocess.Popen([
      sys.executable, "-m", "tfx_pipeline.cli", "serve", "--model-base-path",
      serving_dir, "--host", _HOST, "--port", str(port), "--rest-port",
      str(rest_port), *flags
  ], env=env, stdout=log_file, stderr=subprocess.STDOUT if log_file else None)


def wait_until_available(address: str,
                         process: Optional[subprocess.Popen] = None,
                         version: Optional[int] = None,
                         timeout_s: float = 600,
                         interval_s: float = 0.5) -> None:
  """Returns once `retrieval` (that `version`, or any) is AVAILABLE; raises
  if the server process exits or it does not get there in time."""
  deadline = time.monotonic() + timeout_s
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = serving_layout.RETRIEVAL
  if version is not None:
    request.model_spec.version.value = version
  available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
  with grpc.insecure_channel(address) as channel:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    while time.monotonic() < deadline:
      if process is not None and process.poll() is not None:
        raise RuntimeError(f"the server exited with {process.returncode}")
      try:
        statuses = stub.GetModelStatus(request, timeout=5).model_version_status
        if any(s.state == available for s in statuses):
          return
      except grpc.RpcError:
        pass  # Not listening, or the version not listed, yet.
      time.sleep(interval_s)
  raise TimeoutError(f"{address} did not serve {serving_layout.RETRIEVAL}"
                     f"{f' version {version}' if version else ''} in time")


@dataclasses.dataclass(frozen=True)
class Endpoints:
  """Where a started `mmse serve` answers."""
  grpc_address: str  # host:port
  rest_url: str  # http://host:port
  pid: int
  log_path: Optional[str] = None  # The server's output, when kept.


@contextlib.contextmanager
def running_server(serving_dir: str, log_path: Optional[str] = None,
                   flags: Sequence[str] = BATCHED) -> Iterator[Endpoints]:
  """Serves `serving_dir` on free ports (`mmse serve` with `flags`); yields
  them, then stops it."""
  port, rest_port = free_port(), free_port()
  while rest_port == port:
    rest_port = free_port()
  address = f"{_HOST}:{port}"
  with contextlib.ExitStack() as stack:
    log_file = (stack.enter_context(open(log_path, "w", encoding="utf-8"))
                if log_path else None)
    process = start_server(serving_dir, port, rest_port, log_file, flags)
    try:
      wait_until_available(address, process)
      yield Endpoints(address, f"http://{_HOST}:{rest_port}", process.pid,
                      log_path)
    finally:
      process.terminate()
      process.wait(60)
