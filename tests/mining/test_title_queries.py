"""Title pseudo-queries: words, share of the catalogue, split, slates."""
import collections
import dataclasses

import numpy as np
import tensorflow as tf

from contracts import features
from contracts import text
from mining import count_keys
from mining import splits
from mining import title_queries
from mining.config import MiningConfig
from mining.negatives import NegativeSampler
from tests.mining import fixtures

R, C, P = fixtures.R, fixtures.C, fixtures.P


def test_title_query_takes_distinct_title_words():
  config = MiningConfig(title_query_min_words=2, title_query_max_words=3)
  rng = np.random.default_rng(0)
  title_words = ["dewalt", "20v", "max", "1/2", "in", "drill", "drill"]
  for _ in range(50):
    query = title_queries.title_query(title_words, rng, config)
    words = query.split()
    assert 2 <= len(words) <= 3 and len(set(words)) == len(words)
    assert set(words) <= {"dewalt", "20v", "max", "1/2", "in", "drill"}
    assert text.canonical(query) == query
  assert title_queries.title_query(["hammer", "hammer"], rng, config) is None
  assert title_queries.title_query([], rng, config) is None


def test_title_queries_cover_the_asked_share_of_the_catalogue():
  catalog = fixtures.catalog(size=400, title="Steel Claw-Hammer {}")
  sampler = NegativeSampler(np.zeros(len(catalog), np.int64), 0.5)
  config = MiningConfig(num_context_items=2, num_random_negatives=3,
                        title_query_fraction=0.25)
  made = list(title_queries.title_queries(catalog, config))
  assert 60 <= len(made) <= 140
  for pseudo_query in made:
    anchor = pseudo_query.index
    assert set(pseudo_query.query.split()) <= set(
        text.words(catalog.titles[anchor]))
    assert pseudo_query.split == splits.split_of(pseudo_query.query, config)
    indexes, stages = title_queries.title_query_slate(pseudo_query, catalog,
                                                      sampler, config)
    assert stages.tolist() == [C, R, R, R, P, P]
    negatives = indexes[1:4]
    assert indexes[0] == anchor
    assert anchor not in negatives and len(set(negatives.tolist())) == 3
    assert indexes[4:].tolist() == [-1, -1]
  assert list(title_queries.title_queries(catalog, config)) == made
  off = dataclasses.replace(config, title_query_fraction=0.0)
  assert not list(title_queries.title_queries(catalog, off))


def test_pseudo_queries_in_eval_are_redrawn_or_held_out():
  # Four-word titles have many word draws: an eval draw is drawn again, so
  # every item keeps a train slate. One-word titles have a single text: the
  # items whose word falls in eval are held out.
  catalog = fixtures.catalog(size=200, title="cordless drill kit {}")
  one_word = fixtures.catalog(size=200, title="{}")
  sampler = NegativeSampler(np.zeros(len(catalog), np.int64), 0.5)
  config = MiningConfig(num_context_items=2, num_random_negatives=3,
                        eval_fraction=0.3, title_query_fraction=1.0,
                        title_query_min_words=1)
  made = list(title_queries.title_queries(catalog, config))
  assert len(made) == len(catalog)
  assert all(q.split == splits.TRAIN for q in made)
  by_split = collections.Counter(
      q.split for q in title_queries.title_queries(one_word, config))
  assert by_split[splits.EVAL] > 0 and by_split[splits.TRAIN] > 0
  catalog = one_word
  counts = collections.Counter()
  examples = [tf.train.Example.FromString(e) for e in
              title_queries.title_query_examples(catalog, sampler, config,
                                                 counts)]
  assert counts == {
      count_keys.TITLE_QUERIES: by_split[splits.TRAIN],
      count_keys.examples(splits.TRAIN): by_split[splits.TRAIN],
      count_keys.TITLE_QUERIES_HELD_OUT: by_split[splits.EVAL]}
  for example in examples:
    query = example.features.feature[features.QUERY].bytes_list.value[0]
    assert splits.split_of(query.decode(), config) == splits.TRAIN


def test_the_catalogue_in_chunks_gives_the_slates_of_the_whole():
  catalog = fixtures.catalog(size=50, title="Steel Claw-Hammer {}")
  sampler = NegativeSampler(np.arange(len(catalog), dtype=np.int64), 0.5)
  config = MiningConfig(num_context_items=2, num_random_negatives=3,
                        title_query_fraction=0.5)
  whole_counts, chunk_counts = collections.Counter(), collections.Counter()
  whole = list(title_queries.title_query_examples(catalog, sampler, config,
                                                  whole_counts))
  chunked = [example for start in range(0, 50, 7)
             for example in title_queries.title_query_examples(
                 catalog, sampler, config, chunk_counts,
                 range(start, min(start + 7, 50)))]
  # Compared parsed: a map's serialised order is not fixed.
  assert whole and ([tf.train.Example.FromString(e) for e in chunked] ==
                    [tf.train.Example.FromString(e) for e in whole])
  assert chunk_counts == whole_counts
