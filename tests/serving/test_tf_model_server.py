"""The pushed directory under real TF Serving, when its binary is installed.

Skipped where `tensorflow_model_server` is not on PATH (no binary ships with
pip); CI images that have it (tensorflow/serving) run it.
"""
import shutil
import socket
import subprocess
import time

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc

from serving import client
from tests.fixtures import toy_serving

BINARY = shutil.which("tensorflow_model_server")
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="tensorflow_model_server is not on PATH")


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _wait_until_available(address, names, timeout_s=120):
  deadline = time.monotonic() + timeout_s
  with grpc.insecure_channel(address) as channel:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    for name in names:
      while True:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        try:
          states = [s.state for s in
                    stub.GetModelStatus(request).model_version_status]
          if get_model_status_pb2.ModelVersionStatus.AVAILABLE in states:
            break
        except grpc.RpcError:
          pass
        if time.monotonic() > deadline:
          raise AssertionError(f"{name} never became available")
        time.sleep(0.5)


def test_tensorflow_model_server_serves_the_pushed_directory(tmp_path):
  catalog = toy_serving.write_catalog(tmp_path / "catalog.csv")
  serving_dir = str(tmp_path / "serving")
  toy_serving.write_serving_dir(serving_dir, catalog, kind="scann", k=3,
                                dim=8, buckets=64)
  port = _free_port()
  process = subprocess.Popen([
      BINARY, f"--port={port}",
      f"--model_config_file={serving_dir}/models.config",
      "--file_system_poll_wait_seconds=1"
  ])
  address = f"127.0.0.1:{port}"
  try:
    _wait_until_available(address, ["query_tower", "item_tower", "retrieval"])
    hits = client.query(address, "cordless drill", k=3)
  finally:
    process.terminate()
    process.wait(30)
  # The exact SavedModel answers; TF Serving has no titles to return.
  assert hits[0].item_id == 100 and hits[0].title is None
  assert hits[0].score == pytest.approx(1.0, abs=1e-5)
