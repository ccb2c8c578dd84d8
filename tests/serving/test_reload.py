"""Hot reload under load: new versions swap in with zero failed requests."""
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import batching
from serving import indexing
from serving import server
from serving import tensor_codec
from tests.fixtures import toy_serving

TITLES = toy_serving.TITLES


class _Load:
  """Threads sending retrieval queries back to back until stopped."""

  def __init__(self, address, queries, threads=4):
    self.failures = []
    self.answers = []  # (version, query, top item id)
    self._queries = queries
    self._stop = threading.Event()
    self._channel = grpc.insecure_channel(address)
    self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
        self._channel)
    self._threads = [threading.Thread(target=self._loop, args=(i,))
                     for i in range(threads)]

  def _loop(self, offset):
    i = offset
    while not self._stop.is_set():
      query = self._queries[i % len(self._queries)]
      i += 1
      request = predict_pb2.PredictRequest()
      request.model_spec.name = "retrieval"
      request.inputs["query"].CopyFrom(tensor_codec.from_ndarray(
          np.asarray([query], dtype=object)))
      try:
        response = self._stub.Predict(request, timeout=10)
      except grpc.RpcError as e:
        self.failures.append(e)
        continue
      top = tensor_codec.to_ndarray(response.outputs["item_ids"])[0, 0]
      self.answers.append((response.model_spec.version.value, query, top))

  def versions(self):
    return {v for v, _, _ in self.answers}

  def wait_for_version(self, version, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      if version in self.versions():
        return
      time.sleep(0.1)
    raise AssertionError(f"version {version} never answered; saw "
                         f"{self.versions()}")

  def __enter__(self):
    for t in self._threads:
      t.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    for t in self._threads:
      t.join(30)
    self._channel.close()


def _status(channel, version):
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = "retrieval"
  request.model_spec.version.value = version
  stub = model_service_pb2_grpc.ModelServiceStub(channel)
  return stub.GetModelStatus(request).model_version_status[0]


@pytest.fixture
def serving_dir(tmp_path):
  """A directory of its own: the test adds versions to it."""
  catalog = toy_serving.write_catalog(tmp_path / "catalog.csv")
  directory = str(tmp_path / "serving")
  toy_serving.write_serving_dir(directory, catalog, kind="scann", k=3)
  return directory


def test_hot_reload_under_load(serving_dir, tmp_path):
  # Batched, as `mmse serve --enable_batching` serves: swaps under merged
  # batches lose no request either.
  running = server.start(serving_dir, server.ServerOptions(
      port=0, poll_interval_s=0.1,
      batching_parameters=batching.BatchingParameters()))
  address = f"127.0.0.1:{running.port}"
  retrieval = os.path.join(serving_dir, "retrieval")
  queries = ["cordless drill kit", "red claw hammer", "led light bulb"]
  try:
    with _Load(address, queries) as load, grpc.insecure_channel(
        address) as channel:
      load.wait_for_version(2)
      # A version still being copied (no saved_model.pb yet) and one whose
      # graph is garbage: both ignored, version 2 keeps answering.
      os.makedirs(os.path.join(retrieval, "5", "variables"))
      os.makedirs(os.path.join(retrieval, "6"))
      with open(os.path.join(retrieval, "6", "saved_model.pb"), "wb") as f:
        f.write(b"\x00not a SavedModel")
      time.sleep(1.0)
      failed = _status(channel, 6)
      assert failed.state == get_model_status_pb2.ModelVersionStatus.END
      assert failed.status.error_message
      assert load.versions() == {2}

      # A changed catalogue, re-indexed while the load runs.
      catalog = toy_serving.write_catalog(
          tmp_path / "catalog2.csv", {**TITLES, 200: "cordless drill kit"})
      new_version = indexing.build_index(serving_dir, catalog, kind="faiss",
                                         k=3)
      assert new_version == 7
      load.wait_for_version(7)
      # An index-less copy of it: served through the exact SavedModel.
      shutil.copytree(os.path.join(retrieval, "7"),
                      os.path.join(retrieval, ".8.incomplete"))
      shutil.rmtree(os.path.join(retrieval, ".8.incomplete", "assets.extra"))
      os.rename(os.path.join(retrieval, ".8.incomplete"),
                os.path.join(retrieval, "8"))
      load.wait_for_version(8)
      time.sleep(0.3)
  finally:
    running.stop()
  assert not load.failures, load.failures[:3]
  tops = {(v, q): top for v, q, top in load.answers}
  assert tops[(2, "red claw hammer")] == b"SKU-101"
  assert tops[(7, "cordless drill kit")] == b"200"
  assert tops[(8, "cordless drill kit")] == b"200"
  assert 2 not in {v for v, _, _ in load.answers[-20:]}
