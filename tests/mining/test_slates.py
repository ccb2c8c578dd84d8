"""Slates of one query and their tf.train.Example encoding."""
import collections

import numpy as np

from contracts import catalog as catalog_lib
from contracts import features
from mining import aggregation
from mining import count_keys
from mining import slates
from mining import splits
from mining.negatives import NegativeSampler
from tests.mining import fixtures

R, U, C, O, P = fixtures.R, fixtures.U, fixtures.C, fixtures.O, fixtures.P
CATALOG = fixtures.catalog()
SAMPLER = NegativeSampler(np.zeros(len(CATALOG), np.int64), 0.5)


def _log(query, stages, shown=()):
  stages = {str(i): stage for i, stage in stages.items()}
  item_ids = catalog_lib.id_array(sorted(stages))
  return aggregation.QueryLog(
      query, splits.split_of(query, fixtures.CONFIG), item_ids,
      np.array([stages[i] for i in item_ids.tolist()], dtype=np.int64),
      np.ones(len(item_ids), dtype=np.int64),
      np.union1d(item_ids, catalog_lib.id_array(map(str, shown))))


# "red drill": 1 ordered; 2 and 3 clicked; 4-7 unclicked; 8 shown in a
# set-aside row.
RED_DRILL = _log("red drill", {1: O, 2: C, 3: C, 4: U, 5: U, 6: U, 7: U},
                 shown=[8])


def test_one_slate_per_positive_strongest_first():
  made = list(slates.slates(RED_DRILL, CATALOG, SAMPLER, fixtures.CONFIG))
  ids = [CATALOG.item_ids[np.maximum(i, 0)].tolist() for i, _ in made]
  assert [i[0] for i in ids] == ["1", "2", "3"]
  assert [s.tolist() for _, s in made] == [
      [O, C, C, U, R, R], [C, U, U, U, R, R], [C, U, U, U, R, R]]
  # The ordered anchor's context: both clicked items, then an unclicked one.
  assert sorted(ids[0][1:3]) == ["2", "3"] and ids[0][3] in {"4", "5", "6",
                                                              "7"}
  for (indexes, stages), slate_ids in zip(made, ids):
    negatives = [i for i, s in zip(slate_ids, stages.tolist()) if s == R]
    assert len(set(negatives)) == 2
    assert not set(negatives) & set(map(str, range(1, 9)))
    assert len(indexes) == fixtures.CONFIG.slate_size


def test_short_slates_are_padded_and_unclicked_only_queries_give_none():
  hammer = _log("hammer", {10: C, 11: U})
  (indexes, stages), = slates.slates(hammer, CATALOG, SAMPLER,
                                     fixtures.CONFIG)
  assert stages.tolist() == [C, U, R, R, P, P]
  assert indexes[-2:].tolist() == [-1, -1]
  nails = _log("nails", {12: U})
  assert not list(slates.slates(nails, CATALOG, SAMPLER, fixtures.CONFIG))


def test_slates_are_deterministic():
  def ids():
    return [i.tolist() for i, _ in
            slates.slates(RED_DRILL, CATALOG, SAMPLER, fixtures.CONFIG)]
  assert ids() == ids()


def _values(example, name):
  feature = example.features.feature[name]
  return list(getattr(feature, feature.WhichOneof("kind")).value)


def test_encode_writes_catalogue_columns_and_utf8_titles():
  catalog = fixtures.catalog(size=3, title="perceuse {} à percussion")
  indexes = np.array([1, 0, -1])
  example = slates.encode("perceuse", catalog.slot_values(indexes),
                          np.array([C, R, P]))
  assert _values(example, features.QUERY) == [b"perceuse"]
  assert _values(example, features.STAGE) == [C, R, P]
  assert _values(example, features.ITEM_ID) == [b"2", b"1", b""]
  assert [t.decode("utf-8") for t in _values(example, features.TITLE)] == [
      "perceuse 2 à percussion", "perceuse 1 à percussion", ""]
  assert _values(example, "brand") == [b"b2", b"b1", b""]
  np.testing.assert_allclose(_values(example, "price"), [3.0, 0.0, 0.0],
                             atol=1e-6)
  assert "category" not in example.features.feature


def test_query_examples_tally_what_they_make():
  counts = collections.Counter()
  examples = list(slates.query_examples(RED_DRILL, CATALOG, SAMPLER,
                                        fixtures.CONFIG, counts))
  split = RED_DRILL.split
  assert len(examples) == 3
  assert counts == {
      count_keys.examples(split): 3,
      count_keys.queries_with_examples(split): 1,
      count_keys.positives("ORDERED"): 1,
      count_keys.positives("CLICKED"): 2,
      count_keys.slots("ORDERED"): 1,
      count_keys.slots("CLICKED"): 4,
      count_keys.slots("UNCLICKED"): 7,
      count_keys.slots("RANDOM"): 6}
  none = collections.Counter()
  assert not list(slates.query_examples(_log("nails", {12: U}), CATALOG,
                                        SAMPLER, fixtures.CONFIG, none))
  assert not none
