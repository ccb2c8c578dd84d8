"""RetrievalEvaluator: whole-catalogue recall of a two-tower model, blessing.

TFX's stock Evaluator scores a model example by example; a retrieval model is
judged by where the right items land among all items of the catalogue, which
TFMA cannot express. This component embeds the catalogue and the held-out
queries with the exported towers, runs exact top-k search, scores Recall@K
and NDCG@K with `evaluation.metrics`, and writes a `ModelBlessing` the way the
stock Evaluator does, so the stock Pusher and `LatestBlessedModelStrategy`
take it unchanged.
"""
from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

from components.retrieval_evaluator import executor
from tfx_pipeline import configs

_DEFAULTS = configs.EvalConfig()


class RetrievalEvaluation(types.Artifact):
  """`metrics.json`: candidate and baseline metrics and the blessing decision.

  The metrics are also the artifact's custom properties, so they can be
  compared across runs from ML Metadata without reading files.
  """
  TYPE_NAME = "mmse.RetrievalEvaluation"  # KFP v2 wants namespace.Title.


class RetrievalEvaluatorSpec(types.ComponentSpec):
  """Inputs, outputs and blessing rule of RetrievalEvaluator."""

  PARAMETERS = {
      # JSON list of K values, as the stock Evaluator passes its lists.
      executor.CUTOFFS_KEY: ExecutionParameter(type=str),
      executor.BLESSING_METRIC_KEY: ExecutionParameter(type=str),
      executor.MIN_BLESSING_VALUE_KEY: ExecutionParameter(type=float),
      executor.MAX_REGRESSION_KEY: ExecutionParameter(type=float),
  }
  INPUTS = {
      executor.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      executor.CATALOG_KEY: ChannelParameter(type=standard_artifacts.Examples),
      executor.BASELINE_MODEL_KEY: ChannelParameter(
          type=standard_artifacts.Model, optional=True),
  }
  OUTPUTS = {
      executor.EVALUATION_KEY: ChannelParameter(type=RetrievalEvaluation),
      executor.BLESSING_KEY: ChannelParameter(
          type=standard_artifacts.ModelBlessing),
  }


class RetrievalEvaluator(base_component.BaseComponent):
  """Scores a Trainer's towers on held-out queries and blesses or not.

  Outputs:
    evaluation: `RetrievalEvaluation` with `metrics.json`.
    blessing: `ModelBlessing` (`BLESSED` / `NOT_BLESSED` file, custom property
      `blessed` 1/0, `current_model_id`, ...), for the Pusher and for the
      latest-blessed-model resolver that feeds the next run's baseline.
  """

  SPEC_CLASS = RetrievalEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               model: types.BaseChannel,
               examples: types.BaseChannel,
               catalog: types.BaseChannel,
               baseline_model: Optional[types.BaseChannel] = None,
               cutoffs: Sequence[int] = _DEFAULTS.cutoffs,
               blessing_metric: str = _DEFAULTS.blessing_metric,
               min_blessing_value: float = _DEFAULTS.min_blessing_value,
               max_regression: float = _DEFAULTS.max_regression):
    """Constructs a RetrievalEvaluator.

    Args:
      model: Trainer's `Model`; towers under
        `<uri>/Format-Serving/{query_tower,item_tower}`.
      examples: MultiStageSamples' mined slates; the `eval` split's queries
        and staged items are the judgments.
      catalog: the catalogue `Examples` from ExampleGen (every split).
      baseline_model: the latest blessed `Model`, absent on a first run.
      cutoffs: the K of Recall@K and NDCG@K.
      blessing_metric: the metric the blessing compares, e.g. `recall@100`.
      min_blessing_value: the metric's floor for a blessing.
      max_regression: how far below the baseline's metric a blessed model may
        fall.
    """
    config = configs.EvalConfig(
        cutoffs=tuple(int(k) for k in cutoffs),
        blessing_metric=blessing_metric,
        min_blessing_value=float(min_blessing_value),
        max_regression=float(max_regression))
    executor.check_config(config)
    spec = RetrievalEvaluatorSpec(
        model=model,
        examples=examples,
        catalog=catalog,
        baseline_model=baseline_model,
        cutoffs=json_utils.dumps(list(config.cutoffs)),
        blessing_metric=config.blessing_metric,
        min_blessing_value=config.min_blessing_value,
        max_regression=config.max_regression,
        evaluation=types.Channel(type=RetrievalEvaluation),
        blessing=types.Channel(type=standard_artifacts.ModelBlessing))
    super().__init__(spec=spec)
