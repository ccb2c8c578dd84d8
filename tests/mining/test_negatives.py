"""Random negatives: distinct, never shown, drawn by popularity."""
import numpy as np

from mining.negatives import NegativeSampler
from tests.mining import fixtures

CATALOG_SIZE = 30


def test_sampler_takes_every_unshown_item_when_asked_for_more():
  sampler = NegativeSampler(np.arange(CATALOG_SIZE), 0.5)
  shown = np.array([9, 10, 13, 14, 15, 16, 17])  # Catalogue indexes.
  drawn = sampler.sample(np.random.default_rng(0), shown, 40)
  assert sorted(drawn.tolist()) == sorted(
      set(range(CATALOG_SIZE)) - set(shown.tolist()))


def test_negative_sampler_follows_popularity():
  impressions = np.zeros(100, dtype=np.int64)
  impressions[0] = 99
  for exponent, expected in ((1.0, 100 / 199), (0.0, 1 / 100)):
    sampler = NegativeSampler(impressions, exponent)
    draws = [sampler.sample(np.random.default_rng(s), np.array([5, 7]), 1)[0]
             for s in range(4000)]
    np.testing.assert_allclose(np.mean(np.equal(draws, 0)), expected,
                               atol=0.03)
    assert not {5, 7} & set(draws)


def test_for_catalog_places_impressions_by_item_id():
  catalog = fixtures.catalog(size=5)
  sampler = NegativeSampler.for_catalog({2: 3, 5: 8}, catalog, 1.0)
  weights = np.array([1, 4, 1, 1, 9], dtype=np.float64)
  np.testing.assert_allclose(sampler.probabilities, weights / weights.sum(),
                             atol=1e-12)
