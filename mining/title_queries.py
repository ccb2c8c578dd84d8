"""Title pseudo-queries: a few words of a catalogue title as a query.

Most catalogue items are never clicked; a slate whose query is a few words
of an item's title, with that item as a clicked anchor and random negatives
after it, teaches the towers every title's words.

A pseudo-query is split by its canonical text like a logged query (so one
with the text of a logged query lands in that query's split), and no text
of the eval split is trained on. A draw that falls in eval is drawn again
from the same title, so the item keeps its slate; an item whose every draw
falls in eval (a title of one or two words, say) is held out: not trained
on, and not added to the eval split either, which keeps to logged behaviour
so that the blessing measures logs.
"""
import collections
from typing import Iterator, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from contracts import catalog as catalog_lib
from contracts import features
from contracts import text
from mining import count_keys
from mining import slates
from mining import splits
from mining.config import MiningConfig
from mining.negatives import NegativeSampler

# Draws of words from one title before its item is held out.
_DRAWS_PER_TITLE = 8


class TitleQuery(NamedTuple):
  index: int  # Catalogue index of the item whose title gave the words.
  query: str  # Canonical text.
  split: str


def title_query(words: Sequence[str], rng: np.random.Generator,
                config: MiningConfig) -> Optional[str]:
  """A few distinct `words` (of a title) in random order; None if too few."""
  words = list(dict.fromkeys(words))
  if len(words) < config.title_query_min_words:
    return None
  count = min(len(words), int(rng.integers(config.title_query_min_words,
                                           config.title_query_max_words + 1)))
  return text.canonical(
      " ".join(rng.choice(words, size=count, replace=False).tolist()))


def title_queries(catalog: catalog_lib.Catalog, config: MiningConfig,
                  rows: Optional[range] = None) -> Iterator[TitleQuery]:
  """Pseudo-queries for a `title_query_fraction` share of the catalogue.

  Whether an item gets one, and its words, are seeded by (seed, item_id):
  the same catalogue always gives the same pseudo-queries, and a range of
  its `rows` (catalogue indexes; all by default) the same ones as the whole.
  """
  if config.title_query_fraction <= 0:
    return
  rows = rows if rows is not None else range(len(catalog))
  for index, item_id, title in zip(
      rows, catalog.item_ids[rows.start:rows.stop].tolist(),
      catalog.titles[rows.start:rows.stop].tolist()):
    rng = np.random.default_rng(
        splits.stable_hash(config.seed, "title", item_id))
    if rng.random() >= config.title_query_fraction:
      continue
    words = text.words(title)
    for _ in range(_DRAWS_PER_TITLE):
      query = title_query(words, rng, config)
      if query is None:
        break
      split = splits.split_of(query, config)
      if split == splits.TRAIN:
        break
    if query is not None:
      yield TitleQuery(index, query, split)


def title_query_slate(pseudo_query: TitleQuery, catalog: catalog_lib.Catalog,
                      sampler: NegativeSampler, config: MiningConfig
                     ) -> Tuple[np.ndarray, np.ndarray]:
  """(catalogue indexes, stages): the item as a click, random negatives."""
  item_id = str(catalog.item_ids[pseudo_query.index])
  rng = np.random.default_rng(
      splits.stable_hash(config.seed, "title negatives", item_id))
  negatives = sampler.sample(rng, np.array([pseudo_query.index]),
                             config.num_random_negatives)
  return slates.pad(
      np.concatenate([[pseudo_query.index], negatives]).astype(np.int64),
      np.array([features.Stage.CLICKED] +
               [features.Stage.RANDOM] * len(negatives), dtype=np.int64),
      config)


def title_query_examples(catalog: catalog_lib.Catalog,
                         sampler: NegativeSampler, config: MiningConfig,
                         counts: collections.Counter,
                         rows: Optional[range] = None) -> Iterator[bytes]:
  """Serialized train slates of the pseudo-queries in the train split, of
  the catalogue `rows` (all by default).

  Tallies them, and the held-out ones, in `counts`, which is complete once
  the iterator is done.
  """
  for pseudo_query in title_queries(catalog, config, rows):
    if pseudo_query.split != splits.TRAIN:
      counts[count_keys.TITLE_QUERIES_HELD_OUT] += 1
      continue
    indexes, stages = title_query_slate(pseudo_query, catalog, sampler,
                                        config)
    yield slates.encode(pseudo_query.query, catalog.slot_values(indexes),
                        stages).SerializeToString()
    counts[count_keys.TITLE_QUERIES] += 1
    counts[count_keys.examples(splits.TRAIN)] += 1
