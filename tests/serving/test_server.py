"""The gRPC server: Predict per model, metadata, status, every bad request."""
import os
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import batching
from serving import server
from serving import tensor_codec
from tests.fixtures import toy_serving

TITLES = toy_serving.TITLES
DIM = toy_serving.DIM
K = toy_serving.K
LIMITS = dict(max_batch_rows=8, max_string_bytes=64,
              max_receive_message_bytes=64 * 1024)
# The shared server merges requests, as `mmse serve --enable_batching` does
# (tests/serving/test_rest.py's serves them one by one).
BATCHED = batching.BatchingParameters(num_batch_threads=2)


@pytest.fixture(scope="module")
def running(serving_dir):
  started = server.start(serving_dir, server.ServerOptions(
      port=0, batching_parameters=BATCHED, **LIMITS))
  yield started
  started.stop()


@pytest.fixture(scope="module")
def channel(running):
  with grpc.insecure_channel(f"127.0.0.1:{running.port}") as opened:
    yield opened


@pytest.fixture(scope="module")
def predict_stub(channel):
  return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _request(model, inputs, **spec):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  for key, value in spec.items():
    if key == "version":
      request.model_spec.version.value = value
    else:
      setattr(request.model_spec, key, value)
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(
        value if isinstance(value, type(request.inputs[name])) else
        tensor_codec.from_ndarray(value))
  return request


def _outputs(response):
  return {name: tensor_codec.to_ndarray(t)
          for name, t in response.outputs.items()}


def _texts(*values):
  return np.asarray(values, dtype=object)


def test_query_tower_normalises_case_and_spaces(predict_stub):
  response = predict_stub.Predict(_request(
      "query_tower", {"query": _texts("Cordless  DRILL", "cordless drill",
                                      "")}))
  embedding = _outputs(response)["embedding"]
  assert embedding.shape == (3, DIM) and embedding.dtype == np.float32
  np.testing.assert_allclose(embedding[0], embedding[1], atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(embedding[0]), 1.0, atol=1e-5)
  np.testing.assert_array_equal(embedding[2], np.zeros(DIM))
  assert response.model_spec.version.value == 1


def test_item_tower_embeds_titles_in_the_query_space(predict_stub):
  items = _outputs(predict_stub.Predict(_request(
      "item_tower", {"item_id": _texts("0100", "103"),
                     "title": _texts("cordless drill", "led light bulb")})))
  queries = _outputs(predict_stub.Predict(_request(
      "query_tower", {"query": _texts("cordless drill", "led light bulb")})))
  np.testing.assert_allclose(items["embedding"], queries["embedding"],
                             atol=1e-6)


def test_retrieval_answers_through_the_index(predict_stub, serving_dir):
  response = predict_stub.Predict(_request(
      "retrieval", {"query": _texts("cordless drill", "led light bulb")}))
  out = _outputs(response)
  assert response.model_spec.version.value == 2
  # A query equal to a title gets that item's unit embedding: score 1.0.
  assert out["item_ids"][:, 0].tolist() == [b"0100", b"103"]
  np.testing.assert_allclose(out["scores"][:, 0], [1.0, 1.0], atol=1e-5)
  assert out["titles"][0, 0] == b"cordless drill"
  assert out["titles"].shape == out["item_ids"].shape == (2, K)
  assert (np.diff(out["scores"], axis=1) <= 1e-6).all()
  # The exact SavedModel of the same version agrees.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  exact = tf.saved_model.load(os.path.join(serving_dir, "retrieval", "2"))
  expected = exact.signatures["serving_default"](
      query=tf.constant(["cordless drill", "led light bulb"]))
  np.testing.assert_array_equal(out["item_ids"], expected["item_ids"].numpy())
  np.testing.assert_allclose(out["scores"], expected["scores"].numpy(),
                             atol=1e-5)


def test_output_filter(predict_stub):
  response = predict_stub.Predict(_request(
      "retrieval", {"query": _texts("red hammer")}),)
  assert set(response.outputs) == {"item_ids", "scores", "titles"}
  request = _request("retrieval", {"query": _texts("red hammer")})
  request.output_filter.append("item_ids")
  assert set(predict_stub.Predict(request).outputs) == {"item_ids"}


def test_concurrent_requests_get_their_own_answers(predict_stub):
  titles = list(TITLES.items())
  failures, answers = [], {}

  def ask(item_id, title):
    try:
      out = _outputs(predict_stub.Predict(_request(
          "retrieval", {"query": _texts(title)})))
      answers[item_id] = out["item_ids"][0, 0].decode("utf-8")
    except grpc.RpcError as e:
      failures.append(e)

  threads = [threading.Thread(target=ask, args=pair) for pair in titles * 4]
  for t in threads:
    t.start()
  for t in threads:
    t.join(30)
  assert not failures
  assert answers == {item_id: item_id for item_id, _ in titles}


def test_metadata_reports_the_signatures(channel):
  stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  request = get_model_metadata_pb2.GetModelMetadataRequest()
  request.model_spec.name = "retrieval"
  request.metadata_field.append("signature_def")
  response = stub.GetModelMetadata(request)
  signatures = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(signatures)
  serving = signatures.signature_def["serving_default"]
  assert list(serving.inputs) == ["query"]
  assert serving.inputs["query"].dtype == types_pb2.DT_STRING
  assert set(serving.outputs) == {"item_ids", "scores", "titles"}
  assert [d.size for d in serving.outputs["item_ids"].tensor_shape.dim] == [
      -1, K]
  assert response.model_spec.version.value == 2


def test_model_status(channel):
  stub = model_service_pb2_grpc.ModelServiceStub(channel)
  for name, version in (("query_tower", 1), ("item_tower", 1),
                        ("retrieval", 2)):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    status = stub.GetModelStatus(request).model_version_status
    assert [(s.version, s.state) for s in status] == [
        (version, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = "ranker"
  with pytest.raises(grpc.RpcError) as error:
    stub.GetModelStatus(request)
  assert error.value.code() == grpc.StatusCode.NOT_FOUND


def _wrong_dtype():
  return {"query": np.array([1.0], dtype=np.float32)}


def _bad_content():
  proto = tensor_codec.from_ndarray(_texts("1", "2", "3"))
  proto.tensor_shape.dim[0].size = 2
  return {"item_id": proto, "title": _texts("a", "b")}


def _huge_shape():
  proto = tensor_codec.from_ndarray(_texts("x"))
  proto.tensor_shape.dim[0].size = 10**12  # One value fills any shape.
  return proto


NOT_FOUND, INVALID = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
BAD_REQUESTS = {
    "unknown model": ("ranker", {"query": _texts("x")}, {}, NOT_FOUND,
                      "no model named"),
    "unknown version": ("retrieval", {"query": _texts("x")}, {"version": 9},
                        NOT_FOUND, "Specific"),
    "version label": ("retrieval", {"query": _texts("x")},
                      {"version_label": "stable"}, NOT_FOUND, "label"),
    "unknown signature": ("retrieval", {"query": _texts("x")},
                          {"signature_name": "rank"}, NOT_FOUND, "rank"),
    "wrong dtype": ("retrieval", _wrong_dtype(), {}, INVALID, "DT_FLOAT"),
    "wrong shape": ("retrieval", {"query": np.full((1, 2), b"x", dtype=object)},
                    {}, INVALID, "shape"),
    "scalar": ("retrieval", {"query": np.asarray(b"x", dtype=object)}, {},
               INVALID, "shape"),
    "missing input": ("item_tower", {"item_id": _texts("1")}, {}, INVALID,
                      "missing ['title']"),
    "unexpected input": ("retrieval", {"query": _texts("x"),
                                       "user": _texts("u")}, {}, INVALID,
                         "unexpected ['user']"),
    "batch sizes differ": ("item_tower", {"item_id": _texts("1", "2"),
                                          "title": _texts("a")}, {}, INVALID,
                           "disagree"),
    "empty batch": ("retrieval", {"query": _texts()}, {}, INVALID, "empty"),
    "oversized batch": ("retrieval", {"query": _texts(*["x"] * 9)}, {},
                        INVALID, "at most 8"),
    "over-long query": ("retrieval", {"query": _texts("x" * 65)}, {}, INVALID,
                        "65-byte"),
    "not utf-8": ("retrieval", {"query": _texts(b"\xff\xfe")}, {}, INVALID,
                  "UTF-8"),
    "values unlike the shape": ("item_tower", _bad_content(), {}, INVALID,
                                "carries 3 values"),
    "huge shape, one value": ("retrieval", {"query": _huge_shape()}, {},
                              INVALID, "elements"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request(predict_stub, case):
  model, inputs, spec, code, message = BAD_REQUESTS[case]
  with pytest.raises(grpc.RpcError) as error:
    predict_stub.Predict(_request(model, inputs, **spec))
  assert error.value.code() == code
  assert message in error.value.details()


def test_unknown_output_and_metadata_field(predict_stub):
  request = _request("retrieval", {"query": _texts("x")})
  request.output_filter.append("prices")
  with pytest.raises(grpc.RpcError) as error:
    predict_stub.Predict(request)
  assert error.value.code() == INVALID and "prices" in error.value.details()
  metadata = get_model_metadata_pb2.GetModelMetadataRequest()
  metadata.model_spec.name = "retrieval"
  metadata.metadata_field.append("graph")
  with pytest.raises(grpc.RpcError) as error:
    predict_stub.GetModelMetadata(metadata)
  assert error.value.code() == INVALID


def test_oversized_message_is_refused_and_server_survives(predict_stub):
  with pytest.raises(grpc.RpcError) as error:
    predict_stub.Predict(_request("retrieval",
                                  {"query": _texts("x" * 100_000)}))
  assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
  out = _outputs(predict_stub.Predict(_request(
      "retrieval", {"query": _texts("copper pipe fitting")})))
  assert out["item_ids"][0, 0] == b"105"


def test_binds_loopback_and_refuses_a_taken_port(serving_dir, running):
  assert running.host == "127.0.0.1"
  with pytest.raises(OSError, match="Cannot bind"):
    server.start(serving_dir, server.ServerOptions(port=running.port))


# A client in its own process (grpc only, no TensorFlow: it starts in well
# under a second) sends a serialized Predict and is killed mid-call.
_RAW_CLIENT = """
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
print("sending", flush=True)
call(sys.stdin.buffer.read(), timeout=30)
"""


def test_client_disconnecting_mid_call(serving_dir):
  # Requests wait up to 2 s for batch-mates, so a lone call is mid-flight.
  slow = server.start(serving_dir, server.ServerOptions(
      port=0, batching_parameters=batching.BatchingParameters(
          batch_timeout_micros=2_000_000), **LIMITS))
  address = f"127.0.0.1:{slow.port}"
  try:
    request = _request("retrieval", {"query": _texts("red claw hammer")})
    process = subprocess.Popen(
        [sys.executable, "-c", _RAW_CLIENT, address], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE)
    process.stdin.write(request.SerializeToString())
    process.stdin.close()
    assert process.stdout.readline().strip() == b"sending"
    time.sleep(0.5)
    process.kill()  # The connection drops with the call in flight.
    process.wait(10)
    with grpc.insecure_channel(address) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      # A call cancelled by its client, in this process.
      future = stub.Predict.future(request)
      time.sleep(0.3)
      future.cancel()
      assert future.cancelled()
      # A deadline that runs out while the call waits.
      with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=0.3)
      assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
      out = _outputs(stub.Predict(request, timeout=10))
    assert out["item_ids"][0, 0] == b"SKU-101"
  finally:
    slow.stop()
