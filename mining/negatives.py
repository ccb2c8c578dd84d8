"""Random negatives: catalogue items a query was never shown, by popularity."""
from typing import Dict, Optional

import numpy as np

from contracts import catalog as catalog_lib


def _in_sorted(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
  """`np.isin(values, sorted_values)`, by binary search: `excluded` is
  sorted already, and isin would sort it again for every slate."""
  if not len(sorted_values):
    return np.zeros(len(values), dtype=bool)
  positions = np.minimum(np.searchsorted(sorted_values, values),
                         len(sorted_values) - 1)
  return sorted_values[positions] == values


class NegativeSampler:
  """Draws distinct catalogue items with P(item) ~ (impressions + 1) ** a.

  A query is shown a sliver of the catalogue, so drawing from the whole
  catalogue and rejecting what it was shown costs a few draws; a query shown
  much of it (by count or by probability mass) gets an exact draw over the
  items left instead.
  """

  _REJECTION_ROUNDS = 8

  def __init__(self, impressions: np.ndarray, exponent: float):
    weights = (impressions.astype(np.float64) + 1.0)**exponent
    self.probabilities = weights / weights.sum()
    self._cdf = np.cumsum(self.probabilities)

  @classmethod
  def for_catalog(cls, impressions: Dict[str, int],
                  catalog: catalog_lib.Catalog,
                  exponent: float) -> "NegativeSampler":
    """A sampler over `catalog` from impressions per item_id."""
    counts = np.zeros(len(catalog), dtype=np.int64)
    if impressions:
      ids = catalog_lib.id_array(impressions)
      counts[catalog.indexes(ids)] = list(impressions.values())
    return cls(counts, exponent)

  def sample(self, rng: np.random.Generator, excluded: np.ndarray,
             count: int) -> np.ndarray:
    """Up to `count` distinct catalogue indexes, none of them in `excluded`.

    Args:
      rng: the slate's generator.
      excluded: sorted distinct catalogue indexes never to return.
      count: how many to draw; fewer come back only when fewer are left.

    Returns:
      int64 catalogue indexes in draw order.
    """
    available = len(self.probabilities) - len(excluded)
    count = min(count, available)
    if count <= 0:
      return np.zeros(0, dtype=np.int64)
    if (available >= 4 * count and
        self.probabilities[excluded].sum() <= 0.5):
      chosen = self._by_rejection(rng, excluded, count)
      if chosen is not None:
        return chosen
    allowed = np.ones(len(self.probabilities), dtype=bool)
    allowed[excluded] = False
    candidates = np.flatnonzero(allowed)
    p = self.probabilities[candidates]
    return rng.choice(candidates, size=count, replace=False, p=p / p.sum())

  def _by_rejection(self, rng: np.random.Generator, excluded: np.ndarray,
                    count: int) -> Optional[np.ndarray]:
    chosen = []
    for _ in range(self._REJECTION_ROUNDS):
      draws = np.searchsorted(self._cdf, rng.random(2 * count) * self._cdf[-1],
                              side="right")
      draws = np.minimum(draws, len(self._cdf) - 1)
      for index in draws[~_in_sorted(draws, excluded)].tolist():
        if index not in chosen:
          chosen.append(index)
          if len(chosen) == count:
            return np.array(chosen, dtype=np.int64)
    return None
