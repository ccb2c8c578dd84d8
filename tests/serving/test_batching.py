"""Request batching: merged calls, isolation of a bad request, cancellation."""
import asyncio
import concurrent.futures
import threading

import numpy as np
import pytest

from serving import batching


class _Doubler:
  """Doubles `x` on a model thread; records batch sizes; can be held."""

  def __init__(self):
    self.batches = []
    self.gate = threading.Event()
    self.gate.set()

  def __call__(self, inputs):
    self.gate.wait(10)
    if (inputs["x"] < 0).any():
      raise ValueError("negative input")
    self.batches.append(len(inputs["x"]))
    return {"y": inputs["x"] * 2}


@pytest.fixture
def executor():
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    yield pool


def _call(batcher, value):
  return batcher.run({"x": np.array([value])}, 1)


async def _settle():
  for _ in range(5):
    await asyncio.sleep(0.01)


def test_concurrent_requests_share_a_batch_and_get_their_own_rows(executor):
  fn = _Doubler()
  observed = []
  batcher = batching.Batcher(
      fn, max_batch_rows=8, executor=executor,
      on_batch=lambda rows, seconds: observed.append((rows, seconds)))

  async def scenario():
    fn.gate.clear()
    # The first request runs alone and holds the model; nine more queue
    # behind it and run as batches of at most 8 rows.
    first = asyncio.ensure_future(_call(batcher, 100))
    await _settle()
    rest = [asyncio.ensure_future(_call(batcher, v)) for v in range(1, 10)]
    await _settle()
    fn.gate.set()
    return await first, await asyncio.gather(*rest)

  first, rest = asyncio.run(scenario())
  assert first["y"].tolist() == [200]
  assert [r["y"].tolist() for r in rest] == [[2 * v] for v in range(1, 10)]
  assert fn.batches == [1, 8, 1]
  assert [rows for rows, _ in observed] == [1, 8, 1]
  assert all(seconds >= 0 for _, seconds in observed)


def test_a_failing_request_does_not_fail_its_batch_mates(executor):
  fn = _Doubler()
  observed = []
  batcher = batching.Batcher(
      fn, max_batch_rows=8, executor=executor,
      on_batch=lambda rows, seconds: observed.append(rows))

  async def scenario():
    fn.gate.clear()
    first = asyncio.ensure_future(_call(batcher, 100))
    await _settle()
    rest = [asyncio.ensure_future(_call(batcher, v)) for v in (1, -1, 2)]
    await _settle()
    fn.gate.set()
    await first
    return await asyncio.gather(*rest, return_exceptions=True)

  good, bad, also_good = asyncio.run(scenario())
  assert good["y"].tolist() == [2] and also_good["y"].tolist() == [4]
  assert isinstance(bad, ValueError)
  # The merged batch failed; its good requests answered alone.
  assert observed == [1, 1, 1]


def test_a_cancelled_request_is_dropped_before_it_runs(executor):
  fn = _Doubler()
  batcher = batching.Batcher(fn, max_batch_rows=8, executor=executor)

  async def scenario():
    fn.gate.clear()
    first = asyncio.ensure_future(_call(batcher, 100))
    await _settle()
    queued = asyncio.ensure_future(_call(batcher, 5))
    await _settle()
    queued.cancel()  # The client went away while the request was queued.
    await _settle()
    fn.gate.set()
    await first
    with pytest.raises(asyncio.CancelledError):
      await queued
    # The batcher still answers afterwards.
    return await _call(batcher, 7)

  assert asyncio.run(scenario())["y"].tolist() == [14]
  assert fn.batches == [1, 1]  # The cancelled request never ran.


def test_batch_timeout_waits_for_company(executor):
  fn = _Doubler()
  batcher = batching.Batcher(fn, max_batch_rows=4, executor=executor,
                             batch_timeout_s=0.3)

  async def scenario():
    return await asyncio.gather(*[_call(batcher, v) for v in (1, 2, 3)])

  assert [r["y"].tolist() for r in asyncio.run(scenario())] == [[2], [4], [6]]
  assert fn.batches == [3]


def test_oversized_request_is_refused(executor):
  batcher = batching.Batcher(_Doubler(), max_batch_rows=2, executor=executor)
  with pytest.raises(ValueError, match="1..2 allowed"):
    asyncio.run(batcher.run({"x": np.arange(3)}, 3))
