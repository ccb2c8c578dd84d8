"""Knobs of the ANN index built over the catalogue."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class IndexConfig:
  """Which index serves `retrieval`, and how the catalogue is embedded."""
  # faiss, scann or exact (`retrieval.ann.KINDS`). FAISS's plan answers
  # faster than ScaNN's at the same judged recall
  # (bench/results/serving.md, "Index plans").
  kind: str = "faiss"
  # Items the exported `retrieval` model returns per query (capped at the
  # catalogue size); the index is sized for searches of up to this many.
  k: int = 1000
  # Catalogue items per item-tower call.
  batch_size: int = 1024


def check_config(config: IndexConfig) -> None:
  """Fails before any work on a config no index can be built with."""
  # Here, not above: `ann` takes its defaults from `IndexConfig`.
  from retrieval import ann  # pylint: disable=g-import-not-at-top
  if config.kind not in ann.KINDS:
    raise ValueError(f"Unknown index kind {config.kind!r}; one of {ann.KINDS}")
  if config.k < 1:
    raise ValueError(f"k must be positive, got {config.k}")
  if config.batch_size < 1:
    raise ValueError(f"batch_size must be positive, got {config.batch_size}")
