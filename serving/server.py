"""A gRPC server speaking TF Serving's API for the pushed serving directory.

Clients written for TF Serving (`tensorflow_serving.apis` PredictionService
`Predict` and `GetModelMetadata`, ModelService `GetModelStatus`) work against
it unchanged, so `mmse serve` is a drop-in for local use and tests where no
`tensorflow_model_server` binary exists, and the same directory is served by
real TF Serving in production (docs/serving.md). What it adds: `retrieval`
answers through the ANN index stored with it.

Every bad request gets a gRPC status and a message naming the problem, never
a crash: unknown model, version or signature is NOT_FOUND; a wrong input
set, dtype or shape, an empty or oversized batch, an over-long or non-UTF-8
string is INVALID_ARGUMENT. It binds to loopback unless told otherwise and
bounds message sizes, batch sizes and concurrent calls.
"""
import asyncio
import dataclasses
import gc
import ipaddress
import logging
import signal
import threading
from typing import Dict, Optional

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contracts import serving_layout
from serving import model_registry
from serving import servables
from serving import tensor_codec

SIGNATURE_DEF_FIELD = "signature_def"
# Elements one row of one input may have (inputs here are [batch] vectors).
_MAX_ROW_ELEMENTS = 4096
_OK, _UNKNOWN = 0, 2  # tensorflow.error.Code values for StatusProto.


@dataclasses.dataclass(frozen=True)
class ServerOptions:
  """Limits and knobs of one server."""
  host: str = "127.0.0.1"
  port: int = 8500
  # Largest request accepted; responses may be larger (k ids per query).
  max_receive_message_bytes: int = 4 * 1024 * 1024
  max_send_message_bytes: int = 64 * 1024 * 1024
  # Rows of one request; batches merged across requests have the same bound.
  max_batch_rows: int = 256
  # Longest string element (a query, a title) in bytes.
  max_string_bytes: int = 1024
  # Calls admitted at once; RESOURCE_EXHAUSTED beyond.
  max_concurrent_rpcs: int = 256
  poll_interval_s: float = 1.0
  batch_timeout_s: float = 0.0
  max_concurrent_batches: int = 1


class _RequestError(Exception):
  """Ends an RPC with `code` and a message for the client."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code


def _servable(registry: model_registry.ModelRegistry, model_spec):
  choice = model_spec.WhichOneof("version_choice")
  if choice == "version_label":
    raise _RequestError(grpc.StatusCode.NOT_FOUND,
                        f"Unrecognized servable version label: "
                        f"{model_spec.version_label!r} (no labels are set)")
  version = model_spec.version.value if choice == "version" else None
  try:
    return registry.get(model_spec.name, version)
  except model_registry.NotFoundError as e:
    raise _RequestError(grpc.StatusCode.NOT_FOUND, str(e)) from e


def _check_shape(name: str, info, shape) -> None:
  expected = [d.size for d in info.tensor_shape.dim]
  if info.tensor_shape.unknown_rank:
    return
  if len(shape) != len(expected) or any(
      e not in (-1, s) for e, s in zip(expected, shape)):
    wanted = ["?" if e == -1 else e for e in expected]
    raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"input {name!r} has shape {list(shape)}; the "
                        f"signature expects {wanted}")


def _check_strings(name: str, values: np.ndarray, max_bytes: int) -> None:
  for value in values.reshape(-1):
    if len(value) > max_bytes:
      raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"input {name!r} has a {len(value)}-byte string; "
                          f"at most {max_bytes} bytes are accepted")
    try:
      value.decode("utf-8")
    except UnicodeDecodeError as e:
      raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"input {name!r} is not UTF-8 text: {e}") from e


def _decode_inputs(request: predict_pb2.PredictRequest, signature,
                   options: ServerOptions) -> Dict[str, np.ndarray]:
  expected, given = set(signature.inputs), set(request.inputs)
  if expected != given:
    raise _RequestError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"inputs {sorted(given)} do not match the signature's "
        f"{sorted(expected)} (missing {sorted(expected - given)}, "
        f"unexpected {sorted(given - expected)})")
  inputs = {}
  for name, proto in request.inputs.items():
    info = signature.inputs[name]
    if proto.dtype != info.dtype:
      raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"input {name!r} is "
                          f"{tensor_codec.dtype_name(proto.dtype)}; the "
                          f"signature expects "
                          f"{tensor_codec.dtype_name(info.dtype)}")
    try:
      shape = tensor_codec.shape_of(proto)
      _check_shape(name, info, shape)
      # A batch has at most max_batch_rows rows of a few values each.
      value = tensor_codec.to_ndarray(
          proto, max_elements=options.max_batch_rows * _MAX_ROW_ELEMENTS)
    except ValueError as e:
      raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"input {name!r}: {e}") from e
    if info.dtype == types_pb2.DT_STRING:
      _check_strings(name, value, options.max_string_bytes)
    inputs[name] = value
  return inputs


def _batch_rows(inputs: Dict[str, np.ndarray], options: ServerOptions) -> int:
  sizes = {name: (v.shape[0] if v.ndim else None) for name, v in inputs.items()}
  if len(set(sizes.values())) != 1:
    raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"inputs disagree on the batch size: {sizes}")
  rows = next(iter(sizes.values()))
  if rows is None:
    return 1
  if rows == 0:
    raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                        "empty batch: the request has no rows")
  if rows > options.max_batch_rows:
    raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"batch of {rows} rows; at most "
                        f"{options.max_batch_rows} per request")
  return rows


def _is_invalid_argument(error: Exception) -> bool:
  # Inputs were checked against the signature, so a model that still finds
  # an argument invalid is judging a value (e.g. a string op's input).
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return isinstance(error, tf.errors.InvalidArgumentError)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """Predict and GetModelMetadata over the registry's servables.

  Handlers run on the server's event loop: checking and encoding happen
  there, models run on model threads through each servable's batcher.
  """

  def __init__(self, registry: model_registry.ModelRegistry,
               options: ServerOptions):
    self._registry = registry
    self._options = options

  async def _predict(self, request) -> predict_pb2.PredictResponse:
    servable = _servable(self._registry, request.model_spec)
    signature_name = (request.model_spec.signature_name or
                      serving_layout.SERVING_SIGNATURE)
    signature = servable.signature_defs.get(signature_name)
    if signature is None:
      raise _RequestError(
          grpc.StatusCode.NOT_FOUND,
          f"Serving signature key {signature_name!r} not found; "
          f"{servable.name} has {sorted(servable.signature_defs)}")
    unknown_outputs = set(request.output_filter) - set(signature.outputs)
    if unknown_outputs:
      raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                          f"output_filter names {sorted(unknown_outputs)}, "
                          f"not among {sorted(signature.outputs)}")
    inputs = _decode_inputs(request, signature, self._options)
    rows = _batch_rows(inputs, self._options)
    try:
      outputs = await servable.run(signature_name, inputs, rows)
    except Exception as e:  # pylint: disable=broad-except
      if _is_invalid_argument(e):
        raise _RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                            f"{servable.name} rejected the input: {e}") from e
      raise
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature_name
    for name in (request.output_filter or outputs):
      tensor_codec.fill(response.outputs[name], outputs[name])
    return response

  async def Predict(self, request, context):  # pylint: disable=invalid-name
    # A client that goes away cancels this coroutine (asyncio.CancelledError
    # is no Exception): its request is dropped and nothing else is touched.
    try:
      return await self._predict(request)
    except _RequestError as e:
      code, message = e.code, str(e)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("Predict failed for %s", request.model_spec.name)
      code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
    await context.abort(code, message)

  async def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    try:
      servable = _servable(self._registry, request.model_spec)
      fields = set(request.metadata_field)
      if fields != {SIGNATURE_DEF_FIELD}:
        raise _RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"metadata_field must be [{SIGNATURE_DEF_FIELD!r}], got "
            f"{sorted(fields)}")
    except _RequestError as e:
      await context.abort(e.code, str(e))
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
      signature_map.signature_def[key].CopyFrom(signature)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """GetModelStatus: each version's state, and why a failed one failed."""

  def __init__(self, registry: model_registry.ModelRegistry):
    self._registry = registry

  async def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    try:
      statuses = self._registry.statuses(spec.name, version)
    except model_registry.NotFoundError as e:
      await context.abort(grpc.StatusCode.NOT_FOUND, str(e))
    response = get_model_status_pb2.GetModelStatusResponse()
    state_enum = get_model_status_pb2.ModelVersionStatus.State
    for status in statuses:
      entry = response.model_version_status.add()
      entry.version = status.version
      entry.state = state_enum.Value(status.state.value)
      entry.status.error_code = _UNKNOWN if status.error else _OK
      entry.status.error_message = status.error
    return response


def _address(host: str, port: int) -> str:
  try:
    ip = ipaddress.ip_address(host.strip("[]"))
  except ValueError:
    ip = None  # A host name.
  if ip is not None and ip.version == 6:
    return f"[{ip}]:{port}"
  return f"{host}:{port}"


def _is_loopback(host: str) -> bool:
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host.strip("[]")).is_loopback
  except ValueError:
    return False


class RunningServer:
  """A started server: its bound port, registry and a way to stop it.

  The gRPC server runs on an asyncio event loop in a thread of its own, so
  the caller (a test, the benchmark, `serve`) keeps its thread.
  """

  def __init__(self, server: grpc.aio.Server,
               registry: model_registry.ModelRegistry,
               loop: asyncio.AbstractEventLoop, thread: threading.Thread,
               host: str, port: int):
    self.server = server
    self.registry = registry
    self.host = host
    self.port = port
    self._loop = loop
    self._thread = thread

  @property
  def address(self) -> str:
    return _address(self.host, self.port)

  def stop(self, grace_s: float = 5.0) -> None:
    """Lets calls in flight finish (up to grace_s), then stops polling."""
    asyncio.run_coroutine_threadsafe(self.server.stop(grace_s),
                                     self._loop).result()
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join()
    self._loop.close()
    self.registry.stop()


async def _start_grpc(registry: model_registry.ModelRegistry,
                      options: ServerOptions) -> "tuple[grpc.aio.Server, int]":
  server = grpc.aio.server(
      options=[
          ("grpc.max_receive_message_length",
           options.max_receive_message_bytes),
          ("grpc.max_send_message_length", options.max_send_message_bytes),
          # One server per port: a second `mmse serve` must fail, not share.
          ("grpc.so_reuseport", 0),
      ],
      maximum_concurrent_rpcs=options.max_concurrent_rpcs)
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionServicer(registry, options), server)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(
      ModelServicer(registry), server)
  address = _address(options.host, options.port)
  try:
    port = server.add_insecure_port(address)
  except RuntimeError as e:
    raise OSError(f"Cannot bind {address}: {e}") from e
  if not port:
    raise OSError(f"Cannot bind {address}")
  await server.start()
  return server, port


def _collect_and_freeze() -> None:
  """Frees unloaded models, then exempts the loaded ones from the cyclic GC.

  A loaded TensorFlow model is hundreds of thousands of long-lived Python
  objects; a full collection traverses them all (about half a second here)
  while every request waits. Frozen objects are never traversed, so full
  collections during serving stay short; the one pause left is this call,
  once per poll that swapped a version.
  """
  gc.unfreeze()
  gc.collect()
  gc.freeze()


def start(model_base_path: str,
          options: ServerOptions = ServerOptions()) -> RunningServer:
  """Loads the models under `model_base_path` and starts answering.

  Returns once every model's current version has been tried, so a client
  may call right away. Port 0 binds a free port (see `.port`).
  """
  if not _is_loopback(options.host):
    logging.warning("Binding %s: the server is reachable from other hosts "
                    "and has no authentication", options.host)
  sources = model_registry.read_sources(model_base_path)
  base_paths = {s.name: s.base_path for s in sources}
  loader = servables.make_loader(
      base_paths,
      servables.BatchingOptions(
          max_batch_rows=options.max_batch_rows,
          max_concurrent_batches=options.max_concurrent_batches,
          batch_timeout_s=options.batch_timeout_s))
  registry = model_registry.ModelRegistry(sources, loader,
                                          options.poll_interval_s,
                                          on_change=_collect_and_freeze)
  registry.start()
  loop = asyncio.new_event_loop()
  thread = threading.Thread(target=loop.run_forever, name="grpc-event-loop",
                            daemon=True)
  thread.start()
  try:
    server, port = asyncio.run_coroutine_threadsafe(
        _start_grpc(registry, options), loop).result()
  except BaseException:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
    registry.stop()
    raise
  logging.info("Serving %s on %s", ", ".join(registry.model_names),
               _address(options.host, port))
  return RunningServer(server, registry, loop, thread, options.host, port)


def serve(model_base_path: str, host: str = "127.0.0.1", port: int = 8500,
          options: Optional[ServerOptions] = None) -> None:
  """`mmse serve`: serves until SIGINT or SIGTERM, then drains and stops."""
  options = dataclasses.replace(options or ServerOptions(), host=host,
                                port=port)
  running = start(model_base_path, options)
  stopping = threading.Event()
  if threading.current_thread() is threading.main_thread():
    for sig in (signal.SIGINT, signal.SIGTERM):
      signal.signal(sig, lambda *_: stopping.set())
  print(f"Serving {', '.join(running.registry.model_names)} from "
        f"{model_base_path} on {running.address} (Ctrl-C stops)", flush=True)
  while not stopping.wait(1.0):
    pass
  logging.info("Stopping: draining calls in flight")
  running.stop()
