"""Knobs of offline evaluation and of the blessing rule."""
import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Offline evaluation over the whole catalogue and the blessing rule."""
  cutoffs: Tuple[int, ...] = (10, 100, 1000)
  # One of `evaluation.blessing.metric_names(cutoffs)`: `recall@K` is the
  # served ANN index's, `exact_recall@K` exact search's over its embeddings.
  blessing_metric: str = "recall@100"
  # Human judgments (CSV query,item_id,relevance, as `mmse evaluate` reads).
  # Scored beside the logged eval split and, when given, blessed on: logged
  # clicks favour word overlap, which the untrained towers already match.
  judgments_path: str = ""
  # Blessed only when the metric beats the most popular items of the
  # training logs by this much ...
  min_gain_over_popularity: float = 0.05
  # ... and the same towers at their initial weights by this much (a model
  # that learned nothing gains 0) ...
  min_gain_over_initial: float = 0.01
  # ... and is not below the latest blessed model's by more than this: the
  # spread of trainings that differ only in their seed (on the sample's 60
  # judged queries, Recall@100 0.899-0.952 over the seeds seen, two of them
  # 0.035 apart). A larger judged set spreads less and can take a smaller
  # tolerance.
  max_regression: float = 0.05
