"""Knobs of mining: how search logs become multi-stage training slates."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class MiningConfig:
  """How search logs become multi-stage training slates."""
  # Lower-stage items of the same query placed in each slate after the anchor
  # (clicked items under an ordered anchor, then shown-unclicked items).
  num_context_items: int = 6
  # Items drawn from the whole catalogue for each slate.
  num_random_negatives: int = 4
  # Random negatives are drawn with P(item) ~ (impressions + 1) ** exponent:
  # 0 samples uniformly, 1 follows exposure (as in-batch negatives do).
  popularity_exponent: float = 0.5
  # Share of distinct queries held out for evaluation, split by query hash.
  eval_fraction: float = 0.1
  # Title pseudo-queries: a few words of a catalogue title become a query
  # whose positive (as a click) is that item. Most catalogue items are never
  # clicked, and these slates teach the towers every title's words. Share of
  # catalogue items that get one, and its length in words.
  title_query_fraction: float = 1.0
  title_query_min_words: int = 2
  title_query_max_words: int = 4
  seed: int = 17

  @property
  def slate_size(self) -> int:
    return 1 + self.num_context_items + self.num_random_negatives
