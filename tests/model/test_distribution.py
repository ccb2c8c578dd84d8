"""Training under tf.distribute: the strategy knob, two workers on localhost,
a batch split between replicas, MirroredStrategy through `run_fn`."""
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.trainer import fn_args_utils

from contracts import serving_layout
from model import distribution
from model import trainer
from tests.fixtures import tiny_trainer

ROOT = pathlib.Path(__file__).resolve().parents[2]
# One epoch over the data, as the pipeline trains (no train_args.num_steps):
# two steps of 8 and 4 slates, then the 6 eval slates once.
OPTIONS = {"model": {"epochs": 1}}
# MirroredStrategy on the repeated stream that num_steps reads.
STEPS = {"train_steps": 3, "eval_steps": 1}
# Seconds a subprocess may take: TF, TFX and tf.Transform load slowly on a
# busy machine; a worker whose peer died waits on the peer until then.
TIMEOUT = 480


def test_none_is_the_default_strategy():
  assert distribution.strategy("none") is tf.distribute.get_strategy()
  assert distribution.is_chief(distribution.strategy("none"))


def test_mirrored_is_a_mirrored_strategy_over_local_devices():
  strategy = distribution.strategy("mirrored")
  assert isinstance(strategy, tf.distribute.MirroredStrategy)
  assert strategy.num_replicas_in_sync >= 1
  assert distribution.is_chief(strategy)


def test_multi_worker_needs_tf_config(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  with pytest.raises(ValueError, match="TF_CONFIG.*not set"):
    distribution.strategy("multi_worker")
  monkeypatch.setenv("TF_CONFIG", "{cluster")
  with pytest.raises(ValueError, match="TF_CONFIG is not JSON"):
    distribution.strategy("multi_worker")
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}}))
  with pytest.raises(ValueError, match="needs a 'cluster' and .* 'task'"):
    distribution.strategy("multi_worker")


def test_multi_worker_must_start_before_tensorflow(monkeypatch):
  tf.config.list_logical_devices()  # TensorFlow has started in this process.
  monkeypatch.setenv("TF_CONFIG", json.dumps({
      "cluster": {"worker": [f"localhost:{_free_ports(1)[0]}"]},
      "task": {"type": "worker", "index": 0}}))
  with pytest.raises(RuntimeError, match="must start before TensorFlow runs"):
    distribution.strategy("multi_worker")


def test_unknown_distribution_names_the_valid_ones():
  with pytest.raises(ValueError,
                     match="'tpu'; valid: none, mirrored, multi_worker"):
    distribution.strategy("tpu")
  # run_fn refuses it before reading anything.
  with pytest.raises(ValueError, match="Unknown distribution 'tpu'"):
    trainer.run_fn(fn_args_utils.FnArgs(
        custom_config={"model": {"distribution": "tpu"}}))


@pytest.mark.parametrize("cluster, task_type, task_id, chief", [
    ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
    ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "chief", 0, True),
    ({"chief": ["c:1"], "worker": ["a:1"]}, "worker", 0, False),
])
def test_chief_is_the_chief_task_or_else_worker_0(cluster, task_type, task_id,
                                                  chief):
  resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
      tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
  strategy = types.SimpleNamespace(cluster_resolver=resolver)
  assert distribution.is_chief(strategy) is chief


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("distribution")
  tiny_trainer.write_transformed(tmp)
  return tmp


def _free_ports(count: int):
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("localhost", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


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


# The tasks of a Vertex AI job of two replicas (`mmse compile
# --training-replicas 2`): pool 0 is the chief, the others are workers.
TASKS = (("chief", 0), ("worker", 0))


@pytest.fixture(scope="module")
def workers(transformed):
  """A chief and a worker process running `run_fn` together into one output
  directory, as the replicas of a Vertex AI job (started, not waited)."""
  ports = _free_ports(len(TASKS))
  cluster = {"chief": [f"localhost:{ports[0]}"],
             "worker": [f"localhost:{port}" for port in ports[1:]]}
  started = []
  for task_type, index in TASKS:
    tf_config = {"cluster": cluster, "task": {"type": task_type,
                                              "index": index}}
    started.append(_start(
        ["worker", str(transformed), str(transformed / "cluster"),
         json.dumps(OPTIONS)],
        transformed / f"{task_type}{index}.log",
        TF_CONFIG=json.dumps(tf_config)))
  yield started
  for process, _ in started:  # After a failed test.
    if process.poll() is None:
      process.kill()
      process.wait()


def _run_fn(root: pathlib.Path, out: pathlib.Path, name: str,
            **steps) -> pathlib.Path:
  trainer.run_fn(tiny_trainer.fn_args(
      root, out / "serving", out / "run",
      model=dict(OPTIONS["model"], distribution=name), **steps))
  return out / "serving"


@pytest.fixture(scope="module")
def single_worker(transformed):
  """`run_fn` in this process, as one worker: the reference export."""
  return _run_fn(transformed, transformed / "single", "none")


def _signatures(tower_dir: pathlib.Path):
  """{signature name: (input args, input kwargs, outputs)} of a SavedModel."""
  loaded = tf.saved_model.load(str(tower_dir))
  return {name: (*function.structured_input_signature,
                 function.structured_outputs)
          for name, function in loaded.signatures.items()}


def _embeddings(serving: pathlib.Path):
  """Both towers' embeddings of the tiny queries and catalogue."""
  query_tower = tf.saved_model.load(str(
      serving / serving_layout.QUERY_TOWER)).signatures[
          serving_layout.SERVING_SIGNATURE]
  item_tower = tf.saved_model.load(str(
      serving / serving_layout.ITEM_TOWER)).signatures[
          serving_layout.SERVING_SIGNATURE]
  items = sorted(tiny_trainer.ITEMS)
  return (
      query_tower(query=tf.constant(list(tiny_trainer.QUERIES)))[
          serving_layout.EMBEDDING_OUTPUT].numpy(),
      item_tower(
          item_id=tf.constant(items, tf.string),
          title=tf.constant([tiny_trainer.ITEMS[i][0] for i in items]),
          brand=tf.constant([tiny_trainer.ITEMS[i][1] for i in items]),
          price=tf.constant([tiny_trainer.ITEMS[i][2] for i in items],
                            tf.float32))[
                                serving_layout.EMBEDDING_OUTPUT].numpy())


def _assert_towers_like_single_worker(serving: pathlib.Path,
                                      single_worker: pathlib.Path):
  for tower in (serving_layout.QUERY_TOWER, serving_layout.ITEM_TOWER):
    signatures = _signatures(serving / tower)
    assert list(signatures) == [serving_layout.SERVING_SIGNATURE]
    assert signatures == _signatures(single_worker / tower), tower
  queries, items = _embeddings(serving)
  assert queries.shape == (len(tiny_trainer.QUERIES),
                           tiny_trainer.EMBEDDING_DIM)
  assert items.shape == (len(tiny_trainer.ITEMS), tiny_trainer.EMBEDDING_DIM)
  assert np.isfinite(queries).all() and np.isfinite(items).all()


def test_two_workers_train_together_and_the_chief_exports_the_towers(
    transformed, workers, single_worker):
  outputs = _wait(workers)
  assert "Training on 2 replicas (multi_worker), the chief" in outputs[0]
  assert "Training on 2 replicas (multi_worker), not the chief" in outputs[1]
  chief = transformed / "cluster"
  _assert_towers_like_single_worker(chief / "serving", single_worker)
  initial = pathlib.Path(serving_layout.initial_towers_dir(str(chief)))
  assert (initial / serving_layout.QUERY_TOWER).is_dir()
  assert (initial / serving_layout.ITEM_TOWER).is_dir()
  assert list((chief / "run").rglob("events.out.tfevents.*"))
  # Training moved the chief's towers away from where they started.
  trained_queries, _ = _embeddings(chief / "serving")
  initial_queries, _ = _embeddings(initial)
  assert np.abs(trained_queries - initial_queries).max() > 1e-3
  # The worker trained and saved too, into directories it removed, and
  # returned only once the chief's towers were there (the fixture checks).
  assert {p.name for p in chief.iterdir()} == {
      "serving", "run", os.path.basename(
          serving_layout.initial_towers_dir(str(chief)))}


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


def test_mirrored_run_fn_exports_the_towers(transformed, single_worker):
  serving = _run_fn(transformed, transformed / "mirrored", "mirrored",
                    **STEPS)
  _assert_towers_like_single_worker(serving, single_worker)
