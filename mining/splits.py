"""Train or eval by a stable hash of a query's canonical text.

Every slate of a query lands in the split of its text, so no query (and none
of its items' labels) leaks from one split into the other; a title
pseudo-query with the text of a logged query lands where that query does.
"""
import hashlib
from typing import Any

from mining.config import MiningConfig

TRAIN = "train"
EVAL = "eval"
SPLITS = (TRAIN, EVAL)


def stable_hash(*parts: Any) -> int:
  """64-bit hash of `parts` that is the same in every process and run."""
  joined = "\x1f".join(str(p) for p in parts).encode("utf-8")
  return int.from_bytes(hashlib.blake2b(joined, digest_size=8).digest(), "big")


def split_of(query: str, config: MiningConfig) -> str:
  """The split of a canonical query text, by its hash and the seed."""
  fraction = stable_hash(config.seed, "split", query) / 2.0**64
  return EVAL if fraction < config.eval_fraction else TRAIN
