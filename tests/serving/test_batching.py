"""Request batching: merged calls, isolation of a bad request, cancellation,
padding, a full queue, and TF Serving's batching parameters file."""
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


def _batcher(fn, executor, on_batch=lambda rows, seconds: None,
             **parameters):
  parameters = {"max_batch_size": 8, "num_batch_threads": 1, **parameters}
  return batching.Batcher(fn, batching.BatchingParameters(**parameters),
                          executor, on_batch=on_batch)


def _call(batcher, value):
  return batcher.run({"x": np.array([value])}, 1)


async def _settle():
  for _ in range(5):
    await asyncio.sleep(0.01)


def test_concurrent_requests_share_a_batch_and_get_their_own_rows(executor):
  fn = _Doubler()
  observed = []
  batcher = _batcher(
      fn, executor,
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
  batcher = _batcher(fn, executor,
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
  batcher = _batcher(fn, executor)

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
  batcher = _batcher(fn, executor, max_batch_size=4,
                     batch_timeout_micros=300_000)

  async def scenario():
    return await asyncio.gather(*[_call(batcher, v) for v in (1, 2, 3)])

  assert [r["y"].tolist() for r in asyncio.run(scenario())] == [[2], [4], [6]]
  assert fn.batches == [3]


def test_oversized_request_is_refused(executor):
  batcher = _batcher(_Doubler(), executor, max_batch_size=2)
  with pytest.raises(ValueError, match="1..2 allowed"):
    asyncio.run(batcher.run({"x": np.arange(3)}, 3))


def test_batches_run_side_by_side_up_to_num_batch_threads(executor):
  fn = _Doubler()
  batcher = _batcher(fn, executor, num_batch_threads=2)

  async def scenario():
    fn.gate.clear()
    # Two batches start at once (one request each), the rest queue.
    calls = [asyncio.ensure_future(_call(batcher, v)) for v in range(5)]
    await _settle()
    assert batcher._running == 2  # pylint: disable=protected-access
    fn.gate.set()
    return await asyncio.gather(*calls)

  out = asyncio.run(scenario())
  assert [r["y"].tolist() for r in out] == [[2 * v] for v in range(5)]
  assert sorted(fn.batches) == [1, 1, 3]


def test_batches_are_padded_to_an_allowed_size(executor):
  fn = _Doubler()
  observed = []
  batcher = _batcher(fn, executor, max_batch_size=4,
                     allowed_batch_sizes=(2, 4),
                     on_batch=lambda rows, seconds: observed.append(rows))
  out = asyncio.run(batcher.run({"x": np.array([3, 4, 5])}, 3))
  assert out["y"].tolist() == [6, 8, 10]  # The padding row is cut off.
  assert fn.batches == [4] and observed == [3]


def test_a_request_beyond_the_queue_bound_is_refused(executor):
  fn = _Doubler()
  batcher = _batcher(fn, executor, max_batch_size=2, max_enqueued_batches=1)

  async def scenario():
    fn.gate.clear()
    running = asyncio.ensure_future(_call(batcher, 1))
    await _settle()
    queued = [asyncio.ensure_future(_call(batcher, v)) for v in (2, 3)]
    await _settle()
    with pytest.raises(batching.QueueFullError, match="max_enqueued_batches"):
      await _call(batcher, 4)
    fn.gate.set()
    return await asyncio.gather(running, *queued)

  assert [r["y"].tolist() for r in asyncio.run(scenario())] == [[2], [4], [6]]


def test_a_parameters_file_as_tf_serving_writes_it(tmp_path):
  path = tmp_path / "batching.config"
  path.write_text("max_batch_size { value: 32 }\n"
                  "batch_timeout_micros { value: 500 }\n"
                  "num_batch_threads { value: 3 }\n"
                  "max_enqueued_batches { value: 7 }\n"
                  "allowed_batch_sizes: 8\nallowed_batch_sizes: 32\n")
  assert batching.read_parameters(str(path)) == batching.BatchingParameters(
      max_batch_size=32, batch_timeout_micros=500, num_batch_threads=3,
      max_enqueued_batches=7, allowed_batch_sizes=(8, 32))


def test_fields_a_parameters_file_leaves_out_keep_their_defaults(tmp_path):
  path = tmp_path / "batching.config"
  path.write_text("batch_timeout_micros { value: 0 }\n")
  assert (batching.read_parameters(str(path)) ==
          batching.BatchingParameters())


@pytest.mark.parametrize("text, problem", [
    ("max_batch_size { value: 32 }\nthread_pool_name { value: 'x' }",
     "thread_pool_name"),
    ("max_batch_size: 32", "max_batch_size"),
    ("num_batch_threads { value: 0 }", "num_batch_threads must be >= 1"),
    ("max_batch_size { value: 16 }\nallowed_batch_sizes: 8",
     "end with max_batch_size 16"),
    ("batch_timeout_micros { value: -1 }", "batch_timeout_micros"),
])
def test_a_bad_parameters_file_is_an_error_naming_it(tmp_path, text,
                                                     problem):
  path = tmp_path / "batching.config"
  path.write_text(text)
  with pytest.raises(ValueError, match=problem) as error:
    batching.read_parameters(str(path))
  assert str(path) in str(error.value)
