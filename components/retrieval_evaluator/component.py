"""RetrievalEvaluator: whole-catalogue recall of a two-tower model, blessing.

TFX's stock Evaluator scores a model example by example; a retrieval model is
judged by where the right items land among all items of the catalogue, which
TFMA cannot express. This component searches the held-out queries in the
candidate's ANN index (IndexBuilder's: what would be served), and by exact
search over the same embeddings, scores Recall@K and NDCG@K with
`evaluation.blessing` beside the training logs' most popular items, the same
towers at their initial weights and the latest blessed model, and writes a
`ModelBlessing` the way the stock Evaluator does, so the Pusher and
`LatestBlessedModelStrategy` take it unchanged. A model is not blessed
either while its data is suspect: drifted from the served data (DataGate)
with too many log rows set aside, or with fewer or more rows mined than
ExampleGen wrote (MultiStageSamples against DataGate's count).
"""
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts

from components import artifacts
from components.retrieval_evaluator import executor
from components.retrieval_evaluator import spec
from contracts import config_io
from evaluation import blessing
from evaluation.config import EvalConfig


class RetrievalEvaluator(base_component.BaseComponent):
  """Scores a Trainer's towers and index on held-out queries; blesses or not.

  ## Example
  ```
  evaluator = RetrievalEvaluator(
      model=trainer.outputs["model"],
      index=index_builder.outputs["index"],
      examples=mining.outputs["examples"],
      catalog=mining.outputs["cleaned_catalog"],
      config=pipeline_config.evaluation,
      baseline_model=latest_blessed_model.outputs["model"])
  ```

  Component `outputs` contains:
   - `evaluation`: RetrievalEvaluation with `metrics.json`; the candidate's
     metrics are also its custom properties.
   - `blessing`: ModelBlessing (`BLESSED` / `NOT_BLESSED` file, custom
     property `blessed` 1/0, `current_model_id`, ...), for the pusher and
     for the latest-blessed-model resolver that feeds the next baseline.
  """

  SPEC_CLASS = spec.RetrievalEvaluatorSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self,
               model: types.BaseChannel,
               index: types.BaseChannel,
               examples: types.BaseChannel,
               catalog: types.BaseChannel,
               config: Optional[EvalConfig] = None,
               baseline_model: Optional[types.BaseChannel] = None,
               data_report: Optional[types.BaseChannel] = None,
               mining_report: Optional[types.BaseChannel] = None):
    """Constructs a RetrievalEvaluator.

    Args:
      model: Trainer's `Model`; towers under
        `<uri>/Format-Serving/{query_tower,item_tower}`, and as they were
        before training under `<uri>/Format-Initial/`.
      index: IndexBuilder's `RetrievalIndex` built from `model`.
      examples: MultiStageSamples' mined slates; the `eval` split's queries
        and staged items are the judgments (with `config.judgments_path`,
        a file's too), the `train` split's clicks rank items by popularity.
      catalog: the cleaned `Catalog` (`catalog.csv`) the index was built on.
      config: cutoffs and the blessing rule; `EvalConfig()` defaults when
        None.
      baseline_model: the latest blessed `Model`, absent on a first run.
      data_report: DataGate's `DataGateReport`; drift beyond its
        thresholds, unless accepted, refuses the blessing.
      mining_report: the `MiningReport`; more rows set aside than the data
        report's `max_set_aside_share`, or rows read other than its
        `logs_examples`, refuses the blessing.
    """
    config = config or EvalConfig()
    blessing.check_config(config)
    super().__init__(spec=spec.RetrievalEvaluatorSpec(
        **{
            spec.MODEL_KEY: model,
            spec.INDEX_KEY: index,
            spec.EXAMPLES_KEY: examples,
            spec.CATALOG_KEY: catalog,
            spec.BASELINE_MODEL_KEY: baseline_model,
            spec.DATA_REPORT_KEY: data_report,
            spec.MINING_REPORT_KEY: mining_report,
            spec.EVALUATION_KEY: types.Channel(
                type=artifacts.RetrievalEvaluation),
            spec.BLESSING_KEY: types.Channel(
                type=standard_artifacts.ModelBlessing),
        },
        **config_io.to_parameters(config)))
