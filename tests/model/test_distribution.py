"""Training under tf.distribute: a batch split between replicas."""
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Seconds a subprocess may take: TF, TFX and tf.Transform load slowly on a
# busy machine.
TIMEOUT = 480


def _start(args, log_path: pathlib.Path, **env):
  log = open(log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
  process = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, "-m", "tests.fixtures.distributed_run"] + args,
      cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
      # On CPU, also where there is a GPU: not two processes on one.
      env=dict(os.environ, TF_USE_LEGACY_KERAS="1", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(
                   filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               **env))
  log.close()
  return process, log_path


def _wait(started, timeout: float = TIMEOUT):
  """Waits for every process; the first failure stops the others.

  Returns:
    Each process's output. Fails the test, with every output's end, if any
    exits non-zero or runs past `timeout`.
  """
  deadline = time.monotonic() + timeout
  processes = [process for process, _ in started]
  problem = None
  while problem is None and any(p.poll() is None for p in processes):
    if any(p.poll() for p in processes):
      problem = "a process failed"
    elif time.monotonic() > deadline:
      problem = f"timed out after {timeout} s"
    else:
      time.sleep(1)
  for process in processes:
    if process.poll() is None:
      process.kill()
    process.wait()
  outputs = [log.read_text(encoding="utf-8", errors="replace")
             for _, log in started]
  if problem is None and any(p.returncode for p in processes):
    problem = "a process failed"
  if problem:
    pytest.fail(problem + "\n" + "\n".join(
        f"--- {' '.join(p.args[3:5])}: exit {p.returncode}, {log}\n"
        f"{output[-6000:]}"
        for p, (_, log), output in zip(processes, started, outputs)))
  return outputs


def test_a_batch_split_between_two_replicas_trains_as_on_one_device(tmp_path):
  out = tmp_path / "split_batch.json"
  _wait([_start(["split_batch", str(out)], tmp_path / "split_batch.log")])
  results = json.loads(out.read_text(encoding="utf-8"))
  assert [r["size"] for r in results] == [7, 1]  # 4 + 3 slates; 1 + none
  for result in results:
    assert result["replicas"] == 2
    assert result["weight_difference"] < 1e-5, result
    one, two = result["one_device"], result["two_replicas"]
    assert one["retrieval_loss"] > 0.1 and one["ranking_loss"] > 0, result
    for name in ("loss", "retrieval_loss", "ranking_loss",
                 "batch_retrieval_loss", "batch_ranking_loss", "mean_loss"):
      assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-6), name
