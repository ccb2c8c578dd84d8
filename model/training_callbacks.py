"""What training shows: progress lines in the log, curves in TensorBoard.

- `ProgressLog`: a line every few seconds within an epoch (step, loss,
  examples/s) and one per epoch. Keras' progress bar redraws a terminal
  line; in a log file it is noise.
- `TensorBoardLog`: every few steps the batch's losses (total, retrieval
  and ranking), the learning rate and the post-fusion head weights; each
  epoch the mean losses of train and
  validation and Recall@K/NDCG@K of the eval queries over the slates' items
  (`in_slate_eval`). Run `train` holds the training curves, run
  `validation` the held-out ones; the x axis is the training step
  everywhere.
- `write_item_projector`: item embeddings for TensorBoard's Projector, with
  each item's id, title, brand and category as the Transform saw them.
"""
import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

import tensorflow as tf
from tensorboard.plugins import projector

from model import in_slate_eval
from model import preprocessing

TRAIN_RUN = "train"
VALIDATION_RUN = "validation"
# Per-step tags, from the keys of the training logs.
STEP_TAGS = {
    "loss": "loss/total",
    "batch_retrieval_loss": "loss/retrieval",
    "batch_ranking_loss": "loss/ranking",
}
LEARNING_RATE_TAG = "optimizer/learning_rate"
HEAD_WEIGHT_TAG = "fusion/head_weight_{kind}"
# Epoch means, written to both runs (validation from the `val_` logs).
EPOCH_TAGS = {
    "mean_loss": "epoch/loss",
    "retrieval_loss": "epoch/retrieval_loss",
    "ranking_loss": "epoch/ranking_loss",
}
IN_SLATE_TAG = "eval/{metric}_in_slate_items"
# Prefix of the in-slate metrics this module adds to the epoch's logs.
IN_SLATE_LOG_PREFIX = "in_slate_"
PROJECTOR_TENSOR = "item_embeddings"
PROJECTOR_METADATA = "metadata.tsv"
_OUT_OF_VOCABULARY = "?"


class ProgressLog(tf.keras.callbacks.Callback):
  """Logs a line every `every_seconds` of an epoch and one per epoch."""

  def __init__(self, batch_size: int, every_seconds: float = 10.0,
               clock: Callable[[], float] = time.monotonic):
    super().__init__()
    self._batch_size = batch_size
    self._every_seconds = every_seconds
    self._clock = clock
    self._steps_per_epoch = None
    self._epoch_start = self._last_line = 0.0
    self._steps = 0

  def on_train_begin(self, logs=None):
    # Unknown for a dataset read once (the first epoch counts it).
    self._steps_per_epoch = self.params.get("steps")

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    self._epoch_start = self._last_line = self._clock()
    self._steps = 0

  def on_train_batch_end(self, batch, logs=None):
    self._steps = batch + 1
    now = self._clock()
    if now - self._last_line < self._every_seconds:
      return
    self._last_line = now
    total = f"/{self._steps_per_epoch}" if self._steps_per_epoch else ""
    logging.info("Epoch %d/%d, step %d%s: %s, %.0f examples/s",
                 self._epoch + 1, self.params["epochs"], self._steps, total,
                 _losses(logs or {}), self._examples_per_second(now))

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    self._steps_per_epoch = self._steps_per_epoch or self._steps
    parts = [_losses(logs)]
    validation = {k[len("val_"):]: v for k, v in logs.items()
                  if k.startswith("val_")}
    if validation:
      parts.append("validation " + _losses(validation))
    in_slate = [f"{k[len(IN_SLATE_LOG_PREFIX):]} {v:.4f}"
                for k, v in sorted(logs.items())
                if k.startswith(IN_SLATE_LOG_PREFIX)]
    if in_slate:
      parts.append("in-slate " + ", ".join(in_slate))
    logging.info("Epoch %d/%d done in %.1f s: %s", epoch + 1,
                 self.params["epochs"], self._clock() - self._epoch_start,
                 "; ".join(parts))

  def _examples_per_second(self, now: float) -> float:
    return self._steps * self._batch_size / max(now - self._epoch_start, 1e-9)


def _losses(logs: Dict[str, float]) -> str:
  """The epoch's mean losses so far: "loss 4.36 (retrieval 4.34, ...)"."""
  objectives = [f"{name} {logs[f'{name}_loss']:.4f}"
                for name in ("retrieval", "ranking")
                if f"{name}_loss" in logs]
  text = f"loss {logs.get('mean_loss', logs.get('loss', float('nan'))):.4f}"
  return f"{text} ({', '.join(objectives)})" if objectives else text


class TensorBoardLog(tf.keras.callbacks.Callback):
  """Step and epoch scalars in `log_dir`'s `train` and `validation` runs.

  Needs the model's per-batch objectives in the logs
  (`mmse.MMSEModel`'s `batch_*_loss` metrics) and its `fusion` layer.
  """

  def __init__(self, log_dir: str, head_kinds: Sequence[str],
               every_steps: int = 10,
               in_slate: Optional[in_slate_eval.SlateItems] = None):
    """Sets up the callback.

    Args:
      log_dir: the TensorBoard log directory (the Trainer's model_run_dir).
      head_kinds: names of the post-fusion heads, in order.
      every_steps: per-step scalars are written at steps 1, 1 + every_steps,
        ...
      in_slate: if given, scored at the end of every epoch.
    """
    super().__init__()
    self._log_dir = log_dir
    self._head_kinds = tuple(head_kinds)
    self._every_steps = every_steps
    self._in_slate = in_slate
    self._step = 0
    self._writers = {}

  def on_train_begin(self, logs=None):
    self._writers = {
        run: tf.summary.create_file_writer(os.path.join(self._log_dir, run))
        for run in (TRAIN_RUN, VALIDATION_RUN)
    }
    self._step = int(self.model.optimizer.iterations.numpy())

  def on_train_batch_end(self, batch, logs=None):
    self._step += 1
    if (self._step - 1) % self._every_steps:
      return
    logs = logs or {}
    with self._writers[TRAIN_RUN].as_default(step=self._step):
      for key, tag in STEP_TAGS.items():
        if key in logs:
          tf.summary.scalar(tag, logs[key])
      tf.summary.scalar(LEARNING_RATE_TAG, self._learning_rate())
      weights = self.model.fusion.head_weights().numpy()
      for kind, weight in zip(self._head_kinds, weights):
        tf.summary.scalar(HEAD_WEIGHT_TAG.format(kind=kind), weight)

  def on_epoch_end(self, epoch, logs=None):
    # Later callbacks (ProgressLog) see the in-slate metrics in `logs`.
    logs = logs if logs is not None else {}
    for run, prefix in ((TRAIN_RUN, ""), (VALIDATION_RUN, "val_")):
      with self._writers[run].as_default(step=self._step):
        for key, tag in EPOCH_TAGS.items():
          if prefix + key in logs:
            tf.summary.scalar(tag, logs[prefix + key])
    if self._in_slate is not None:
      metrics = self._in_slate.evaluate(self.model)
      with self._writers[VALIDATION_RUN].as_default(step=self._step):
        for name, value in metrics.items():
          tf.summary.scalar(IN_SLATE_TAG.format(metric=name), value)
      logs.update({IN_SLATE_LOG_PREFIX + k: v for k, v in metrics.items()})
    for writer in self._writers.values():
      writer.flush()

  def on_train_end(self, logs=None):
    for writer in self._writers.values():
      writer.close()

  def _learning_rate(self) -> float:
    optimizer = self.model.optimizer
    rate = optimizer.learning_rate
    if isinstance(rate, tf.keras.optimizers.schedules.LearningRateSchedule):
      rate = rate(optimizer.iterations)
    return float(tf.keras.backend.get_value(rate))


def write_item_projector(log_dir: str, model,
                         slate_items: in_slate_eval.SlateItems,
                         tf_transform_output, limit: int = 5000) -> int:
  """Writes the first `limit` slate items' embeddings for the Projector.

  The checkpoint, `projector_config.pbtxt` and `metadata.tsv` go to the
  `train` run of `log_dir`. The Trainer sees transformed features only, so
  titles, brands and categories are read back through the Transform's
  vocabularies: lower-cased words, "?" for a word outside the vocabulary.

  Returns:
    The number of items written.
  """
  embeddings = slate_items.item_embeddings(model, limit)
  count = len(embeddings)
  if not count:
    return 0
  run_dir = os.path.join(log_dir, TRAIN_RUN)
  tf.io.gfile.makedirs(run_dir)
  columns = _item_metadata(slate_items, tf_transform_output, count)
  with tf.io.gfile.GFile(os.path.join(run_dir, PROJECTOR_METADATA), "w") as f:
    f.write("\t".join(columns) + "\n")
    for row in zip(*columns.values()):
      f.write("\t".join(_tsv_field(str(v)) for v in row) + "\n")
  checkpoint = tf.train.Checkpoint(
      **{PROJECTOR_TENSOR: tf.Variable(embeddings, trainable=False)})
  checkpoint.save(os.path.join(run_dir, f"{PROJECTOR_TENSOR}.ckpt"))
  config = projector.ProjectorConfig()
  embedding = config.embeddings.add()
  embedding.tensor_name = f"{PROJECTOR_TENSOR}/.ATTRIBUTES/VARIABLE_VALUE"
  embedding.metadata_path = PROJECTOR_METADATA
  projector.visualize_embeddings(run_dir, config)
  return count


def _item_metadata(slate_items: in_slate_eval.SlateItems,
                   tf_transform_output, count: int) -> Dict[str, List]:
  """item_id, title and each categorical side feature present, per item."""
  item_features = slate_items.item_features
  words = _vocabulary(tf_transform_output, preprocessing.TOKEN_VOCABULARY)
  columns = {
      "item_id": [i.decode("utf-8") for i in
                  slate_items.item_ids[:count].tolist()],
      "title": [" ".join(_lookup(words, i) for i in ids if i)
                for ids in item_features[preprocessing.TITLE_TOKENS][:count]],
  }
  for name in ("brand", "category"):
    index = preprocessing.side_feature_index(name)
    if index in item_features:
      values = _vocabulary(tf_transform_output, name)
      columns[name] = [_lookup(values, i) if i else ""
                       for i in item_features[index][:count]]
  return columns


def _vocabulary(tf_transform_output, name: str) -> List[str]:
  return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
          for v in tf_transform_output.vocabulary_by_name(name)]


def _lookup(vocabulary: List[str], feature_id: int) -> str:
  """A transformed id (vocabulary index + 1; beyond: an OOV bucket)."""
  return (vocabulary[feature_id - 1] if 0 < feature_id <= len(vocabulary)
          else _OUT_OF_VOCABULARY)


def _tsv_field(value: str) -> str:
  return " ".join(value.split()) if value else ""
