"""TF Serving's REST API beside the gRPC one, on the same event loop.

The routes and JSON shapes are TF Serving's (its "RESTful API" guide):

    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict
         {"signature_name": ..., "instances": [...]}  -> {"predictions": [...]}
         {"signature_name": ..., "inputs": ...}       -> {"outputs": ...}
    GET  /v1/models/<name>[/versions/<v>]             -> version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    -> signature defs
    GET  /monitoring/prometheus/metrics               -> `serving.metrics`

`instances` is the row format: a list of one value per row when the
signature has one input, or of objects naming every input. `inputs` is the
columnar format: the batch of the only input, or an object of batches by
input name. A string is a JSON string, or `{"b64": ...}` for bytes. Requests
are checked, batched and answered by the same code as gRPC
(`serving.prediction`), so both APIs accept and refuse the same requests;
every refusal is `{"error": "..."}` with the HTTP status TF Serving gives
its gRPC code.
"""
import base64
import binascii
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

import grpc
import numpy as np
from aiohttp import web
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import metrics
from serving import model_registry
from serving import prediction
from serving import tensor_codec

# TF Serving's mapping of a status to an HTTP code (http_rest_api_handler).
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
_B64 = "b64"
_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_NUMERIC = {
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_BOOL: np.bool_,
}


def _error(status: int, message: str) -> web.Response:
  return web.json_response({"error": message}, status=status)


def _invalid(message: str) -> prediction.RequestError:
  return prediction.RequestError(_INVALID, message)


def _is_b64(value: Any) -> bool:
  return isinstance(value, dict) and set(value) == {_B64}


def _leaf(name: str, value: Any, dtype: int) -> Any:
  """One JSON scalar as the signature's dtype wants it."""
  if dtype == types_pb2.DT_STRING:
    if isinstance(value, str):
      return value.encode("utf-8")
    if _is_b64(value) and isinstance(value[_B64], str):
      try:
        return base64.b64decode(value[_B64], validate=True)
      except binascii.Error as e:
        raise _invalid(f"input {name!r}: bad base64: {e}") from e
    raise _invalid(f"input {name!r} expects strings, got {value!r:.40}")
  if dtype == types_pb2.DT_BOOL:
    if isinstance(value, bool):
      return value
  elif dtype in (types_pb2.DT_INT64, types_pb2.DT_INT32):
    if isinstance(value, int) and not isinstance(value, bool):
      return value
  elif isinstance(value, (int, float)) and not isinstance(value, bool):
    return value
  raise _invalid(f"input {name!r} is {tensor_codec.dtype_name(dtype)}; "
                 f"{value!r:.40} is not such a value")


def _flatten(name: str, value: Any, dtype: int,
             max_elements: int) -> Tuple[List[int], List[Any]]:
  """The shape and row-major values of a nested JSON list."""
  if not isinstance(value, list):
    return [], [_leaf(name, value, dtype)]
  if not value:
    return [0], []
  parts = [_flatten(name, v, dtype, max_elements) for v in value]
  inner = parts[0][0]
  if any(shape != inner for shape, _ in parts):
    raise _invalid(f"input {name!r} is ragged: its lists differ in length")
  flat = [x for _, values in parts for x in values]
  if len(flat) > max_elements:
    raise _invalid(f"input {name!r} has {len(flat)} elements; at most "
                   f"{max_elements} are accepted")
  return [len(value)] + inner, flat


def _to_array(name: str, value: Any, info,
              limits: prediction.RequestLimits) -> np.ndarray:
  shape, flat = _flatten(name, value, info.dtype, limits.max_elements)
  if info.dtype == types_pb2.DT_STRING:
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
  elif info.dtype in _NUMERIC:
    try:
      array = np.asarray(flat, dtype=_NUMERIC[info.dtype])
    except OverflowError as e:
      raise _invalid(f"input {name!r}: {e}") from e
  else:
    raise _invalid(f"input {name!r}: {tensor_codec.dtype_name(info.dtype)} "
                   "is not served over REST")
  array = array.reshape(shape)
  prediction.check_values(name, info, array, limits)
  return array


def _named(body_value: Any, signature_def) -> Dict[str, Any]:
  """{input name: value}, for an object of inputs or a lone input's value."""
  if isinstance(body_value, dict) and not _is_b64(body_value):
    return body_value
  if len(signature_def.inputs) != 1:
    raise _invalid(f"the signature has inputs {sorted(signature_def.inputs)}:"
                   " name each of them")
  return {next(iter(signature_def.inputs)): body_value}


def decode_body(body: Any, signature_def,
                limits: prediction.RequestLimits
               ) -> Tuple[Dict[str, np.ndarray], bool]:
  """The inputs of a predict body, and whether it used the row format."""
  if not isinstance(body, dict):
    raise _invalid("the request body must be a JSON object")
  if ("instances" in body) == ("inputs" in body):
    raise _invalid("the request must have exactly one of 'instances' (row "
                   "format) or 'inputs' (columnar format)")
  unknown = set(body) - {"instances", "inputs", "signature_name"}
  if unknown:
    raise _invalid(f"unknown request fields {sorted(unknown)}")
  if "inputs" in body:
    columns = _named(body["inputs"], signature_def)
  else:
    instances = body["instances"]
    if not isinstance(instances, list):
      raise _invalid("'instances' must be a list, one entry per row")
    rows = [_named(row, signature_def) for row in instances]
    if rows and any(set(row) != set(rows[0]) for row in rows):
      raise _invalid("every instance must name the same inputs")
    names = rows[0] if rows else signature_def.inputs
    columns = {n: [row[n] for row in rows] for n in names}
  prediction.check_input_names(signature_def, columns)
  return {name: _to_array(name, value, signature_def.inputs[name], limits)
          for name, value in columns.items()}, "instances" in body


def _json_value(array: np.ndarray, output_name: str) -> Any:
  if array.dtype != object:
    return array.tolist()
  as_b64 = output_name.endswith("_bytes")  # TF Serving's rule for bytes.

  def text(value: bytes) -> Any:
    if not as_b64:
      try:
        return value.decode("utf-8")
      except UnicodeDecodeError:
        pass
    return {_B64: base64.b64encode(value).decode("ascii")}

  return np.vectorize(text, otypes=[object])(array).tolist() if array.size \
      else array.tolist()


def encode_outputs(outputs: Dict[str, np.ndarray], row_format: bool) -> Any:
  """TF Serving's JSON answer for row (`predictions`) or columnar format."""
  values = {name: _json_value(v, name) for name, v in outputs.items()}
  if not row_format:
    return {"outputs": next(iter(values.values())) if len(values) == 1
            else values}
  if len(values) == 1:
    return {"predictions": next(iter(values.values()))}
  rows = {len(v) for v in values.values()}
  if len(rows) != 1:
    raise prediction.RequestError(
        _INVALID, "outputs differ in batch size; use the columnar 'inputs' "
        "format")
  return {"predictions": [{name: v[i] for name, v in values.items()}
                          for i in range(rows.pop())]}


def _version(request: web.Request) -> Optional[int]:
  version = request.match_info.get("version")
  return int(version) if version is not None else None


class RestApi:
  """The handlers, over the registry and limits gRPC uses."""

  def __init__(self, registry: model_registry.ModelRegistry,
               limits: prediction.RequestLimits, max_concurrent_calls: int):
    self._registry = registry
    self._limits = limits
    self._max_calls = max_concurrent_calls
    self._calls = 0

  async def predict(self, request: web.Request) -> web.Response:
    if self._calls >= self._max_calls:
      return _error(HTTP_STATUS[grpc.StatusCode.RESOURCE_EXHAUSTED],
                    f"more than {self._max_calls} calls at once")
    self._calls += 1
    try:
      return web.json_response(await self._predict(request),
                               dumps=_dumps)
    finally:
      self._calls -= 1

  async def _predict(self, request: web.Request) -> Dict[str, Any]:
    try:
      body = json.loads(await request.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise _invalid(f"JSON Parse error: {e}") from e
    found = prediction.servable(self._registry, request.match_info["name"],
                                _version(request),
                                request.match_info.get("label"))
    signature_name = prediction.default_signature(
        body.get("signature_name", "") if isinstance(body, dict) else "")
    if not isinstance(signature_name, str):
      raise _invalid("'signature_name' must be a string")
    inputs, row_format = decode_body(
        body, prediction.signature(found, signature_name), self._limits)
    answer = await prediction.predict(found, signature_name, inputs, (),
                                      self._limits)
    return encode_outputs(answer.outputs, row_format)

  async def status(self, request: web.Request) -> web.Response:
    response = prediction.model_status(self._registry,
                                       request.match_info["name"],
                                       _version(request))
    return web.json_response(json_format.MessageToDict(
        response, including_default_value_fields=True,
        preserving_proto_field_name=True))

  async def metadata(self, request: web.Request) -> web.Response:
    found = prediction.servable(self._registry, request.match_info["name"],
                                _version(request))
    response = prediction.model_metadata(found)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[prediction.SIGNATURE_DEF_FIELD].Unpack(signature_map)
    # TF Serving's REST shape: the SignatureDefMap inline, not as an Any.
    return web.json_response({
        "model_spec": {"name": found.name, "signature_name": "",
                       "version": str(found.version)},
        "metadata": {prediction.SIGNATURE_DEF_FIELD: json_format.MessageToDict(
            signature_map, preserving_proto_field_name=True)},
    })


def _dumps(value: Any) -> str:
  return json.dumps(value, separators=(",", ":"))


@web.middleware
async def _errors_as_json(request: web.Request, handler) -> web.StreamResponse:
  """Every failure as TF Serving's `{"error": ...}` with a 4xx/5xx code."""
  try:
    return await handler(request)
  except prediction.RequestError as e:
    return _error(HTTP_STATUS.get(e.code, 500), str(e))
  except web.HTTPException as e:
    if e.status < 400:
      raise
    return _error(e.status, e.text or e.reason)
  except Exception as e:  # pylint: disable=broad-except
    logging.exception("REST %s %s failed", request.method, request.path)
    return _error(500, f"{type(e).__name__}: {e}")


_NAME = "{name:[^/:]+}"
_VERSION = "{version:[0-9]+}"
_LABEL = "{label:[^/:]+}"


def make_app(registry: model_registry.ModelRegistry,
             limits: prediction.RequestLimits, max_receive_bytes: int,
             max_concurrent_calls: int) -> web.Application:
  """The aiohttp application serving TF Serving's REST routes."""
  api = RestApi(registry, limits, max_concurrent_calls)
  app = web.Application(client_max_size=max_receive_bytes,
                        middlewares=[_errors_as_json])
  base = f"/v1/models/{_NAME}"
  app.add_routes([
      web.post(f"{base}:predict", api.predict),
      web.post(f"{base}/versions/{_VERSION}:predict", api.predict),
      web.post(f"{base}/labels/{_LABEL}:predict", api.predict),
      web.get(base, api.status),
      web.get(f"{base}/versions/{_VERSION}", api.status),
      web.get(f"{base}/metadata", api.metadata),
      web.get(f"{base}/versions/{_VERSION}/metadata", api.metadata),
      web.get(metrics.PATH, _metrics),
  ])
  return app


async def _metrics(request: web.Request) -> web.Response:
  del request
  return web.Response(body=metrics.exposition(),
                      headers={"Content-Type": metrics.CONTENT_TYPE})


async def start(app: web.Application, host: str, port: int,
                reuse_port: bool = False) -> Tuple[web.AppRunner, int]:
  """Binds and starts `app`; returns its runner and the bound port.
  `reuse_port`: share the port with other processes (SO_REUSEPORT)."""
  runner = web.AppRunner(app, access_log=None)
  await runner.setup()
  try:
    await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
  except OSError as e:
    await runner.cleanup()
    raise OSError(f"Cannot bind {host}:{port} for REST: {e}") from e
  return runner, runner.addresses[0][1]
