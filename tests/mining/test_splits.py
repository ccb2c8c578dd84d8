"""Stable hashing and the train/eval split by canonical query."""
import numpy as np

from mining import splits
from mining.config import MiningConfig


def test_stable_hash_is_fixed_across_runs():
  # A changed value would move every query to another split.
  assert splits.stable_hash(17, "split", "drill") == splits.stable_hash(
      17, "split", "drill")
  assert splits.stable_hash(1, "a") != splits.stable_hash(1, "b")
  assert splits.stable_hash("x") == 5395104992458594383


def test_split_of_holds_out_the_asked_share():
  config = MiningConfig(eval_fraction=0.2, seed=5)
  held_out = np.mean([splits.split_of(f"query {i}", config) == splits.EVAL
                      for i in range(5000)])
  np.testing.assert_allclose(held_out, 0.2, atol=0.03)
  assert splits.split_of("drill", MiningConfig(eval_fraction=0.0)) == (
      splits.TRAIN)
  assert splits.split_of("drill", MiningConfig(eval_fraction=1.0)) == (
      splits.EVAL)


def test_the_seed_reshuffles_the_split():
  queries = [f"query {i}" for i in range(200)]
  one = [splits.split_of(q, MiningConfig(seed=1)) for q in queries]
  two = [splits.split_of(q, MiningConfig(seed=2)) for q in queries]
  assert one != two
