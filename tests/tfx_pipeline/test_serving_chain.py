"""From the pipeline to an answer: the pushed models through `mmse serve`.

The session's pipeline run pushed three models with warm-up requests; a
`mmse serve` process serves them, and the stock TF Serving gRPC stubs and a
plain HTTP client ask all three. The answers must equal what the same
SavedModels and `mmse retrieve` give without a server.
"""
import csv
import json
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfx_pipeline import serve_process
from contracts import catalog as catalog_lib
from contracts import serving_layout
from contracts import serving_warmup
from evaluation import metrics
from serving import tensor_codec

K = 20


@pytest.fixture(scope="module")
def served(pipeline_run):
  config, data_dir = pipeline_run
  log_path = os.path.join(os.path.dirname(config.serving_dir), "serve.log")
  with serve_process.running_server(config.serving_dir,
                                      log_path) as endpoints:
    yield config, data_dir, endpoints


@pytest.fixture(scope="module")
def queries(pipeline_run):
  _, data_dir = pipeline_run
  with open(os.path.join(data_dir, "judgments.csv"), encoding="utf-8") as f:
    texts = list(dict.fromkeys(row["query"] for row in csv.DictReader(f)))
  return texts[:12]


def _grpc_predict(address, model, inputs):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tensor_codec.from_ndarray(value))
  with grpc.insecure_channel(address) as channel:
    response = prediction_service_pb2_grpc.PredictionServiceStub(
        channel).Predict(request, timeout=60)
  return {name: tensor_codec.to_ndarray(t)
          for name, t in response.outputs.items()}


def _rest_predict(url, model, body):
  response = requests.post(f"{url}/v1/models/{model}:predict", json=body,
                           timeout=60)
  assert response.status_code == 200, response.text
  return response.json()


def _version_dir(config, model):
  return serving_layout.latest_version_dir(config.serving_dir, model)


@pytest.mark.e2e
def test_pushed_models_carry_warmup_requests_the_server_replays(served):
  config, _, endpoints = served
  with open(endpoints.log_path, encoding="utf-8") as f:
    log_text = f.read()
  for model in serving_layout.SERVED_MODELS:
    version_dir = _version_dir(config, model)
    path = serving_warmup.path(version_dir)
    records = list(tf.data.TFRecordDataset(path))
    assert records, path
    for record in records:
      log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
      assert log.predict_log.request.model_spec.name == model
    # Replayed before the version was made available.
    # Other tests of the session may have pushed versions since the first.
    version = os.path.basename(version_dir)
    assert (f"{model} version {version} loaded after {len(records)} "
            "warm-up requests") in log_text


@pytest.mark.e2e
def test_query_tower_over_grpc_and_rest_equals_the_saved_model(served,
                                                               queries):
  config, _, endpoints = served
  signature = tf.saved_model.load(_version_dir(
      config, serving_layout.QUERY_TOWER)).signatures["serving_default"]
  expected = signature(query=tf.constant(queries))["embedding"].numpy()
  over_grpc = _grpc_predict(endpoints.grpc_address, "query_tower",
                            {"query": np.asarray(queries, dtype=object)})
  np.testing.assert_allclose(over_grpc["embedding"], expected, atol=1e-5)
  over_rest = _rest_predict(endpoints.rest_url, "query_tower",
                            {"instances": queries})
  np.testing.assert_allclose(np.asarray(over_rest["predictions"]), expected,
                             atol=1e-5)


@pytest.mark.e2e
def test_item_tower_over_grpc_and_rest_equals_the_saved_model(served):
  config, _, endpoints = served
  catalog = catalog_lib.read_catalog(config.catalog_path)
  signature = tf.saved_model.load(_version_dir(
      config, serving_layout.ITEM_TOWER)).signatures["serving_default"]
  _, specs = signature.structured_input_signature
  rows = slice(0, 5)
  inputs = {name: np.asarray(catalog.columns[name][rows],
                             dtype=spec.dtype.as_numpy_dtype
                             if spec.dtype != tf.string else object)
            for name, spec in specs.items()}
  expected = signature(**{n: tf.constant(v, dtype=specs[n].dtype)
                          for n, v in inputs.items()})["embedding"].numpy()
  over_grpc = _grpc_predict(endpoints.grpc_address, "item_tower", inputs)
  np.testing.assert_allclose(over_grpc["embedding"], expected, atol=1e-5)
  instances = [{name: (value[i].decode() if isinstance(value[i], bytes)
                       else value[i].item() if hasattr(value[i], "item")
                       else value[i])
                for name, value in inputs.items()} for i in range(5)]
  over_rest = _rest_predict(endpoints.rest_url, "item_tower",
                            {"instances": instances})
  np.testing.assert_allclose(np.asarray(over_rest["predictions"]), expected,
                             atol=1e-5)


@pytest.mark.e2e
def test_served_top_k_equals_mmse_retrieve(served, queries, tmp_path):
  config, _, endpoints = served
  queries_file = tmp_path / "queries.txt"
  queries_file.write_text("\n".join(queries) + "\n", encoding="utf-8")
  out = tmp_path / "retrieved.jsonl"
  subprocess.run([sys.executable, "-m", "tfx_pipeline.cli", "retrieve",
                  "--serving-dir", config.serving_dir, "--queries",
                  str(queries_file), "-k", str(K), "--out", str(out)],
                 check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  offline = [json.loads(line) for line in out.read_text().splitlines()]
  assert [row["query"] for row in offline] == queries
  exact_ids = np.asarray([row["item_ids"] for row in offline])

  over_grpc = _grpc_predict(endpoints.grpc_address, "retrieval",
                            {"query": np.asarray(queries, dtype=object)})
  over_rest = _rest_predict(endpoints.rest_url, "retrieval",
                            {"inputs": {"query": queries}})["outputs"]
  # gRPC returns DT_STRING as bytes, REST as JSON text, `mmse retrieve`
  # as JSON text: the same ids.
  grpc_ids = np.asarray([[i.decode("utf-8") for i in row]
                         for row in over_grpc["item_ids"].tolist()])
  np.testing.assert_array_equal(np.asarray(over_rest["item_ids"]), grpc_ids)
  catalog_ids = set(catalog_lib.read_catalog(config.catalog_path)
                    .item_ids.tolist())
  assert set(grpc_ids.ravel()) <= catalog_ids
  assert set(np.asarray(exact_ids).ravel()) <= catalog_ids
  served_ids = grpc_ids[:, :K]
  # The server answers through the ANN index, `mmse retrieve` exactly.
  recall = metrics.index_recall(served_ids, exact_ids)
  print(f"served top-{K} against mmse retrieve: recall {recall:.4f}")
  assert recall >= 0.99
  np.testing.assert_allclose(over_grpc["scores"][:, 0],
                             [row["scores"][0] for row in offline], atol=1e-4)
  assert len(over_rest["titles"][0]) == over_grpc["item_ids"].shape[1]
