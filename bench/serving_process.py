"""`mmse serve` in a process of its own, as a user runs it."""
import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import Iterator

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc

from contracts import serving_layout

_REPO = pathlib.Path(__file__).resolve().parents[1]
_HOST = "127.0.0.1"


def free_port() -> int:
  with socket.socket() as s:
    s.bind((_HOST, 0))
    return s.getsockname()[1]


def start_server(serving_dir: str, port: int) -> subprocess.Popen:
  """Runs `mmse serve --model-base-path serving_dir --port port`."""
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(_REPO)}
  return subprocess.Popen([
      sys.executable, "-m", "tfx_pipeline.cli", "serve", "--model-base-path",
      serving_dir, "--host", _HOST, "--port", str(port)
  ], env=env)


def wait_until_serving(address: str, process: subprocess.Popen,
                       timeout_s: float = 600) -> None:
  """Returns once `retrieval` has an AVAILABLE version; raises if the server
  exits or does not get there in time."""
  deadline = time.monotonic() + timeout_s
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = serving_layout.RETRIEVAL
  available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
  with grpc.insecure_channel(address) as channel:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    while time.monotonic() < deadline:
      if process.poll() is not None:
        raise RuntimeError(f"the server exited with {process.returncode}")
      try:
        statuses = stub.GetModelStatus(request, timeout=5).model_version_status
        if any(s.state == available for s in statuses):
          return
      except grpc.RpcError:
        pass  # Not listening yet.
      time.sleep(0.5)
  raise TimeoutError(
      f"{address} did not serve {serving_layout.RETRIEVAL} in time")


@contextlib.contextmanager
def running_server(serving_dir: str) -> Iterator[str]:
  """Serves `serving_dir` on a free port; yields its address, then stops it."""
  port = free_port()
  address = f"{_HOST}:{port}"
  process = start_server(serving_dir, port)
  try:
    wait_until_serving(address, process)
    yield address
  finally:
    process.terminate()
    process.wait(60)
