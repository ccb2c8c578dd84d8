"""TFX Trainer entry point: trains MMSE on transformed slates, exports towers.

The Trainer passes `custom_config` = {"model": asdict(ModelConfig), "text":
asdict(TextConfig), "teacher_cache_dir": where the teacher's word vectors are
kept between runs}. Without `train_args.num_steps` each of
`ModelConfig.epochs` epochs is one pass over the train split; with it, the
steps are spread over the epochs on a repeated stream (and likewise for
evaluation with `eval_args.num_steps`).

Progress goes to the log (`training_callbacks.ProgressLog`); curves, in-slate
Recall/NDCG per epoch and the item embeddings (Projector) to TensorBoard
under `fn_args.model_run_dir` (`training_callbacks.TensorBoardLog`).

`ModelConfig.distribution` picks the tf.distribute strategy (`distribution`):
the model is built, compiled and trained under it, with
`ModelConfig.batch_size` the global batch. With "multi_worker" every worker
runs this function; all of them train and save, and only the chief's logs
and towers are kept (the others write to temporary directories).
"""
import contextlib
import logging
import math
import os
import time
from typing import Optional

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from contracts import config_io
from contracts import serving_layout
from model import config as model_config
from model import distribution
from model import export
from model import in_slate_eval
from model import mmse
from model import pretrained_tokens
from model import towers
from model import training_callbacks


def _dataset(fn_args: tfx.components.FnArgs, files, tf_transform_output,
             batch_size: int, steps, shuffle: bool,
             seed: Optional[int] = None) -> tf.data.Dataset:
  """Batches of `batch_size` transformed slates: global batches.

  Under a multi-worker strategy each worker reads all the files and keeps its
  share of every batch (sharding by DATA: there may be fewer files than
  workers); the workers shuffle alike, with the same seed.
  """
  dataset = fn_args.data_accessor.tf_dataset_factory(
      files,
      tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, num_epochs=None if steps else 1,
          shuffle=shuffle, shuffle_seed=seed),
      tf_transform_output.transformed_metadata.schema)
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return dataset.with_options(options)


def _slate_items(fn_args: tfx.components.FnArgs, tf_transform_output,
                 batch_size: int) -> in_slate_eval.SlateItems:
  """The eval queries and the items of both splits, read once."""
  started = time.monotonic()
  slate_items = in_slate_eval.SlateItems.collect(
      _dataset(fn_args, fn_args.eval_files, tf_transform_output, batch_size,
               steps=None, shuffle=False),
      _dataset(fn_args, fn_args.train_files, tf_transform_output, batch_size,
               steps=None, shuffle=False))
  logging.info("In-slate evaluation each epoch: %d eval queries over the %d "
               "items of the train and eval slates (read in %.1f s)",
               len(slate_items.judgments), len(slate_items.item_ids),
               time.monotonic() - started)
  return slate_items


@contextlib.contextmanager
def _without_arithmetic_rewrites():
  """Training without Grappler's arithmetic optimizer.

  Its AddOpsRewrite sums the shared embeddings' gradients through temporary
  variables; the step that ends an epoch read once stops mid-way and leaves
  them behind, so the next epoch's first step fails ("AlreadyExistsError:
  Resource __per_step_0/ArithmeticOptimizer/AddOpsRewrite_add_1/tmp_var",
  TensorFlow issue 23780). Only around training: with the optimizer off,
  the teacher's function crashes TensorFlow instead.
  """
  tf.config.optimizer.set_experimental_options(
      {"arithmetic_optimization": False})
  try:
    yield
  finally:
    tf.config.optimizer.set_experimental_options(
        {"arithmetic_optimization": True})


def _train(model, config: model_config.ModelConfig,
           fn_args: tfx.components.FnArgs, tf_transform_output, evaluation,
           callbacks) -> None:
  """Trains one model: `config.epochs` passes over the train split."""
  tf.keras.utils.set_random_seed(config.seed)
  train = _dataset(fn_args, fn_args.train_files, tf_transform_output,
                   config.batch_size, fn_args.train_steps, shuffle=True,
                   seed=config.seed)
  steps_per_epoch = (math.ceil(fn_args.train_steps / config.epochs)
                     if fn_args.train_steps else None)
  logging.info("Training MMSE for %d epochs: %s", config.epochs, config)
  with _without_arithmetic_rewrites():
    model.fit(
        train,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=evaluation,
        validation_steps=fn_args.eval_steps,
        callbacks=callbacks,
        verbose=0)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Writes the towers at their initial weights, trains, writes them again.

  The trained `query_tower/` and `item_tower/` go to
  `fn_args.serving_model_dir`; the initial ones beside it
  (`serving_layout.initial_towers_dir`), for the evaluator. With
  `ModelConfig.trainings` above 1 the models train one after another, each
  logging to TensorBoard under `training_<k>/` of `fn_args.model_run_dir`,
  and the towers serve them side by side (`mmse.Ensemble`). Under a
  multi-worker strategy only the chief writes there, and TensorBoard's logs.

  Args:
    fn_args: the Trainer's arguments; see the module docstring.
  """
  custom_config = fn_args.custom_config or {}
  config = config_io.from_dict(model_config.ModelConfig,
                               custom_config.get("model"))
  text_config = config_io.from_dict(model_config.TextConfig,
                                    custom_config.get("text"))
  member_configs = mmse.member_configs(config)
  # Before anything else runs TensorFlow: a multi-worker strategy starts the
  # worker's server.
  strategy = distribution.strategy(config.distribution)
  chief = distribution.is_chief(strategy)
  if strategy.num_replicas_in_sync > 1 or not chief:
    logging.info("Training on %d replicas (%s), %s",
                 strategy.num_replicas_in_sync, config.distribution,
                 "the chief" if chief else "not the chief")
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path or
                                              fn_args.transform_output)
  # Once for every training's token table (the teacher encodes the words).
  start_vectors = pretrained_tokens.start_vectors(
      tf_transform_output, config.pretrained_token_table,
      custom_config.get("teacher_cache_dir", ""))
  tf.keras.utils.set_random_seed(config.seed)

  evaluation = _dataset(fn_args, fn_args.eval_files, tf_transform_output,
                        config.eval_batch_size, fn_args.eval_steps,
                        shuffle=False)

  initial_dir = distribution.worker_dir(
      serving_layout.initial_towers_dir(
          os.path.dirname(fn_args.serving_model_dir)), chief)
  with strategy.scope():
    members = []
    for member_config in member_configs:
      model = mmse.MMSEModel.from_transform_output(
          member_config, text_config, tf_transform_output)
      pretrained_tokens.initialize(model.query_tower.text_encoder,
                                   start_vectors)
      model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
      members.append(model)
    ensemble = mmse.Ensemble(members)
    # What the towers score before learning anything: the blessing's floor.
    # (Tracing the towers builds their variables, under the strategy.)
    export.export_towers(ensemble, tf_transform_output, initial_dir)
  distribution.remove_worker_dir(initial_dir, chief)

  slate_items = None
  if chief:
    slate_items = _slate_items(fn_args, tf_transform_output,
                               config.eval_batch_size)
  for k, (model, member_config) in enumerate(zip(members, member_configs)):
    log_dir = fn_args.model_run_dir
    if len(members) > 1:
      logging.info("Training %d of %d (seed %d)", k + 1, len(members),
                   member_config.seed)
      log_dir = os.path.join(log_dir, f"training_{k + 1}")
    callbacks = [training_callbacks.ProgressLog(config.batch_size)]
    if chief:
      # First: it adds the in-slate metrics to the epoch's logs.
      callbacks.insert(0, training_callbacks.TensorBoardLog(
          log_dir, towers.head_kinds(config.num_heads), in_slate=slate_items))
    _train(model, member_config, fn_args, tf_transform_output, evaluation,
           callbacks)
  if chief:
    projected = training_callbacks.write_item_projector(
        fn_args.model_run_dir, ensemble, slate_items, tf_transform_output)
    logging.info("Wrote %d item embeddings for TensorBoard's Projector",
                 projected)
  serving_dir = distribution.worker_dir(fn_args.serving_model_dir, chief)
  export.export_towers(ensemble, tf_transform_output, serving_dir)
  distribution.remove_worker_dir(serving_dir, chief)
  distribution.wait_for_all(strategy)
