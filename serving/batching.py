"""Request batching across concurrent calls, for an asyncio server.

A tower or an index answers a batch of 32 queries in little more time than
one, so concurrent requests are merged into one call. Requests queue on the
event loop; when no batch is running, everything queued (up to
`max_batch_rows` rows) goes to a model thread as one batch, and while it runs
new requests queue up for the next. Batches so grow with load, and a lone
request never waits for company unless `batch_timeout_s` asks it to (TF
Serving's `batch_timeout_micros`). A request whose client went away is
dropped before it runs. All state is touched on the event loop only, so
nothing here needs a lock; the model runs off the loop, which keeps
accepting and answering calls meanwhile.
"""
import asyncio
import collections
import concurrent.futures
import functools
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

Tensors = Dict[str, np.ndarray]


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

  def __init__(self, fn: Callable[[Tensors], Tensors], max_batch_rows: int,
               executor: concurrent.futures.Executor,
               max_concurrent_batches: int = 1, batch_timeout_s: float = 0.0,
               on_batch: Callable[[int, float], None] = lambda rows, s: None):
    """`on_batch(rows, seconds)` is told of every call of `fn` that
    answered."""
    if max_batch_rows < 1 or max_concurrent_batches < 1:
      raise ValueError("max_batch_rows and max_concurrent_batches must be >= 1")
    self._fn = fn
    self._on_batch = on_batch
    self._max_rows = max_batch_rows
    self._executor = executor
    self._max_running = max_concurrent_batches
    self._timeout = batch_timeout_s
    self._queue: "collections.deque[_Task]" = collections.deque()
    self._running = 0
    self._timer: Optional[asyncio.TimerHandle] = None

  async def run(self, inputs: Tensors, rows: int) -> Tensors:
    """Answers one request of `rows` rows, batched with its neighbours.

    Raises:
      ValueError: rows is not in 1..max_batch_rows.
      asyncio.CancelledError: the caller was cancelled (the request is
        dropped if it has not started).
      Exception: whatever `fn` raised for this request.
    """
    if not 1 <= rows <= self._max_rows:
      raise ValueError(f"batch of {rows} rows; 1..{self._max_rows} allowed")
    loop = asyncio.get_running_loop()
    task = _Task(inputs, rows, loop.create_future())
    self._queue.append(task)
    self._start_batches(loop)
    return await task.future  # Cancelling this cancels the future too.

  def _start_batches(self, loop: asyncio.AbstractEventLoop) -> None:
    if self._timer is not None:
      self._timer.cancel()
      self._timer = None
    while self._running < self._max_running:
      while self._queue and self._queue[0].future.done():
        self._queue.popleft()  # Cancelled while queued: never runs.
      if not self._queue:
        return
      if self._timeout > 0:
        wait = self._queue[0].enqueued + self._timeout - time.monotonic()
        if wait > 0 and sum(t.rows for t in self._queue) < self._max_rows:
          self._timer = loop.call_later(wait, self._start_batches, loop)
          return
      batch, rows = [], 0
      while self._queue and rows + self._queue[0].rows <= self._max_rows:
        task = self._queue.popleft()
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
      inputs = {
          name: (batch[0].inputs[name] if len(batch) == 1 else
                 np.concatenate([t.inputs[name] for t in batch]))
          for name in batch[0].inputs
      }
      started = time.perf_counter()
      outputs = self._fn(inputs)
      seconds = time.perf_counter() - started
      total = sum(t.rows for t in batch)
      for name, value in outputs.items():
        if len(value) != total:
          raise RuntimeError(f"output {name!r} has {len(value)} rows for a "
                             f"batch of {total}")
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
