"""One push is one unit: readers see all of its models' versions or none,
and a push killed at any point leaves nothing a reader or server takes."""
import os
import shutil
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contracts import serving_layout
from serving import server
from serving import tensor_codec
from tests.fixtures import toy_serving

MODELS = serving_layout.SERVED_MODELS
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Pushes copies of version 1 of every model as the pusher does, pausing at
# the point named by argv[2] until it is killed.
_PUSH = r"""
import os, shutil, sys, time
from contracts import serving_layout
serving_dir, pause_at = sys.argv[1], sys.argv[2]

def pause(point):
  if point == pause_at:
    print("PAUSED", flush=True)
    time.sleep(600)

def write(name):
  def fill(staging):
    pause(f"writing {name}")
    shutil.copytree(os.path.join(serving_dir, name, "1"), staging)
  return fill

finish = serving_layout._finish_push
def finish_after_pause(marker):
  pause("finishing")
  finish(marker)
serving_layout._finish_push = finish_after_pause
serving_layout.publish_release(
    serving_dir, {name: write(name) for name in serving_layout.SERVED_MODELS})
print("DONE", flush=True)
"""


@pytest.fixture
def pushed_once(serving_dir, tmp_path):
  """A serving dir whose three models are all at version 1."""
  directory = str(tmp_path / "serving")
  for name in MODELS:
    shutil.copytree(serving_layout.latest_version_dir(serving_dir, name),
                    os.path.join(directory, name, "1"))
  serving_layout.write_models_config(directory)
  return directory


def _copy_version_one(directory):
  return {name: (lambda staging, name=name: shutil.copytree(
      os.path.join(directory, name, "1"), staging)) for name in MODELS}


def test_a_push_publishes_one_version_of_every_model(pushed_once):
  assert serving_layout.publish_release(
      pushed_once, _copy_version_one(pushed_once)) == 2
  assert toy_serving.served_versions(pushed_once) == {
      name: [1, 2] for name in MODELS}
  assert not serving_layout.pending_versions(pushed_once)
  assert serving_layout.latest_release_dirs(pushed_once) == {
      name: os.path.join(pushed_once, name, "2")
      for name in (serving_layout.QUERY_TOWER, serving_layout.ITEM_TOWER)}


def test_readers_ignore_a_version_while_its_push_is_pending(pushed_once):
  # The query tower of version 2 has landed, its item tower not yet.
  shutil.copytree(os.path.join(pushed_once, "query_tower", "1"),
                  os.path.join(pushed_once, "query_tower", "2"))
  assert serving_layout.latest_release_dirs(pushed_once)[
      serving_layout.ITEM_TOWER].endswith(os.path.join("item_tower", "1"))
  open(os.path.join(pushed_once, ".push-2.pending"), "w").close()
  assert serving_layout.versions(
      os.path.join(pushed_once, "query_tower")) == [1]
  assert serving_layout.latest_version_dir(
      pushed_once, "query_tower").endswith(os.path.join("query_tower", "1"))


def test_a_failed_push_leaves_nothing(pushed_once):
  writes = _copy_version_one(pushed_once)

  def fail(staging):
    os.makedirs(staging)
    raise OSError("disk full")

  writes[serving_layout.RETRIEVAL] = fail
  with pytest.raises(OSError, match="disk full"):
    serving_layout.publish_release(pushed_once, writes)
  assert sorted(os.listdir(pushed_once)) == sorted([*MODELS, "models.config"])
  for name in MODELS:
    assert os.listdir(os.path.join(pushed_once, name)) == ["1"]


def _predict(stub, model, text):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  request.inputs["query"].CopyFrom(tensor_codec.from_ndarray(
      np.asarray([text], dtype=object)))
  return stub.Predict(request, timeout=10)


@pytest.mark.parametrize("pause_at", ["writing query_tower",
                                      "writing retrieval", "finishing"])
def test_a_killed_push_is_never_seen_and_the_next_one_cleans_up(
    pushed_once, pause_at):
  running = server.start(pushed_once, server.ServerOptions(
      port=0, rest_port=None, poll_interval_s=0.1))
  try:
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      push = subprocess.Popen(
          [sys.executable, "-c", _PUSH, pushed_once, pause_at],
          stdout=subprocess.PIPE, text=True, cwd=ROOT)
      try:
        assert push.stdout.readline().strip() == "PAUSED"
      finally:
        push.send_signal(signal.SIGKILL)
        push.wait()
      assert serving_layout.pending_versions(pushed_once) == {2}
      # What has landed of version 2 stays hidden from every reader ...
      assert toy_serving.served_versions(pushed_once) == {
          name: [1] for name in MODELS}
      time.sleep(0.5)  # ... and from the server, polling all along.
      for model in (serving_layout.QUERY_TOWER, serving_layout.RETRIEVAL):
        assert _predict(stub, model, "cordless drill").model_spec.version \
            .value == 1
      # The next push removes the leftovers and lands whole.
      assert serving_layout.publish_release(
          pushed_once, _copy_version_one(pushed_once)) == 2
      assert not serving_layout.pending_versions(pushed_once)
      for name in MODELS:
        assert sorted(os.listdir(os.path.join(pushed_once, name))) == [
            "1", "2"]
      deadline = time.monotonic() + 10
      while _predict(stub, serving_layout.RETRIEVAL,
                     "cordless drill").model_spec.version.value != 2:
        assert time.monotonic() < deadline, "version 2 never served"
        time.sleep(0.1)
  finally:
    running.stop()
