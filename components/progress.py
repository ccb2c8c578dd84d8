"""TFX's StatisticsGen and Transform, saying what they work on.

Both run for minutes on real logs without a line of their own. These
subclasses keep the stock executors' work and add a line when they start
(which splits) and when they finish (rows per split, read back from the
statistics they wrote), so a person watching a run sees what runs and how
big it is.
"""
import logging
import os

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import standard_component_specs

_STATISTICS_FILE = "FeatureStats.pb"


def _rows(statistics_dir: str) -> int:
  """Examples counted in a statistics file TFDV wrote into `statistics_dir`."""
  stats = tfdv.load_stats_binary(os.path.join(statistics_dir,
                                              _STATISTICS_FILE))
  return sum(dataset.num_examples for dataset in stats.datasets)


def _split_names(artifact) -> list:
  return artifact_utils.decode_split_names(artifact.split_names)


class StatisticsExecutor(statistics_executor.Executor):
  """The stock StatisticsGen executor, with start and finish lines."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    examples = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.EXAMPLES_KEY])
    logging.info("Computing statistics of splits %s of %s",
                 _split_names(examples), examples.uri)
    super().Do(input_dict, output_dict, exec_properties)
    statistics = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.STATISTICS_KEY])
    for split in _split_names(statistics):
      logging.info("Statistics of split %s: %d rows", split, _rows(
          artifact_utils.get_split_uri([statistics], split)))


class TransformExecutor(transform_executor.Executor):
  """The stock Transform executor, with start and finish lines."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:
    examples = artifact_utils.get_single_instance(
        input_dict[standard_component_specs.EXAMPLES_KEY])
    logging.info("Transform: analysing and transforming splits %s of %s",
                 _split_names(examples), examples.uri)
    super().Do(input_dict, output_dict, exec_properties)
    pre_transform = output_dict.get(
        standard_component_specs.PRE_TRANSFORM_STATS_KEY)
    if pre_transform:
      logging.info("Transform: analysed %d rows; wrote the transform graph "
                   "and transformed examples", _rows(pre_transform[0].uri))


class StatisticsGen(tfx.components.StatisticsGen):
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(StatisticsExecutor)


class Transform(tfx.components.Transform):
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(TransformExecutor)
