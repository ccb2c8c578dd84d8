"""Request batching across concurrent calls, for an asyncio server.

A tower or an index answers a batch of 32 queries in little more time than
one, so concurrent requests are merged into one call, as TF Serving does
with `--enable_batching`, configured by the same `BatchingParameters`
(`read_parameters` reads TF Serving's `--batching_parameters_file`).
Requests queue on the event loop; whenever fewer than `num_batch_threads`
batches are running, everything queued (up to `max_batch_size` rows) goes
to a model thread as one batch, and while batches run new requests queue up
for the next. Batches so grow with load, and a lone request never waits for
company unless `batch_timeout_micros` asks it to. A request whose client
went away is dropped before it runs. All state is touched on the event loop
only, so nothing here needs a lock; the model runs off the loop, which keeps
accepting and answering calls meanwhile.
"""
import asyncio
import collections
import concurrent.futures
import dataclasses
import functools
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2

Tensors = Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
  """TF Serving's `BatchingParameters` that `mmse serve` honours, by their
  names in its `--batching_parameters_file`; applied to every batched
  signature. Defaults: bench/results/serving.md measures them."""
  # Rows of one merged batch, and so of one request.
  max_batch_size: int = 256
  # How long the oldest queued request waits for company; 0: never.
  batch_timeout_micros: int = 0
  # Batches of one signature running at once, each on a model thread: one
  # per core lets the model use every core while the event loop decodes.
  num_batch_threads: int = dataclasses.field(
      default_factory=lambda: os.cpu_count() or 1)
  # Full batches that may queue; a request beyond is refused (UNAVAILABLE).
  max_enqueued_batches: int = 10
  # Sizes a batch is padded up to with copies of its first row (fixed
  # shapes); empty: run batches as they come.
  allowed_batch_sizes: Tuple[int, ...] = ()

  def __post_init__(self):
    for name in ("max_batch_size", "num_batch_threads",
                 "max_enqueued_batches"):
      if getattr(self, name) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.batch_timeout_micros < 0:
      raise ValueError("batch_timeout_micros must be >= 0, got "
                       f"{self.batch_timeout_micros}")
    sizes = list(self.allowed_batch_sizes)
    if sizes and (sizes[0] < 1 or
                  any(b <= a for a, b in zip(sizes, sizes[1:])) or
                  sizes[-1] != self.max_batch_size):
      # TF Serving's rule: a batch of max_batch_size rows must fit one.
      raise ValueError(f"allowed_batch_sizes {sizes} must be positive, "
                       "increasing and end with max_batch_size "
                       f"{self.max_batch_size}")

  def padded_size(self, rows: int) -> int:
    """The allowed batch size a batch of `rows` rows is padded to."""
    return next((s for s in self.allowed_batch_sizes if s >= rows), rows)


def _batching_parameters_message():
  """TF Serving's `BatchingParameters` message (session_bundle_config.proto,
  which its pip package does not ship), for the fields `BatchingParameters`
  takes: a file naming any other fails to parse, naming it."""
  proto = descriptor_pb2.FileDescriptorProto(
      name="mmse/batching_parameters.proto", package="tensorflow.serving",
      dependency=["google/protobuf/wrappers.proto"], syntax="proto3")
  message = proto.message_type.add(name="BatchingParameters")
  int64_value = "." + wrappers_pb2.Int64Value.DESCRIPTOR.full_name
  field = descriptor_pb2.FieldDescriptorProto
  for number, name in enumerate(("max_batch_size", "batch_timeout_micros",
                                 "max_enqueued_batches", "num_batch_threads"),
                                start=1):
    message.field.add(name=name, number=number, type=field.TYPE_MESSAGE,
                      type_name=int64_value, label=field.LABEL_OPTIONAL)
  message.field.add(name="allowed_batch_sizes", number=6,
                    type=field.TYPE_INT64, label=field.LABEL_REPEATED)
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  pool.AddSerializedFile(proto.SerializeToString())
  return message_factory.MessageFactory(pool).GetPrototype(
      pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


def read_parameters(path: str) -> BatchingParameters:
  """Reads a TF Serving `--batching_parameters_file` (text protobuf, e.g.
  `max_batch_size { value: 32 }`); fields it leaves out keep their default.

  Raises:
    ValueError: the file does not parse, names a field `mmse serve` does
      not take, or holds a value out of range; the message names the file.
  """
  with open(path, encoding="utf-8") as f:
    text = f.read()
  try:
    parsed = text_format.Parse(text, _batching_parameters_message()())
    values = {field.name: value.value if field.message_type else tuple(value)
              for field, value in parsed.ListFields()}
    return BatchingParameters(**values)
  except (text_format.ParseError, ValueError) as e:
    raise ValueError(f"{path}: {e}") from e


class QueueFullError(Exception):
  """A request found `max_enqueued_batches` full batches already queued."""


class _Task:
  """One queued request and the future its caller awaits."""

  __slots__ = ("inputs", "rows", "future", "enqueued")

  def __init__(self, inputs: Tensors, rows: int, future: asyncio.Future):
    self.inputs = inputs
    self.rows = rows
    self.future = future
    self.enqueued = time.monotonic()


class Batcher:
  """Runs `fn` on row-concatenated inputs of concurrent `run` calls.

  Every input and output tensor of `fn` has the batch as first dimension.
  """

  def __init__(self, fn: Callable[[Tensors], Tensors],
               parameters: BatchingParameters,
               executor: concurrent.futures.Executor,
               on_batch: Callable[[int, float], None] = lambda rows, s: None):
    """`on_batch(rows, seconds)` is told of every call of `fn` that
    answered (rows before padding)."""
    self._fn = fn
    self._on_batch = on_batch
    self._parameters = parameters
    self._max_rows = parameters.max_batch_size
    self._max_queued_rows = (parameters.max_enqueued_batches *
                             parameters.max_batch_size)
    self._executor = executor
    self._max_running = parameters.num_batch_threads
    self._timeout = parameters.batch_timeout_micros / 1e6
    self._queue: "collections.deque[_Task]" = collections.deque()
    self._queued_rows = 0
    self._running = 0
    self._timer: Optional[asyncio.TimerHandle] = None

  async def run(self, inputs: Tensors, rows: int) -> Tensors:
    """Answers one request of `rows` rows, batched with its neighbours.

    Raises:
      ValueError: rows is not in 1..max_batch_size.
      QueueFullError: max_enqueued_batches batches are already queued.
      asyncio.CancelledError: the caller was cancelled (the request is
        dropped if it has not started).
      Exception: whatever `fn` raised for this request.
    """
    if not 1 <= rows <= self._max_rows:
      raise ValueError(f"batch of {rows} rows; 1..{self._max_rows} allowed")
    if self._queued_rows + rows > self._max_queued_rows:
      raise QueueFullError(
          f"{self._queued_rows} rows are queued for this model already; "
          f"at most {self._max_queued_rows} (max_enqueued_batches "
          f"{self._parameters.max_enqueued_batches} x max_batch_size "
          f"{self._max_rows})")
    loop = asyncio.get_running_loop()
    task = _Task(inputs, rows, loop.create_future())
    self._queue.append(task)
    self._queued_rows += rows
    self._start_batches(loop)
    return await task.future  # Cancelling this cancels the future too.

  def _start_batches(self, loop: asyncio.AbstractEventLoop) -> None:
    if self._timer is not None:
      self._timer.cancel()
      self._timer = None
    while self._running < self._max_running:
      while self._queue and self._queue[0].future.done():
        # Cancelled while queued: never runs.
        self._queued_rows -= self._queue.popleft().rows
      if not self._queue:
        return
      if self._timeout > 0:
        wait = self._queue[0].enqueued + self._timeout - time.monotonic()
        if wait > 0 and self._queued_rows < self._max_rows:
          self._timer = loop.call_later(wait, self._start_batches, loop)
          return
      batch, rows = [], 0
      while self._queue and rows + self._queue[0].rows <= self._max_rows:
        task = self._queue.popleft()
        self._queued_rows -= task.rows
        if not task.future.done():
          batch.append(task)
          rows += task.rows
      if not batch:
        continue
      self._running += 1
      loop.run_in_executor(self._executor, self._call, batch).add_done_callback(
          functools.partial(self._finished, loop, batch))

  def _finished(self, loop: asyncio.AbstractEventLoop, batch: List[_Task],
                done: asyncio.Future) -> None:
    self._running -= 1
    if done.exception() is not None:
      results = [(None, done.exception())] * len(batch)
    else:
      results = done.result()
    for task, (outputs, error) in zip(batch, results):
      if task.future.done():
        continue  # Cancelled while it ran; the answer has no taker.
      if error is not None:
        task.future.set_exception(error)
      else:
        task.future.set_result(outputs)
    self._start_batches(loop)

  def _call(self, batch: List[_Task]
           ) -> List[Tuple[Optional[Tensors], Optional[BaseException]]]:
    """Runs on a model thread: one call, then per-task outputs or errors."""
    try:
      total = sum(t.rows for t in batch)
      padding = self._parameters.padded_size(total) - total
      inputs = {
          name: (batch[0].inputs[name] if len(batch) == 1 and not padding
                 else np.concatenate(
                     [t.inputs[name] for t in batch] +
                     [np.repeat(batch[0].inputs[name][:1], padding, axis=0)]))
          for name in batch[0].inputs
      }
      started = time.perf_counter()
      outputs = self._fn(inputs)
      seconds = time.perf_counter() - started
      for name, value in outputs.items():
        if len(value) != total + padding:
          raise RuntimeError(f"output {name!r} has {len(value)} rows for a "
                             f"batch of {total + padding}")
      self._on_batch(total, seconds)
    except Exception as e:  # pylint: disable=broad-except
      if len(batch) == 1:
        return [(None, e)]
      # One request's bad value must not fail the others merged with it.
      return [self._call([task])[0] for task in batch]
    results, start = [], 0
    for task in batch:
      stop = start + task.rows
      results.append(({n: v[start:stop] for n, v in outputs.items()}, None))
      start = stop
    return results
