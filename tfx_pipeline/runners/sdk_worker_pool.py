"""Python SDK workers for a Flink TaskManager, forked from a warm process.

  python -m tfx_pipeline.runners.sdk_worker_pool --service_port=PORT

Serves Beam's external worker pool API, as Beam's own `worker_pool_main`
does, but starts each SDK worker by forking a process that has already
imported what the pipeline's Beam stages run (TensorFlow, TFX, TFDV, TFT,
this project's components) instead of starting a fresh interpreter. A fresh
worker spends tens of seconds importing before its first bundle, and every
Beam stage of a run is a Flink job of its own with workers of its own.

The fork server is Python's `multiprocessing` "forkserver": a clean
process, started before any gRPC object exists, that imports `PRELOAD` once
and forks a worker per request; the pool's own gRPC server never forks.
"""
import argparse
import concurrent.futures
import logging
import multiprocessing
import sys
import traceback
from typing import Dict, Sequence

import grpc

from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.portability.api import beam_fn_api_pb2_grpc

# What the pipeline's Beam stages unpickle in a worker; imported once.
PRELOAD = (
    "apache_beam.runners.worker.sdk_worker",
    "tensorflow",
    "tfx.components",
    "tensorflow_data_validation",
    "tensorflow_transform.beam",
    "components.csv_example_gen.executor",
    "components.multistage_samples.executor",
    "model.preprocessing",
)
_STOP_SECONDS = 10


def _run_worker(control_endpoint: str, worker_id: str) -> None:
  from apache_beam.runners.worker import sdk_worker  # pylint: disable=g-import-not-at-top
  sdk_worker.SdkHarness(control_endpoint, worker_id=worker_id,
                        state_cache_size=0,
                        data_buffer_time_limit_ms=-1).run()


class ForkingWorkerPool(beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolServicer):
  """Starts and stops SDK workers forked from the fork server."""

  def __init__(self, context):
    self._context = context
    self._workers: Dict[str, multiprocessing.Process] = {}

  def StartWorker(self, request, unused_context):
    try:
      worker = self._context.Process(
          target=_run_worker,
          args=(request.control_endpoint.url, request.worker_id))
      worker.start()
      self._workers[request.worker_id] = worker
      logging.info("SDK worker %s started (pid %d)", request.worker_id,
                   worker.pid)
      return beam_fn_api_pb2.StartWorkerResponse()
    except Exception:  # pylint: disable=broad-except
      return beam_fn_api_pb2.StartWorkerResponse(error=traceback.format_exc())

  def StopWorker(self, request, unused_context):
    worker = self._workers.pop(request.worker_id, None)
    if worker is not None:
      worker.terminate()
      worker.join(_STOP_SECONDS)
      if worker.is_alive():
        worker.kill()
        worker.join()
    return beam_fn_api_pb2.StopWorkerResponse()


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--service_port", type=int, required=True)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO,
                      format="%(asctime)s %(levelname)s %(message)s")
  context = multiprocessing.get_context("forkserver")
  context.set_forkserver_preload(list(PRELOAD))
  # Start the fork server (and its imports) now, not at the first job.
  warm_up = context.Process(target=int)
  warm_up.start()
  warm_up.join()
  server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8))
  beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(
      ForkingWorkerPool(context), server)
  server.add_insecure_port(f"localhost:{args.service_port}")
  server.start()
  logging.info("SDK worker pool listening on localhost:%d",
               args.service_port)
  server.wait_for_termination()
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
