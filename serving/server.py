"""A server speaking TF Serving's gRPC and REST APIs for a serving directory.

Clients written for TF Serving (`tensorflow_serving.apis` PredictionService
`Predict` and `GetModelMetadata`, ModelService `GetModelStatus`, and the
JSON REST API of `serving.rest`) work against it unchanged, so `mmse serve`
is a drop-in for local use and tests where no `tensorflow_model_server`
binary exists, and the same directory is served by real TF Serving in
production (docs/serving.md). What it adds: `retrieval`
answers through the ANN index stored with it.

Every bad request gets a status and a message naming the problem, never a
crash (`serving.prediction` checks requests for both APIs). It binds to
loopback unless told otherwise and bounds message sizes, batch sizes and
concurrent calls.
"""
import asyncio
import dataclasses
import gc
import ipaddress
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
from typing import Callable, Dict, Optional

import grpc
import numpy as np
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from contracts import serving_layout
from retrieval import ann
from serving import batching
from serving import metrics
from serving import model_registry
from serving import prediction
from serving import rest
from serving import servables
from serving import tensor_codec



@dataclasses.dataclass(frozen=True)
class ServerOptions:
  """Limits and knobs of one server."""
  host: str = "127.0.0.1"
  port: int = 8500
  # TF Serving's REST API on this port (0: any free port); None: no REST.
  rest_port: Optional[int] = None
  # Largest request accepted; responses may be larger (k ids per query).
  max_receive_message_bytes: int = 4 * 1024 * 1024
  max_send_message_bytes: int = 64 * 1024 * 1024
  # Rows of one request; batches merged across requests have the same bound.
  max_batch_rows: int = 256
  # Longest string element (a query, a title) in bytes.
  max_string_bytes: int = 1024
  # Calls admitted at once, per API; RESOURCE_EXHAUSTED beyond.
  max_concurrent_rpcs: int = 256
  poll_interval_s: float = 1.0
  # TF Serving's --enable_batching with these parameters; None: no batching.
  batching_parameters: Optional[batching.BatchingParameters] = None
  # `serve`'s processes on the same ports (SO_REUSEPORT: the kernel spreads
  # connections among them), each with its own models, batchers, event loop
  # and share of the cores: what bounds one process is its event loop's CPU
  # per call under the GIL, not the model (bench/results/serving.md
  # measures one process against the default).
  server_processes: int = dataclasses.field(
      default_factory=lambda: os.cpu_count() or 1)

  def __post_init__(self):
    if self.server_processes < 1:
      raise ValueError(
          f"server_processes must be >= 1, got {self.server_processes}")

  @property
  def cores_per_process(self) -> int:
    return max(1, (os.cpu_count() or 1) // self.server_processes)

  @property
  def limits(self) -> prediction.RequestLimits:
    max_rows = self.max_batch_rows
    if self.batching_parameters is not None:
      # As in TF Serving, a request larger than a batch is refused.
      max_rows = min(max_rows, self.batching_parameters.max_batch_size)
    return prediction.RequestLimits(max_batch_rows=max_rows,
                                    max_string_bytes=self.max_string_bytes)

  @property
  def run_options(self) -> servables.RunOptions:
    """Threads per model call: the cores shared among the calls that run at
    once, so that concurrent batches' TensorFlow ops and index searches do
    not oversubscribe the cores."""
    options = servables.RunOptions(
        batching_parameters=self.batching_parameters)
    return dataclasses.replace(options, threads_per_call=max(
        1, self.cores_per_process // options.concurrent_calls))


def _servable(registry: model_registry.ModelRegistry, model_spec):
  choice = model_spec.WhichOneof("version_choice")
  return prediction.servable(
      registry, model_spec.name,
      version=model_spec.version.value if choice == "version" else None,
      label=model_spec.version_label if choice == "version_label" else None)


def _decode_inputs(request: predict_pb2.PredictRequest, signature,
                   limits: prediction.RequestLimits) -> Dict[str, np.ndarray]:
  prediction.check_input_names(signature, request.inputs)
  inputs = {}
  for name, proto in request.inputs.items():
    info = signature.inputs[name]
    if proto.dtype != info.dtype:
      raise prediction.dtype_mismatch(name, proto.dtype, info.dtype)
    try:
      prediction.check_shape(name, info, tensor_codec.shape_of(proto))
      value = tensor_codec.to_ndarray(proto, max_elements=limits.max_elements)
    except ValueError as e:
      raise prediction.RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"input {name!r}: {e}") from e
    prediction.check_values(name, info, value, limits)
    inputs[name] = value
  return inputs


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
    found = _servable(self._registry, request.model_spec)
    signature_name = prediction.default_signature(
        request.model_spec.signature_name)
    inputs = _decode_inputs(request, prediction.signature(found,
                                                          signature_name),
                            self._options.limits)
    answer = await prediction.predict(found, signature_name, inputs,
                                      request.output_filter,
                                      self._options.limits)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = answer.model_name
    response.model_spec.version.value = answer.version
    response.model_spec.signature_name = answer.signature_name
    for name, value in answer.outputs.items():
      tensor_codec.fill(response.outputs[name], value)
    return response

  async def Predict(self, request, context):  # pylint: disable=invalid-name
    # A client that goes away cancels this coroutine (asyncio.CancelledError
    # is no Exception): its request is dropped and nothing else is touched.
    try:
      return await self._predict(request)
    except prediction.RequestError as e:
      code, message = e.code, str(e)
    except Exception as e:  # pylint: disable=broad-except
      logging.exception("Predict failed for %s", request.model_spec.name)
      code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
    await context.abort(code, message)

  async def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    try:
      servable = _servable(self._registry, request.model_spec)
      prediction.check_metadata_fields(request.metadata_field)
    except prediction.RequestError as e:
      await context.abort(e.code, str(e))
    return prediction.model_metadata(servable)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """GetModelStatus: each version's state, and why a failed one failed."""

  def __init__(self, registry: model_registry.ModelRegistry):
    self._registry = registry

  async def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    spec = request.model_spec
    version = spec.version.value if spec.HasField("version") else None
    try:
      return prediction.model_status(self._registry, spec.name, version)
    except prediction.RequestError as e:
      await context.abort(e.code, str(e))


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
  """A started server: its bound ports, registry and a way to stop it.

  The gRPC server (and the REST one, when asked for) runs on an asyncio
  event loop in a thread of its own, so the caller (a test, the benchmark,
  `serve`) keeps its thread.
  """

  def __init__(self, servers: "_Servers",
               registry: model_registry.ModelRegistry,
               loop: asyncio.AbstractEventLoop, thread: threading.Thread,
               host: str):
    self.registry = registry
    self.host = host
    self.port = servers.grpc_port
    # None when REST is off.
    self.rest_port = servers.rest_port
    self._servers = servers
    self._loop = loop
    self._thread = thread

  @property
  def address(self) -> str:
    return _address(self.host, self.port)

  @property
  def rest_url(self) -> Optional[str]:
    """`http://host:port`, the REST API's root; None when REST is off."""
    if self.rest_port is None:
      return None
    return f"http://{_address(self.host, self.rest_port)}"

  def stop(self, grace_s: float = 5.0) -> None:
    """Lets calls in flight finish (up to grace_s), then stops polling."""
    asyncio.run_coroutine_threadsafe(self._servers.stop(grace_s),
                                     self._loop).result()
    self._loop.call_soon_threadsafe(self._loop.stop)
    self._thread.join()
    self._loop.close()
    self.registry.stop()


@dataclasses.dataclass
class _Servers:
  """What runs on the event loop: gRPC, and REST when asked for."""
  grpc_server: grpc.aio.Server
  grpc_port: int
  rest_runner: Optional[rest.web.AppRunner] = None
  rest_port: Optional[int] = None

  async def stop(self, grace_s: float) -> None:
    if self.rest_runner is not None:
      await self.rest_runner.shutdown()
      await self.rest_runner.cleanup()
    await self.grpc_server.stop(grace_s)


async def _start_servers(registry: model_registry.ModelRegistry,
                         options: ServerOptions) -> _Servers:
  grpc_server, grpc_port = await _start_grpc(registry, options)
  servers = _Servers(grpc_server, grpc_port)
  if options.rest_port is not None:
    app = rest.make_app(registry, options.limits,
                        options.max_receive_message_bytes,
                        options.max_concurrent_rpcs)
    try:
      servers.rest_runner, servers.rest_port = await rest.start(
          app, options.host, options.rest_port,
          reuse_port=options.server_processes > 1)
    except BaseException:
      await grpc_server.stop(0)
      raise
  return servers


async def _start_grpc(registry: model_registry.ModelRegistry,
                      options: ServerOptions) -> "tuple[grpc.aio.Server, int]":
  server = grpc.aio.server(
      options=[
          ("grpc.max_receive_message_length",
           options.max_receive_message_bytes),
          ("grpc.max_send_message_length", options.max_send_message_bytes),
          # One server per port: a second `mmse serve` must fail, not share;
          # only the processes of one `mmse serve` share theirs.
          ("grpc.so_reuseport", int(options.server_processes > 1)),
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


def _freeze_imported_objects() -> None:
  """Exempts what the process holds before any model loads from the cyclic GC.

  That is most of the heap: the modules of TensorFlow, gRPC and the rest,
  none of it ever garbage. A full collection that traverses it holds up
  every request while it runs; frozen, it is never traversed, and a
  collection visits only what came later (the models, the requests). The
  models stay unfrozen: a TensorFlow session's objects form reference
  cycles, so an unloaded version is freed by a collection, which a frozen
  one would never get.
  """
  gc.collect()
  gc.freeze()


def start(model_base_path: str,
          options: ServerOptions = ServerOptions()) -> RunningServer:
  """Loads the models under `model_base_path` and starts answering, in this
  process (`options.server_processes` is `serve`'s).

  Returns once every model's current version has been tried, so a client
  may call right away. Port 0 binds a free port (see `.port`).
  """
  return _start(model_base_path,
                dataclasses.replace(options, server_processes=1))


def _start(model_base_path: str, options: ServerOptions) -> RunningServer:
  """`start`, as one of `options.server_processes` processes sharing the
  ports and the cores."""
  if not _is_loopback(options.host):
    logging.warning("Binding %s: the server is reachable from other hosts "
                    "and has no authentication", options.host)
  sources = model_registry.read_sources(model_base_path)
  base_paths = {s.name: s.base_path for s in sources}
  run_options = options.run_options
  ann.set_search_threads(run_options.threads_per_call)
  loader = servables.make_loader(base_paths, run_options)
  # Each swap collects the versions no request holds any more before the
  # new version answers (milliseconds, the imports being frozen).
  registry = model_registry.ModelRegistry(sources, loader,
                                          options.poll_interval_s,
                                          on_change=gc.collect)
  _freeze_imported_objects()
  registry.start()
  loop = asyncio.new_event_loop()
  thread = threading.Thread(target=loop.run_forever, name="grpc-event-loop",
                            daemon=True)
  thread.start()
  try:
    servers = asyncio.run_coroutine_threadsafe(
        _start_servers(registry, options), loop).result()
  except BaseException:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
    registry.stop()
    raise
  running = RunningServer(servers, registry, loop, thread, options.host)
  logging.info("Serving %s on %s (gRPC)%s", ", ".join(registry.model_names),
               running.address,
               f" and {running.rest_url} (REST)" if running.rest_url else "")
  return running


def _stop_on_signals(stopping: threading.Event) -> None:
  if threading.current_thread() is threading.main_thread():
    for sig in (signal.SIGINT, signal.SIGTERM):
      signal.signal(sig, lambda *_: stopping.set())


def _serve_until_stopped(model_base_path: str, options: ServerOptions,
                         parent_pid: Optional[int] = None) -> None:
  """Serves until SIGINT or SIGTERM (or, in a server process, until the
  process that started it is gone), then drains and stops."""
  running = _start(model_base_path, options)
  stopping = threading.Event()
  _stop_on_signals(stopping)
  rest_note = f", REST on {running.rest_url}" if running.rest_url else ""
  process_note = (f" (process {os.getpid()}, one of "
                  f"{options.server_processes})" if parent_pid else "")
  print(f"Serving {', '.join(running.registry.model_names)} from "
        f"{model_base_path}: gRPC on {running.address}{rest_note}"
        f"{process_note} (Ctrl-C stops)", flush=True)
  while not stopping.wait(1.0):
    if parent_pid is not None and os.getppid() != parent_pid:
      logging.warning("The process that started this one is gone")
      break
  logging.info("Stopping: draining calls in flight")
  running.stop()


def _serve_in_child(model_base_path: str, options: ServerOptions,
                    parent_pid: int,
                    process_setup: Optional[Callable[[], None]]) -> None:
  if process_setup is not None:
    process_setup()
  _serve_until_stopped(model_base_path, options, parent_pid)


def _serve_in_processes(model_base_path: str, options: ServerOptions,
                        process_setup: Optional[Callable[[], None]]) -> None:
  """Starts `options.server_processes` servers on the same ports; stops them
  all (SIGTERM, so each drains) on SIGINT or SIGTERM or when one exits."""
  if not options.port or options.rest_port == 0:
    raise ValueError("server_processes > 1 needs fixed ports (not 0): the "
                     "processes must bind the same ones")
  # Spawned, not forked: each process imports TensorFlow and loads its own
  # models, and forking after threads started is unsafe.
  context = multiprocessing.get_context("spawn")
  children = [
      context.Process(target=_serve_in_child,
                      args=(model_base_path, options, os.getpid(),
                            process_setup),
                      name=f"mmse-serve-{i}")
      for i in range(options.server_processes)
  ]
  stopping = threading.Event()
  _stop_on_signals(stopping)
  # Each process records its metrics there; a scrape sums them all.
  metrics_dir = tempfile.mkdtemp(prefix="mmse-serve-metrics-")
  os.environ[metrics.MULTIPROCESS_DIR_ENV] = metrics_dir
  try:
    for child in children:
      child.start()
    while not stopping.wait(1.0):
      if any(not child.is_alive() for child in children):
        break
  finally:
    for child in children:
      if child.is_alive():
        os.kill(child.pid, signal.SIGTERM)
    for child in children:
      if child.pid is not None:  # Started.
        child.join()
    del os.environ[metrics.MULTIPROCESS_DIR_ENV]
    shutil.rmtree(metrics_dir, ignore_errors=True)
  failed = [c.exitcode for c in children if c.exitcode]
  if failed and not stopping.is_set():
    raise OSError(f"a server process exited with {failed[0]}; stopped the "
                  "others")


def serve(model_base_path: str, host: str = "127.0.0.1", port: int = 8500,
          rest_port: Optional[int] = 8501,
          options: Optional[ServerOptions] = None,
          process_setup: Optional[Callable[[], None]] = None) -> None:
  """`mmse serve`: serves until SIGINT or SIGTERM, then drains and stops.

  `process_setup` (picklable) runs first in each of `server_processes`
  processes when there are several, e.g. to set up their logging."""
  options = dataclasses.replace(options or ServerOptions(), host=host,
                                port=port, rest_port=rest_port)
  if options.server_processes == 1:
    _serve_until_stopped(model_base_path, options)
  else:
    _serve_in_processes(model_base_path, options, process_setup)
