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
  # Blessed when the metric reaches this absolute floor ...
  min_blessing_value: float = 0.05
  # ... and is not below the latest blessed model's by more than this.
  max_regression: float = 0.0
