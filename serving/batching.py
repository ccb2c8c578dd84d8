"""Request batching across concurrent calls, without a scheduler thread.

A tower or an index answers a batch of 32 queries in little more time than
one, so concurrent requests are merged into one call. The thread of the first
request to arrive while no batch runs becomes the leader: it runs every
request queued at that moment (up to `max_batch_rows` rows), and when its own
request is answered it hands leadership to the oldest waiting request. While
a batch runs, new requests queue up and form the next batch, so batches grow
with load and a lone request never waits for company (unless
`batch_timeout_s` asks it to, as TF Serving's `batch_timeout_micros` does).
A cancelled request (its client went away) is dropped before it runs.
"""
import collections
import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np

Tensors = Dict[str, np.ndarray]


class CancelledError(Exception):
  """The request was cancelled before it ran."""


class _Task:
  """One request: its inputs, and later its outputs or error."""

  __slots__ = ("inputs", "rows", "enqueued", "signal", "leader", "done",
               "cancelled", "outputs", "error")

  def __init__(self, inputs: Tensors, rows: int):
    self.inputs = inputs
    self.rows = rows
    self.enqueued = time.monotonic()
    # Released when the task is answered or made leader; waiters re-check
    # the flags under the batcher's lock, so a spare release is harmless.
    self.signal = threading.Semaphore(0)
    self.leader = False
    self.done = False
    self.cancelled = False
    self.outputs: Optional[Tensors] = None
    self.error: Optional[BaseException] = None


class Batcher:
  """Runs `fn` on row-concatenated inputs of concurrent `run` calls.

  Every input and output tensor of `fn` has the batch as its first dimension.
  """

  def __init__(self, fn: Callable[[Tensors], Tensors], max_batch_rows: int,
               max_concurrent_batches: int = 1, batch_timeout_s: float = 0.0):
    if max_batch_rows < 1 or max_concurrent_batches < 1:
      raise ValueError("max_batch_rows and max_concurrent_batches must be >= 1")
    self._fn = fn
    self._max_rows = max_batch_rows
    self._max_leaders = max_concurrent_batches
    self._timeout = batch_timeout_s
    self._cond = threading.Condition()
    self._queue: "collections.deque[_Task]" = collections.deque()
    self._leaders = 0
    self._gathering = 0  # Leaders waiting out batch_timeout_s for company.

  def run(self, inputs: Tensors, rows: int,
          on_submit: Callable[[Callable[[], None]], None] = lambda _: None
         ) -> Tensors:
    """Answers one request of `rows` rows; blocks until it has run.

    Args:
      inputs: tensors whose first dimension is `rows`.
      rows: the request's batch size (at most max_batch_rows).
      on_submit: receives a callable that cancels the queued request (the
        server registers it as the RPC's termination callback).

    Raises:
      CancelledError: the request was cancelled before it ran.
      Exception: whatever `fn` raised for the batch holding the request.
    """
    if not 1 <= rows <= self._max_rows:
      raise ValueError(f"batch of {rows} rows; 1..{self._max_rows} allowed")
    task = _Task(inputs, rows)
    with self._cond:
      self._queue.append(task)
      if self._leaders < self._max_leaders:
        self._leaders += 1
        task.leader = True
      elif self._gathering:
        self._cond.notify_all()
    on_submit(lambda: self._cancel(task))
    while True:
      with self._cond:
        # A task made leader after another leader answered it must still
        # pass leadership on, so leadership is checked before the answer.
        if task.done and not task.leader:
          break
        is_leader = task.leader
      if is_leader:
        self._lead(task)
      else:
        task.signal.acquire()
    if task.error is not None:
      raise task.error
    return task.outputs

  def _cancel(self, task: _Task) -> None:
    with self._cond:
      if task.done or task.leader or task not in self._queue:
        return  # Running or answered: too late to save the work.
      self._queue.remove(task)
      task.cancelled = True
      self._finish(task, error=CancelledError("request cancelled"))

  def _finish(self, task: _Task, outputs=None, error=None) -> None:
    task.outputs, task.error, task.done = outputs, error, True
    task.signal.release()

  def _take_batch(self) -> List[_Task]:
    """Pops the oldest tasks that fit in one batch; caller holds the lock."""
    if self._timeout > 0 and self._queue:
      deadline = self._queue[0].enqueued + self._timeout
      self._gathering += 1
      while (sum(t.rows for t in self._queue) < self._max_rows and
             time.monotonic() < deadline):
        self._cond.wait(deadline - time.monotonic())
      self._gathering -= 1
    batch, rows = [], 0
    while self._queue and rows + self._queue[0].rows <= self._max_rows:
      task = self._queue.popleft()
      batch.append(task)
      rows += task.rows
    return batch

  def _lead(self, task: _Task) -> None:
    """Runs batches until `task` is answered, then passes leadership on."""
    while True:
      with self._cond:
        if task.done:
          task.leader = False
          successor = next((t for t in self._queue if not t.leader), None)
          if successor is None:
            self._leaders -= 1
          else:
            successor.leader = True
            successor.signal.release()
          return
        batch = self._take_batch()
        if not batch:
          # Our task is in another leader's running batch: wait as a follower.
          task.leader = False
          self._leaders -= 1
          return
      self._run_batch(batch)

  def _run_batch(self, batch: List[_Task]) -> None:
    try:
      outputs = self._call(batch)
    except Exception as e:  # pylint: disable=broad-except
      if len(batch) > 1:
        # One request's bad value must not fail the others merged with it.
        for task in batch:
          self._run_batch([task])
        return
      with self._cond:
        self._finish(batch[0], error=e)
      return
    start = 0
    with self._cond:
      for task in batch:
        stop = start + task.rows
        self._finish(task,
                     outputs={n: v[start:stop] for n, v in outputs.items()})
        start = stop

  def _call(self, batch: List[_Task]) -> Tensors:
    inputs = {
        name: (batch[0].inputs[name] if len(batch) == 1 else
               np.concatenate([t.inputs[name] for t in batch]))
        for name in batch[0].inputs
    }
    outputs = self._fn(inputs)
    total = sum(t.rows for t in batch)
    for name, value in outputs.items():
      if len(value) != total:
        raise RuntimeError(f"output {name!r} has {len(value)} rows for a "
                           f"batch of {total}")
    return outputs
