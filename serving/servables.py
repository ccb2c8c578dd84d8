"""One loaded model version, answering its signatures through a batcher.

A version directory becomes a `Servable`: a plain SavedModel (the towers,
and `retrieval` when it has no index) runs its own signatures; a `retrieval`
version with an index under `assets.extra/index/` answers the same signature
by embedding queries with the query tower it was indexed for and searching
the index, which is what makes top-k over a large catalogue fast. Signature
definitions always come from `saved_model.pb`, so requests are checked and
metadata is reported exactly as TF Serving would for the same directory.
"""
import asyncio
import concurrent.futures
import dataclasses
import functools
import logging
import os
import threading
import time
import weakref
from typing import Callable, Dict, Optional

import numpy as np
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from contracts import serving_layout
from contracts import serving_warmup
from retrieval import ann
from serving import batching
from serving import metrics
from serving import tensor_codec

# Extra output of an index-backed `retrieval` whose index carries titles.
TITLES_OUTPUT = "titles"
# TF2 SavedModels list their initializer as a signature; it is not callable.
_INIT_OP_SIGNATURE = "__saved_model_init_op"


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How the loaded models run requests."""
  # Merge concurrent requests (`mmse serve --enable_batching`); None: every
  # request runs alone, as in TF Serving without the flag.
  batching_parameters: Optional[batching.BatchingParameters] = None
  # Threads one model call may use: TensorFlow's intra-op threads. Batches
  # running at once each get this many, so they share the cores instead of
  # fighting over them.
  threads_per_call: int = dataclasses.field(
      default_factory=lambda: os.cpu_count() or 1)

  @property
  def concurrent_calls(self) -> int:
    """Model calls running at once: the batch threads, or without batching
    one request per core."""
    return (self.batching_parameters.num_batch_threads if self.batching_parameters else
            os.cpu_count() or 1)


def read_signature_defs(
    version_dir: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
  """The callable signatures of a SavedModel, read without loading it."""
  path = os.path.join(version_dir, serving_layout.SAVED_MODEL_FILE)
  with open(path, "rb") as f:
    saved_model = saved_model_pb2.SavedModel.FromString(f.read())
  if not saved_model.meta_graphs:
    raise ValueError(f"{path} has no MetaGraph")
  defs = {
      name: signature for name, signature in
      saved_model.meta_graphs[0].signature_def.items()
      if name != _INIT_OP_SIGNATURE
  }
  if not defs:
    raise ValueError(f"{path} has no signature")
  return defs


def _is_batched(signature: meta_graph_pb2.SignatureDef) -> bool:
  """Whether every input and output has the batch as unknown first dim."""
  infos = list(signature.inputs.values()) + list(signature.outputs.values())
  return all(
      not info.tensor_shape.unknown_rank and info.tensor_shape.dim and
      info.tensor_shape.dim[0].size == -1 for info in infos)


_NUMPY_DTYPES = {
    types_pb2.DT_INT64: np.int64,
    types_pb2.DT_INT32: np.int32,
    types_pb2.DT_FLOAT: np.float32,
    types_pb2.DT_DOUBLE: np.float64,
    types_pb2.DT_BOOL: np.bool_,
}


class SessionModel:
  """A SavedModel loaded into a graph-mode session, as TF Serving runs one.

  A signature runs as one session callable on the thread that calls it:
  on the benchmark's query tower that answers a single query in half the
  time of the same signature called through `tf.saved_model.load` (whose
  nested function calls each start an executor), and needs no hand-off
  to TensorFlow's inter-op threads, which a busy server's other threads
  would slow (bench/results/serving.md). Large ops still spread over the
  intra-op threads.
  """

  def __init__(self, path: str, intra_op_threads: int):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tensorflow.core.protobuf import config_pb2  # pylint: disable=g-import-not-at-top
    config = config_pb2.ConfigProto(
        intra_op_parallelism_threads=intra_op_threads)
    # A pool must be configured for a run to pick the caller thread (-1).
    config.session_inter_op_thread_pool.add().num_threads = 1
    graph = tf.Graph()
    self._session = tf.compat.v1.Session(graph=graph, config=config)
    with graph.as_default():
      meta_graph = tf.compat.v1.saved_model.load(
          self._session, [tf.saved_model.SERVING], path)
    self.signature_defs = meta_graph.signature_def
    self._callables = {}
    self._runners = {}
    self._runners_lock = threading.Lock()

  def runner(self, key: str) -> Callable[[batching.Tensors],
                                         batching.Tensors]:
    """Runs signature `key` on numpy inputs, returning numpy outputs.

    One runner per signature, shared by every servable that asks: making a
    callable holds the session's lock, and calls of the others wait on it,
    so a new `retrieval` version on the query tower already serving would
    stall its requests while it loads.
    """
    with self._runners_lock:
      if key not in self._runners:
        self._runners[key] = self._new_runner(key)
      return self._runners[key]

  def _new_runner(self, key: str) -> Callable[[batching.Tensors],
                                              batching.Tensors]:
    from tensorflow.core.protobuf import config_pb2  # pylint: disable=g-import-not-at-top
    signature = self.signature_defs[key]
    inputs = sorted(signature.inputs)
    outputs = sorted(signature.outputs)
    dtypes = [_NUMPY_DTYPES.get(signature.inputs[name].dtype, object)
              for name in inputs]
    options = config_pb2.CallableOptions(
        feed=[signature.inputs[name].name for name in inputs],
        fetch=[signature.outputs[name].name for name in outputs])
    options.run_options.inter_op_thread_pool = -1  # The calling thread.
    # What tf_keras' graph-mode functions call: `make_callable` with feeds
    # falls back to `Session.run`, a fifth of a millisecond more a call.
    self._callables[key] = self._session._make_callable_from_options(  # pylint: disable=protected-access
        options)

    def run(values: batching.Tensors) -> batching.Tensors:
      # Through self: a runner keeps its model (and the cache's entry) alive.
      results = self._callables[key](*[
          np.asarray(values[name], dtype=dtype)
          for name, dtype in zip(inputs, dtypes)])
      return dict(zip(outputs, results))

    return run


class _SessionModelCache:
  """Shares one loaded SavedModel between servables that need the same dir.

  The `retrieval` servable embeds queries with the query tower it pairs
  with, which is usually the `query_tower` version being served as well.
  """

  def __init__(self):
    self._lock = threading.Lock()
    self._loaded = weakref.WeakValueDictionary()

  def load(self, path: str, intra_op_threads: int) -> SessionModel:
    path = os.path.realpath(path)
    with self._lock:
      loaded = self._loaded.get(path)
      if loaded is None:
        loaded = SessionModel(path, intra_op_threads)
        self._loaded[path] = loaded
      return loaded


_CACHE = _SessionModelCache()


class Servable:
  """A loaded version: signature definitions plus a way to run each."""

  def __init__(self, name: str, version: int, path: str,
               signature_defs: Dict[str, meta_graph_pb2.SignatureDef],
               runners: Dict[str, Callable[[batching.Tensors],
                                           batching.Tensors]],
               options: RunOptions,
               executor: concurrent.futures.Executor, description: str,
               index: Optional[ann.Index] = None):
    self.name = name
    self.version = version
    self.path = path
    self.signature_defs = signature_defs
    self.description = description
    # The ANN index an index-backed `retrieval` searches; None otherwise.
    self.index = index
    # Requests of the warm-up file replayed by `warm_up` (0: none found).
    self.warmup_requests = 0
    self._runners = runners
    self._executor = executor
    self._batchers = {
        key: batching.Batcher(
            fn, options.batching_parameters, executor,
            on_batch=functools.partial(metrics.observe_batch, name, key))
        for key, fn in runners.items()
        if options.batching_parameters and _is_batched(signature_defs[key])
    }

  async def run(self, signature_name: str, inputs: batching.Tensors,
                rows: int) -> batching.Tensors:
    """Answers validated inputs; batched with concurrent calls if it can."""
    batcher = self._batchers.get(signature_name)
    if batcher is None:
      return await asyncio.get_running_loop().run_in_executor(
          self._executor, self._run_alone, signature_name, inputs, rows)
    return await batcher.run(inputs, rows)

  def _run_alone(self, signature_name: str, inputs: batching.Tensors,
                 rows: int) -> batching.Tensors:
    started = time.perf_counter()
    outputs = self._runners[signature_name](inputs)
    metrics.observe_batch(self.name, signature_name, rows,
                          time.perf_counter() - started)
    return outputs

  def call(self, signature_name: str,
           inputs: batching.Tensors) -> batching.Tensors:
    """Runs one batch on the calling thread, without the batcher: what a
    merged batch costs, the limit the server is measured against."""
    return self._runners[signature_name](inputs)

  def warm_up(self) -> None:
    """Replays the version's warm-up requests before it takes traffic.

    They are TF Serving's (`contracts.serving_warmup`, written by the
    pusher from real queries and catalogue rows); a version without them
    gets one trivial call per signature, so the first request does not pay
    tracing. Raises whatever the model raises: a version that cannot answer
    its own warm-up is not loaded (TF Serving fails such a load too).
    """
    requests = serving_warmup.read(self.path)
    for request in requests:
      key = (request.model_spec.signature_name or
             serving_layout.SERVING_SIGNATURE)
      if key not in self._runners:
        raise ValueError(f"{serving_warmup.path(self.path)}: a warm-up "
                         f"request for signature {key!r}, which "
                         f"{self.name} lacks")
      self._runners[key]({name: tensor_codec.to_ndarray(tensor)
                          for name, tensor in request.inputs.items()})
    self.warmup_requests = len(requests)
    if requests:
      return
    for key, signature in self.signature_defs.items():
      inputs = {}
      for name, info in signature.inputs.items():
        shape = [1 if d.size == -1 else d.size for d in info.tensor_shape.dim]
        if info.dtype == types_pb2.DT_STRING:
          inputs[name] = np.full(shape, b"", dtype=object)
        else:
          inputs[name] = np.zeros(shape, dtype=_NUMPY_DTYPES[info.dtype])
      self._runners[key](inputs)


def load_saved_model(name: str, version: int, path: str, options: RunOptions,
                     executor: concurrent.futures.Executor) -> Servable:
  """Serves every signature of the SavedModel at `path` as it is."""
  signature_defs = read_signature_defs(path)
  loaded = _CACHE.load(path, options.threads_per_call)
  missing = set(signature_defs) - set(loaded.signature_defs)
  if missing:
    raise ValueError(f"{path}: signatures {sorted(missing)} did not load")
  runners = {key: loaded.runner(key) for key in signature_defs}
  return Servable(name, version, path, signature_defs, runners, options,
                  executor, "SavedModel")


class PairedTowerFinder:
  """Finds the query tower version an index was built with, by fingerprint.

  Fingerprints are cached per directory and saved_model.pb mtime, so each
  poll looks at a version's files once.
  """

  def __init__(self, query_tower_base: Optional[str]):
    self._base = query_tower_base
    self._fingerprints: Dict[str, tuple] = {}

  def find(self, fingerprint: str, preferred_version: int) -> Optional[str]:
    if not self._base:
      return None
    versions = serving_layout.versions(self._base)[::-1]
    # The pusher gives the towers and `retrieval` of one training one version.
    if preferred_version in versions:
      versions.remove(preferred_version)
      versions.insert(0, preferred_version)
    for version in versions:
      path = os.path.join(self._base, str(version))
      try:
        stamp = os.stat(os.path.join(
            path, serving_layout.SAVED_MODEL_FILE)).st_mtime_ns
      except FileNotFoundError:
        continue  # Removed since it was listed.
      cached = self._fingerprints.get(path)
      if cached is None or cached[0] != stamp:
        cached = (stamp, ann.saved_model_fingerprint(path))
        self._fingerprints[path] = cached
      if cached[1] == fingerprint:
        return path
    return None


def _with_titles(signature: meta_graph_pb2.SignatureDef,
                 k: int) -> meta_graph_pb2.SignatureDef:
  extended = meta_graph_pb2.SignatureDef()
  extended.CopyFrom(signature)
  extended.outputs[TITLES_OUTPUT].CopyFrom(
      meta_graph_pb2.TensorInfo(
          name=TITLES_OUTPUT, dtype=types_pb2.DT_STRING,
          tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[
              tensor_shape_pb2.TensorShapeProto.Dim(size=-1),
              tensor_shape_pb2.TensorShapeProto.Dim(size=k)
          ])))
  return extended


def _served_k(signature: meta_graph_pb2.SignatureDef,
              index: ann.LoadedIndex) -> int:
  dims = signature.outputs[serving_layout.ITEM_IDS_OUTPUT].tensor_shape.dim
  k = dims[-1].size if len(dims) == 2 and dims[-1].size > 0 else index.k
  if not k or k > index.index.size:
    raise ValueError(f"cannot tell the served k (signature {dims}, index "
                     f"k={index.k}, {index.index.size} items)")
  return k


def load_retrieval(name: str, version: int, path: str, options: RunOptions,
                   executor: concurrent.futures.Executor,
                   towers: PairedTowerFinder) -> Servable:
  """`retrieval` through its ANN index when it has one, else exactly.

  An index that cannot be read makes the version fail to load (it is a
  partial or corrupt version); an index whose query tower is no longer on
  disk is served exactly, with a warning, since the exact SavedModel holds
  its own copy of that tower.
  """
  index_dir = serving_layout.index_dir(path)
  if not os.path.isdir(index_dir):
    return load_saved_model(name, version, path, options, executor)
  signature_defs = read_signature_defs(path)
  signature = signature_defs.get(serving_layout.SERVING_SIGNATURE)
  if (signature is None or
      set(signature.inputs) != {serving_layout.QUERY_INPUT}):
    raise ValueError(f"{path}: {serving_layout.SERVING_SIGNATURE} must take "
                     f"only {serving_layout.QUERY_INPUT!r}")
  index = ann.load(index_dir)
  tower_dir = (towers.find(index.query_tower_fingerprint, version)
               if index.query_tower_fingerprint else None)
  if tower_dir is None:
    logging.warning(
        "%s version %d: the query tower its index was built with is not "
        "under the query_tower base path; serving it exactly instead", name,
        version)
    return load_saved_model(name, version, path, options, executor)
  k = _served_k(signature, index)
  embed = _CACHE.load(tower_dir, options.threads_per_call).runner(
      serving_layout.SERVING_SIGNATURE)
  search_index = index.index
  titles = index.titles
  # DT_STRING values are bytes on the wire: encode each id once, not per
  # answer.
  item_ids = np.array([i.encode("utf-8") for i in search_index.item_ids.tolist()],
                      dtype=object)

  tower_seconds = metrics.RETRIEVAL_STAGE_SECONDS.labels(
      name, metrics.QUERY_TOWER_STAGE)
  index_seconds = metrics.RETRIEVAL_STAGE_SECONDS.labels(name,
                                                         metrics.INDEX_STAGE)

  def retrieve(inputs):
    queries = inputs[serving_layout.QUERY_INPUT]
    started = time.perf_counter()
    embeddings = embed({serving_layout.QUERY_INPUT: queries})[
        serving_layout.EMBEDDING_OUTPUT]
    embedded = time.perf_counter()
    rows, scores = search_index.search_rows(embeddings, k)
    tower_seconds.inc(embedded - started)
    index_seconds.inc(time.perf_counter() - embedded)
    outputs = {serving_layout.ITEM_IDS_OUTPUT: item_ids[rows],
               serving_layout.SCORES_OUTPUT: scores}
    if titles is not None:
      outputs[TITLES_OUTPUT] = titles[rows]
    return outputs

  if titles is not None:
    signature_defs = {
        **signature_defs,
        serving_layout.SERVING_SIGNATURE: _with_titles(signature, k)
    }
  return Servable(
      name, version, path, signature_defs,
      {serving_layout.SERVING_SIGNATURE: retrieve}, options, executor,
      f"{index.meta['kind']} index over {search_index.size} items, "
      f"query tower {tower_dir}", index=search_index)


def make_loader(base_paths: Dict[str, str], options: RunOptions
               ) -> Callable[[str, int, str], Servable]:
  """The load function the registry calls for `(name, version, path)`.

  `base_paths` maps served model names to their base paths; `retrieval`
  pairs with the `query_tower` among them. The servables it loads run their
  models on one pool of `options.concurrent_calls` threads (TensorFlow and
  the indexes release the GIL while they compute).
  """
  towers = PairedTowerFinder(base_paths.get(serving_layout.QUERY_TOWER))
  executor = concurrent.futures.ThreadPoolExecutor(
      max_workers=options.concurrent_calls, thread_name_prefix="model")

  def load(name: str, version: int, path: str) -> Servable:
    if name == serving_layout.RETRIEVAL:
      servable = load_retrieval(name, version, path, options, executor,
                                towers)
    else:
      servable = load_saved_model(name, version, path, options, executor)
    servable.warm_up()
    return servable

  return load

