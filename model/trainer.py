"""TFX Trainer entry point: trains MMSE on transformed slates, exports towers.

The Trainer passes `custom_config` = {"model": asdict(ModelConfig), "text":
asdict(TextConfig)}. Without `train_args.num_steps` each of
`ModelConfig.epochs` epochs is one pass over the train split; with it, the
steps are spread over the epochs on a repeated stream (and likewise for
evaluation with `eval_args.num_steps`).
"""
import logging
import math

import tensorflow as tf
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from contracts import config_io
from model import config as model_config
from model import export
from model import mmse
from model import pretrained_tokens


def _dataset(fn_args: tfx.components.FnArgs, files, tf_transform_output,
             batch_size: int, steps, shuffle: bool) -> tf.data.Dataset:
  return fn_args.data_accessor.tf_dataset_factory(
      files,
      tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, num_epochs=None if steps else 1,
          shuffle=shuffle),
      tf_transform_output.transformed_metadata.schema)


class _EpochLog(tf.keras.callbacks.Callback):
  """One log line per epoch: the pipeline's logs show training progress."""

  def on_epoch_end(self, epoch, logs=None):
    values = ", ".join(f"{name}={value:.4f}"
                       for name, value in sorted((logs or {}).items()))
    logging.info("Epoch %d/%d: %s", epoch + 1, self.params["epochs"], values)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Trains the model and writes `query_tower/` and `item_tower/`.

  Args:
    fn_args: the Trainer's arguments; see the module docstring.
  """
  custom_config = fn_args.custom_config or {}
  config = config_io.from_dict(model_config.ModelConfig,
                               custom_config.get("model"))
  text_config = config_io.from_dict(model_config.TextConfig,
                                    custom_config.get("text"))
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_graph_path or
                                              fn_args.transform_output)

  train = _dataset(fn_args, fn_args.train_files, tf_transform_output,
                   config.batch_size, fn_args.train_steps, shuffle=True)
  evaluation = _dataset(fn_args, fn_args.eval_files, tf_transform_output,
                        config.eval_batch_size, fn_args.eval_steps,
                        shuffle=False)
  steps_per_epoch = (math.ceil(fn_args.train_steps / config.epochs)
                     if fn_args.train_steps else None)

  model = mmse.MMSEModel.from_transform_output(config, text_config,
                                               tf_transform_output)
  pretrained_tokens.initialize(model.query_tower.text_encoder,
                               tf_transform_output,
                               config.pretrained_token_table)
  model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  logging.info("Training MMSE for %d epochs: %s", config.epochs, config)
  model.fit(
      train,
      epochs=config.epochs,
      steps_per_epoch=steps_per_epoch,
      validation_data=evaluation,
      validation_steps=fn_args.eval_steps,
      callbacks=[
          tf.keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir),
          _EpochLog(),
      ],
      verbose=0)
  results = model.evaluate(evaluation, steps=fn_args.eval_steps,
                           return_dict=True, verbose=0)
  logging.info("Eval: mean_loss=%.4f retrieval_loss=%.4f ranking_loss=%.4f",
               results["mean_loss"], results["retrieval_loss"],
               results["ranking_loss"])
  export.export_towers(model, tf_transform_output, fn_args.serving_model_dir)
