"""TF Serving's REST API: its documented calls, both JSON formats, every bad
request, with `requests` and with `curl`."""
import base64
import functools
import json
import shutil
import subprocess

import numpy as np
import pytest
import requests

from serving import batching
from serving import metrics
from serving import server
from tests.fixtures import toy_serving

K = toy_serving.K
DIM = toy_serving.DIM
LIMITS = dict(max_batch_rows=8, max_string_bytes=64,
              max_receive_message_bytes=64 * 1024)


@pytest.fixture(scope="module")
def url(serving_dir):
  started = server.start(serving_dir, server.ServerOptions(
      port=0, rest_port=0, **LIMITS))
  yield started.rest_url
  started.stop()


def _predict(url, model, body, version=None):
  path = f"/versions/{version}" if version is not None else ""
  return requests.post(f"{url}/v1/models/{model}{path}:predict",
                       data=body if isinstance(body, (str, bytes)) else
                       json.dumps(body), timeout=30)


def test_row_format_with_one_input(url):
  # As TF Serving's guide calls half_plus_two: a list of values, one a row.
  response = _predict(url, "retrieval",
                      {"instances": ["cordless drill", "led light bulb"]})
  assert response.status_code == 200
  predictions = response.json()["predictions"]
  assert len(predictions) == 2
  assert predictions[0]["item_ids"][0] == "0100"
  assert predictions[1]["item_ids"][0] == "103"
  assert predictions[0]["titles"][0] == "cordless drill"
  assert len(predictions[0]["scores"]) == K
  assert predictions[0]["scores"][0] == pytest.approx(1.0, abs=1e-5)


def test_row_format_with_named_inputs_and_one_output(url):
  response = _predict(url, "item_tower", {"instances": [
      {"item_id": "0100", "title": "cordless drill"},
      {"item_id": "103", "title": "led light bulb"}]})
  assert response.status_code == 200, response.text
  # One output: each prediction is the value itself.
  embeddings = np.asarray(response.json()["predictions"])
  assert embeddings.shape == (2, DIM)
  queries = np.asarray(_predict(url, "query_tower", {
      "instances": ["cordless drill", "led light bulb"]}).json()["predictions"])
  np.testing.assert_allclose(embeddings, queries, atol=1e-6)


def test_columnar_format(url):
  response = _predict(url, "retrieval", {
      "signature_name": "serving_default",
      "inputs": {"query": ["red claw hammer"]}})
  outputs = response.json()["outputs"]
  assert set(outputs) == {"item_ids", "scores", "titles"}
  assert outputs["item_ids"][0][0] == "SKU-101"
  lone = _predict(url, "query_tower", {"inputs": ["red claw hammer"]}).json()
  assert np.asarray(lone["outputs"]).shape == (1, DIM)


def test_b64_strings_and_an_explicit_version(url):
  text = base64.b64encode(b"copper pipe fitting").decode()
  response = _predict(url, "retrieval", {"instances": [{"b64": text}]},
                      version=2)
  assert response.json()["predictions"][0]["item_ids"][0] == "105"


def test_grpc_and_rest_give_the_same_answer(serving_dir, url):
  from serving import client  # pylint: disable=g-import-not-at-top
  running = server.start(serving_dir, server.ServerOptions(port=0))
  try:
    with client.RetrievalClient(running.address) as grpc_client:
      hits = grpc_client.search(["garden hose"])[0]
  finally:
    running.stop()
  rest = _predict(url, "retrieval", {"instances": ["garden hose"]}).json()
  assert [h.item_id for h in hits] == rest["predictions"][0]["item_ids"]
  np.testing.assert_allclose([h.score for h in hits],
                             rest["predictions"][0]["scores"], atol=1e-6)


def test_model_status_and_metadata(url):
  status = requests.get(f"{url}/v1/models/retrieval", timeout=30).json()
  assert status == {"model_version_status": [{
      "version": "2", "state": "AVAILABLE",
      "status": {"error_code": "OK", "error_message": ""}}]}
  one = requests.get(f"{url}/v1/models/query_tower/versions/1", timeout=30)
  assert one.json()["model_version_status"][0]["version"] == "1"
  metadata = requests.get(f"{url}/v1/models/retrieval/metadata",
                          timeout=30).json()
  assert metadata["model_spec"] == {"name": "retrieval", "signature_name": "",
                                    "version": "2"}
  serving = metadata["metadata"]["signature_def"]["signature_def"][
      "serving_default"]
  assert serving["inputs"]["query"]["dtype"] == "DT_STRING"
  assert set(serving["outputs"]) == {"item_ids", "scores", "titles"}
  versioned = requests.get(f"{url}/v1/models/retrieval/versions/2/metadata",
                           timeout=30)
  assert versioned.status_code == 200


BAD_REQUESTS = {
    "unknown model": ("ranker", {"instances": ["x"]}, 404, "no model named"),
    "unknown version": ("retrieval/versions/9", {"instances": ["x"]}, 404,
                        "Specific"),
    "version label": ("retrieval/labels/stable", {"instances": ["x"]}, 404,
                      "label"),
    "unknown signature": ("retrieval", {"signature_name": "rank",
                                        "instances": ["x"]}, 404, "rank"),
    "wrong dtype": ("retrieval", {"instances": [1.5]}, 400, "strings"),
    "wrong shape": ("retrieval", {"instances": [["x", "y"]]}, 400, "shape"),
    "scalar": ("retrieval", {"inputs": "x"}, 400, "shape"),
    "missing input": ("item_tower", {"instances": [{"item_id": "1"}]}, 400,
                      "missing ['title']"),
    "unexpected input": ("retrieval", {"instances": [{"query": "x",
                                                      "user": "u"}]}, 400,
                         "unexpected ['user']"),
    "batch sizes differ": ("item_tower", {"inputs": {"item_id": ["1", "2"],
                                                     "title": ["a"]}}, 400,
                           "disagree"),
    "empty batch": ("retrieval", {"instances": []}, 400, "empty"),
    "oversized batch": ("retrieval", {"instances": ["x"] * 9}, 400,
                        "at most 8"),
    "over-long query": ("retrieval", {"instances": ["x" * 65]}, 400,
                        "65-byte"),
    "not utf-8": ("retrieval", {"instances": [{"b64": base64.b64encode(
        b"\xff\xfe").decode()}]}, 400, "UTF-8"),
    "bad base64": ("retrieval", {"instances": [{"b64": "%%%"}]}, 400,
                   "base64"),
    "ragged": ("item_tower", {"inputs": {"item_id": [["1"], ["2", "3"]],
                                         "title": ["a", "b"]}}, 400, "ragged"),
    "a number for a text id": ("item_tower", {"instances": [
        {"item_id": 7, "title": "a"}]}, 400, "input 'item_id' expects strings"),
    "not json": ("retrieval", '{"instances": ', 400, "JSON"),
    "neither format": ("retrieval", {"queries": ["x"]}, 400, "exactly one"),
    "both formats": ("retrieval", {"instances": ["x"], "inputs": ["x"]}, 400,
                     "exactly one"),
    "not an object": ("retrieval", ["x"], 400, "JSON object"),
    "unnamed inputs for two": ("item_tower", {"instances": [1]}, 400,
                               "name each"),
    "oversized body": ("retrieval", {"instances": ["x" * 60] * 2000}, 413,
                       ""),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request(url, case):
  model, body, status, message = BAD_REQUESTS[case]
  response = _predict(url, model, body)
  assert response.status_code == status
  assert set(response.json()) == {"error"}
  assert message in response.json()["error"]


def test_unknown_route_is_a_json_404(url):
  response = requests.get(f"{url}/v1/nothing", timeout=30)
  assert response.status_code == 404 and "error" in response.json()


def _scrape(url):
  response = requests.get(f"{url}/monitoring/prometheus/metrics", timeout=30)
  assert response.status_code == 200
  assert response.headers["Content-Type"].startswith("text/plain")
  return metrics.samples(response.text)


def test_metrics_count_batches_and_the_retrieval_stages(url):
  """At TF Serving's Prometheus path: a request's batch, its rows and
  seconds, and the seconds of the query tower and of the index search."""
  before = _scrape(url)
  assert _predict(url, "retrieval", {
      "instances": ["cordless drill", "led light bulb"]}).status_code == 200
  after = _scrape(url)

  grew = functools.partial(metrics.growth, before, after)
  batch = dict(model="retrieval", signature="serving_default")
  assert grew("mmse_batch_rows_count", **batch) == 1
  assert grew("mmse_batch_rows_sum", **batch) == 2
  assert grew("mmse_batch_seconds_sum", **batch) > 0
  for stage in ("query_tower", "index"):
    assert grew("mmse_retrieval_stage_seconds_total", model="retrieval",
                stage=stage) > 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_as_the_guide_writes_it(url):
  out = subprocess.run(
      ["curl", "-s", "-d", '{"instances": ["cordless drill"]}', "-X", "POST",
       f"{url}/v1/models/retrieval:predict"],
      check=True, capture_output=True, text=True, timeout=30).stdout
  assert json.loads(out)["predictions"][0]["item_ids"][0] == "0100"
  status = subprocess.run(["curl", "-s", f"{url}/v1/models/retrieval"],
                          check=True, capture_output=True, text=True,
                          timeout=30).stdout
  assert json.loads(status)["model_version_status"][0]["state"] == "AVAILABLE"


def test_rest_port_taken_is_a_clear_error(serving_dir, url):
  port = int(url.rsplit(":", 1)[1])
  with pytest.raises(OSError, match="REST"):
    server.start(serving_dir, server.ServerOptions(port=0, rest_port=port))


def test_calls_beyond_the_limit_get_429(serving_dir):
  # A lone call waits up to 1 s for batch-mates, so the first admitted is
  # still in flight when the others, sent at the same moment, arrive.
  import threading  # pylint: disable=g-import-not-at-top
  running = server.start(serving_dir, server.ServerOptions(
      port=0, rest_port=0, max_concurrent_rpcs=1,
      batching_parameters=batching.BatchingParameters(
          batch_timeout_micros=1_000_000)))
  responses = []
  try:
    threads = [threading.Thread(target=lambda: responses.append(_predict(
        running.rest_url, "retrieval", {"instances": ["red claw hammer"]})))
               for _ in range(4)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join(30)
  finally:
    running.stop()
  statuses = sorted(r.status_code for r in responses)
  assert statuses[0] == 200 and statuses[-1] == 429, statuses
  refused = [r for r in responses if r.status_code == 429]
  assert all("at once" in r.json()["error"] for r in refused)
