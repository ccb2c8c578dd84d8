"""Where training runs: `ModelConfig.distribution` names a tf.distribute
strategy.

- "none": the default strategy, one device of one process;
- "mirrored": `MirroredStrategy` over this machine's GPUs (its CPU if it has
  none), one replica per device;
- "multi_worker": `MultiWorkerMirroredStrategy` over the processes that
  `TF_CONFIG` names, each with its local devices. Every worker runs the
  Trainer (`trainer.run_fn`) with the same config and its own `TF_CONFIG`
  task; they meet over gRPC and train one model synchronously.

Under every strategy `ModelConfig.batch_size` is the global batch: each step
the replicas take equal shares of one batch, and the retrieval loss still
compares each positive with every item of the whole batch
(`tasks.MultiStageRetrieval` gathers the other replicas' items).
"""
import json
import os
import tempfile

import tensorflow as tf

from model.config import DISTRIBUTIONS
from model.config import MIRRORED
from model.config import MULTI_WORKER
from model.config import NO_DISTRIBUTION


def strategy(name: str) -> tf.distribute.Strategy:
  """The strategy `name` (one of `DISTRIBUTIONS`) stands for.

  "multi_worker" must be built before TensorFlow runs anything in this
  process (it starts the worker's gRPC server), so `run_fn` builds the
  strategy first.

  Raises:
    ValueError: on an unknown name, or "multi_worker" without `TF_CONFIG`,
      or with one that names no cluster or no task of it.
    RuntimeError: "multi_worker" after TensorFlow has started in this process.
  """
  if name == NO_DISTRIBUTION:
    return tf.distribute.get_strategy()
  if name == MIRRORED:
    return tf.distribute.MirroredStrategy()
  if name == MULTI_WORKER:
    _check_tf_config()
    try:
      return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
      raise RuntimeError(
          "distribution='multi_worker' must start before TensorFlow runs "
          "anything in this process; run each worker's Trainer in a process "
          f"of its own ({error})") from error
  raise ValueError(
      f"Unknown distribution {name!r}; valid: {', '.join(DISTRIBUTIONS)}")


def _check_tf_config() -> None:
  text = os.environ.get("TF_CONFIG", "")
  if not text.strip():
    raise ValueError(
        "distribution='multi_worker' reads the cluster from the TF_CONFIG "
        "environment variable, which is not set; set it on every worker, "
        'e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}')
  try:
    tf_config = json.loads(text)
  except ValueError as error:
    raise ValueError(f"TF_CONFIG is not JSON: {error}: {text!r}") from error
  if not isinstance(tf_config, dict) or not tf_config.get("cluster") or (
      not tf_config.get("task")):
    raise ValueError("TF_CONFIG needs a 'cluster' and this process's 'task' "
                     f"for distribution='multi_worker', got {text!r}")


def is_chief(distribute: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's artifacts (logs, exports).

  The chief is the "chief" task, or worker 0 of a cluster without one; a
  single process is its own chief.
  """
  resolver = getattr(distribute, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  return (resolver.task_type == "worker" and resolver.task_id == 0 and
          "chief" not in resolver.cluster_spec().as_dict())


def worker_dir(chief_dir: str, chief: bool) -> str:
  """`chief_dir` for the chief; a fresh local temporary directory otherwise.

  Every worker takes part in saving (the collective ops of distributed
  variables), but only the chief's copy is kept; the caller removes the
  others' (`remove_worker_dir`).
  """
  return chief_dir if chief else tempfile.mkdtemp(prefix="mmse_worker_")


def remove_worker_dir(directory: str, chief: bool) -> None:
  if not chief:
    tf.io.gfile.rmtree(directory)


def wait_for_all(distribute: tf.distribute.Strategy) -> None:
  """Returns once every worker of `distribute` has called it.

  Called after the chief's exports: a worker's Trainer checks, as it ends,
  that the model directory exists, and only the chief writes it.
  """
  if isinstance(distribute, tf.distribute.MultiWorkerMirroredStrategy):
    distribute.reduce(tf.distribute.ReduceOp.SUM,
                      distribute.run(lambda: tf.constant(1.0)), axis=None)
