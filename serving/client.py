"""`mmse query`: a text query's top items from a server, over TF Serving's API.

Uses the stock `tensorflow_serving.apis` stubs, so the same code queries
`mmse serve` and a real `tensorflow_model_server` serving the same directory.
Titles come back when the served `retrieval` model has an index that stores
them (`mmse serve`); from real TF Serving, hits carry ids and scores only.
"""
import dataclasses
from typing import List, Optional, Sequence

import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contracts import serving_layout
from serving import servables
from serving import tensor_codec

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclasses.dataclass(frozen=True)
class Hit:
  item_id: str
  score: float
  title: Optional[str] = None


class RetrievalClient:
  """One channel to a server; `search` sends one Predict per call."""

  def __init__(self, server: str, model_name: str = serving_layout.RETRIEVAL,
               timeout_s: float = 10.0):
    self.server = server
    self._model_name = model_name
    self._timeout_s = timeout_s
    self._channel = grpc.insecure_channel(server)
    self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
        self._channel)

  def close(self) -> None:
    self._channel.close()

  def __enter__(self) -> "RetrievalClient":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def search(self, queries: Sequence[str],
             k: Optional[int] = None) -> List[List[Hit]]:
    """The top `k` hits of each query (all the model returns without k).

    Raises:
      ConnectionError: the server cannot be reached in time.
      ValueError: the server rejected the request, or k exceeds what the
        served model returns.
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = self._model_name
    request.model_spec.signature_name = serving_layout.SERVING_SIGNATURE
    request.inputs[serving_layout.QUERY_INPUT].CopyFrom(
        tensor_codec.from_ndarray(np.asarray(list(queries), dtype=object)))
    try:
      response = self._stub.Predict(request, timeout=self._timeout_s)
    except grpc.RpcError as e:
      message = f"{self.server}: {e.code().name}: {e.details()}"
      if e.code() in _UNREACHABLE:
        raise ConnectionError(message) from e
      raise ValueError(message) from e
    outputs = response.outputs
    item_ids = tensor_codec.to_ndarray(
        outputs[serving_layout.ITEM_IDS_OUTPUT])
    scores = tensor_codec.to_ndarray(outputs[serving_layout.SCORES_OUTPUT])
    titles = (tensor_codec.to_ndarray(outputs[servables.TITLES_OUTPUT])
              if servables.TITLES_OUTPUT in outputs else None)
    served_k = item_ids.shape[1]
    if k is not None and not 1 <= k <= served_k:
      raise ValueError(f"k must be in 1..{served_k} for {self._model_name} "
                       f"version {response.model_spec.version.value}")
    k = served_k if k is None else k
    return [[
        Hit(item_ids[row, rank].decode("utf-8"), float(scores[row, rank]),
            titles[row, rank].decode("utf-8") if titles is not None else None)
        for rank in range(k)
    ] for row in range(len(item_ids))]


def query(server: str, text: str, k: int = 10,
          timeout_s: float = 10.0) -> List[Hit]:
  """`mmse query --server HOST:PORT TEXT -k K`: one query's top k hits."""
  with RetrievalClient(server, timeout_s=timeout_s) as client:
    return client.search([text], k)[0]


def format_hits(hits: Sequence[Hit]) -> str:
  """One line per hit: rank, score, item id and title when known."""
  # Ids are text of any length (SKUs, GTINs): the column fits the longest.
  width = max([len("item_id")] + [len(hit.item_id) for hit in hits])
  lines = [f"{'rank':>4}  {'score':>8}  {'item_id':<{width}}  title"]
  for rank, hit in enumerate(hits, start=1):
    lines.append(f"{rank:>4}  {hit.score:>8.4f}  {hit.item_id:<{width}}  "
                 f"{hit.title if hit.title is not None else '-'}")
  return "\n".join(lines)
