"""Request batching: merged calls, isolation of a bad request, cancellation."""
import threading
import time

import numpy as np
import pytest

from serving import batching


class _Doubler:
  """Doubles `x`; records each batch size; can block until released."""

  def __init__(self):
    self.batches = []
    self.gate = threading.Event()
    self.gate.set()
    self.entered = threading.Event()

  def __call__(self, inputs):
    self.entered.set()
    self.gate.wait()
    if (inputs["x"] < 0).any():
      raise ValueError("negative input")
    self.batches.append(len(inputs["x"]))
    return {"y": inputs["x"] * 2}


def _run_in_threads(batcher, values):
  results, errors = {}, {}

  def call(value):
    try:
      results[value] = batcher.run({"x": np.array([value])}, 1)["y"]
    except Exception as e:  # pylint: disable=broad-except
      errors[value] = e

  threads = [threading.Thread(target=call, args=(v,)) for v in values]
  for t in threads:
    t.start()
  return threads, results, errors


def test_concurrent_requests_share_a_batch_and_get_their_own_rows():
  fn = _Doubler()
  batcher = batching.Batcher(fn, max_batch_rows=8)
  fn.gate.clear()
  # The first request runs alone and holds the model; the next nine queue
  # behind it and run as batches of at most 8 rows.
  first, first_results, _ = _run_in_threads(batcher, [100])
  assert fn.entered.wait(5)
  threads, results, errors = _run_in_threads(batcher, range(1, 10))
  time.sleep(0.2)
  fn.gate.set()
  for t in first + threads:
    t.join(5)
  assert not errors
  assert first_results[100].tolist() == [200]
  assert {v: r.tolist() for v, r in results.items()} == {
      v: [2 * v] for v in range(1, 10)}
  assert fn.batches == [1, 8, 1]


def test_a_failing_request_does_not_fail_its_batch_mates():
  fn = _Doubler()
  batcher = batching.Batcher(fn, max_batch_rows=8)
  fn.gate.clear()
  first, _, _ = _run_in_threads(batcher, [100])
  assert fn.entered.wait(5)
  threads, results, errors = _run_in_threads(batcher, [1, -1, 2])
  time.sleep(0.2)
  fn.gate.set()
  for t in first + threads:
    t.join(5)
  assert sorted(results) == [1, 2]
  assert list(errors) == [-1]
  assert isinstance(errors[-1], ValueError)


def test_a_cancelled_request_is_dropped_before_it_runs():
  fn = _Doubler()
  batcher = batching.Batcher(fn, max_batch_rows=8)
  fn.gate.clear()
  first, _, _ = _run_in_threads(batcher, [100])
  assert fn.entered.wait(5)
  cancels = []
  outcome = {}

  def call():
    try:
      batcher.run({"x": np.array([5])}, 1, on_submit=cancels.append)
    except batching.CancelledError as e:
      outcome["error"] = e

  waiter = threading.Thread(target=call)
  waiter.start()
  time.sleep(0.2)
  cancels[0]()  # The client went away while the request was queued.
  waiter.join(5)
  fn.gate.set()
  for t in first:
    t.join(5)
  assert isinstance(outcome["error"], batching.CancelledError)
  assert fn.batches == [1]  # Only the first request ever ran.


def test_batch_timeout_waits_for_company():
  fn = _Doubler()
  batcher = batching.Batcher(fn, max_batch_rows=4, batch_timeout_s=0.3)
  threads, results, errors = _run_in_threads(batcher, [1, 2, 3, 4])
  for t in threads:
    t.join(5)
  assert not errors and len(results) == 4
  assert fn.batches == [4]


def test_oversized_request_is_refused():
  batcher = batching.Batcher(_Doubler(), max_batch_rows=2)
  with pytest.raises(ValueError, match="1..2 allowed"):
    batcher.run({"x": np.arange(3)}, 3)
