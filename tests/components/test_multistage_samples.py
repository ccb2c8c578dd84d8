"""MultiStageSamples on hand-made logs whose labels and counts are known.

The executor runs as TFX runs it (`Do` on artifacts), over Examples written
the way CsvExampleGen writes them: gzip TFRecords of tf.Example in which an
empty CSV cell is a missing feature.
"""
import collections
import dataclasses
import glob
import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import types
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.multistage_samples import component
from components.multistage_samples import executor
from model import features
from tfx_pipeline import configs

COLUMNS = features.LOG_COLUMNS
# Three context slots and two random negatives: slates of six.
CONFIG = configs.MiningConfig(num_context_items=3, num_random_negatives=2,
                              popularity_exponent=0.5, eval_fraction=0.5,
                              title_query_fraction=0.0, seed=3)


def _log(request, query, item, position, clicked=0, carted=0, ordered=0):
  return dict(zip(COLUMNS, (request, 1767225600, "u1", query, item, position,
                            clicked, carted, ordered)))


# Kept rows. "red drill" (three spellings) stages: 1 ordered; 2 clicked;
# 3 clicked (shown in r1, carted in r2: the maximum counts); 4-7 unclicked.
KEPT = [
    _log("r1", "Red  Drill ", 1, 1, clicked=1, carted=1, ordered=1),
    _log("r1", "Red  Drill ", 2, 2, clicked=1),
    _log("r1", "Red  Drill ", 3, 3),
    _log("r1", "Red  Drill ", 4, 4),
    _log("r1", "Red  Drill ", 5, 5),
    _log("r1", "Red  Drill ", 6, 6),
    _log("r2", "red drill", 3, 1, clicked=1, carted=1),
    _log("r2", "RED\tDRILL", 4, 2),
    _log("r2", "red drill", 7, 3),
    _log("r3", "Hammer", 10, 1, clicked=1),
    _log("r3", "Hammer", 11, 2),
    _log("r4", "nails", 12, 1),  # Shown, never clicked: no slate.
    _log("r5", "saw", 20, 1, clicked=1, ordered=1),
    _log("r5", "saw", 21, 2),
]
# Set-aside rows, each with the reason it must be counted under.
DIRTY = [
    (_log("d1", None, 13, 1), executor.EMPTY_QUERY),
    (_log("d2", "   ", 13, 1), executor.EMPTY_QUERY),
    (_log("d3", "hammer", 999, 3), executor.UNKNOWN_ITEM),
    (_log("r2", "red drill", 7, 3), executor.DUPLICATE),
    (_log("d5", "Hammer", 14, 3, ordered=1), executor.INCONSISTENT_FLAGS),
    (_log("d5", "Hammer", 14, 3, ordered=1), executor.INCONSISTENT_FLAGS),
    (_log("d6", "hammer", 15, 4, carted=1), executor.INCONSISTENT_FLAGS),
    (_log("d7", "hammer", 16, 5, clicked=2), executor.INCONSISTENT_FLAGS),
    (_log("d8", "hammer", None, 1), executor.MALFORMED),
    (_log("d9", "hammer", 17, 0), executor.MALFORMED),
    # Several faults: the first check in SET_ASIDE_REASONS order wins.
    (_log("d10", None, 999, 1), executor.EMPTY_QUERY),
    (_log("d11", "", None, 1), executor.MALFORMED),
    (_log("d12", "hammer", 18, 1, clicked=None), executor.MALFORMED),
]
# Items each query was shown, set-aside rows with a catalogue item included.
SHOWN = {
    "red drill": {1, 2, 3, 4, 5, 6, 7},
    "hammer": {10, 11, 14, 15, 16, 17, 18},
    "nails": {12},
    "saw": {20, 21},
}
R, U, C, O, P = 0, 1, 2, 3, -1  # Stage values, for short expected slates.
EXPECTED_STAGES = {
    ("red drill", 1): [O, C, C, U, R, R],
    ("red drill", 2): [C, U, U, U, R, R],
    ("red drill", 3): [C, U, U, U, R, R],
    ("hammer", 10): [C, U, R, R, P, P],
    ("saw", 20): [O, U, R, R, P, P],
}
CATALOG_SIZE = 30


def _catalog_rows():
  rows = []
  for i in range(1, CATALOG_SIZE + 1):
    row = {features.ITEM_ID: i}
    if i != 30:
      row[features.TITLE] = f"item {i}"
    if i <= 10:
      row["brand"] = f"b{i}"
    if i % 2 == 0:
      row["price"] = i * 1.5
    rows.append(row)
  rows.append({features.ITEM_ID: 5, features.TITLE: "item 5 again"})
  rows.append({features.TITLE: "no id"})
  return rows


def _feature(value):
  if isinstance(value, int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  if isinstance(value, float):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
  return tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))


def _examples_artifact(uri, splits):
  """Writes {split: rows} as CsvExampleGen would; None cells are missing."""
  for split, rows in splits.items():
    os.makedirs(os.path.join(uri, f"Split-{split}"))
    path = os.path.join(uri, f"Split-{split}",
                        "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
      for row in rows:
        example = tf.train.Example(features=tf.train.Features(feature={
            k: _feature(v) for k, v in row.items() if v is not None}))
        writer.write(example.SerializeToString())
  artifact = standard_artifacts.Examples()
  artifact.uri = uri
  artifact.split_names = artifact_utils.encode_split_names(list(splits))
  return artifact


def _run(tmp_path, config):
  """Runs the executor; returns its examples, counts, quarantine, report."""
  logs = [r for r, _ in DIRTY] + KEPT
  # Two splits, so the executor must read every split of the logs.
  logs_artifact = _examples_artifact(
      str(tmp_path / "logs"), {"a": logs[::2], "b": logs[1::2]})
  catalog_artifact = _examples_artifact(str(tmp_path / "catalog"),
                                        {"train": _catalog_rows()})
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  report = component.MiningReport()
  report.uri = str(tmp_path / "report")
  for uri in (examples.uri, report.uri):
    os.makedirs(uri)
  executor.Executor().Do(
      {executor.LOGS_KEY: [logs_artifact],
       executor.CATALOG_KEY: [catalog_artifact]},
      {executor.EXAMPLES_KEY: [examples], executor.REPORT_KEY: [report]},
      dataclasses.asdict(config))
  by_split = {}
  for split in executor.SPLITS:
    files = glob.glob(os.path.join(examples.uri, f"Split-{split}", "*.gz"))
    by_split[split] = [tf.train.Example.FromString(r.numpy()) for r in
                       tf.data.TFRecordDataset(files, compression_type="GZIP")]
  with open(os.path.join(report.uri, executor.COUNTS_FILE)) as f:
    counts = json.load(f)
  quarantine = {}
  for kind in ("logs", "catalog"):
    quarantine[kind] = []
    for path in glob.glob(os.path.join(report.uri, "quarantine", kind + "*")):
      with gzip.open(path, "rt") as f:
        quarantine[kind].extend(json.loads(line) for line in f)
  return {"examples": examples, "by_split": by_split, "counts": counts,
          "quarantine": quarantine, "report": report}


def _values(example, name):
  feature = example.features.feature[name]
  values = list(getattr(feature, feature.WhichOneof("kind")).value)
  return [v.decode() if isinstance(v, bytes) else v for v in values]


def _slates(run):
  """{(query, anchor item_id): (split, example)}."""
  slates = {}
  for split, examples in run["by_split"].items():
    for example in examples:
      key = (_values(example, features.QUERY)[0],
             _values(example, features.ITEM_ID)[0])
      assert key not in slates
      slates[key] = (split, example)
  return slates


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
  return _run(tmp_path_factory.mktemp("mined"), CONFIG)


def test_counts(mined):
  counts = mined["counts"]
  assert counts["rows_read"] == len(KEPT) + len(DIRTY)
  assert counts["rows_kept"] == len(KEPT)
  assert counts["set_aside"] == {
      executor.MALFORMED: 4, executor.EMPTY_QUERY: 3,
      executor.UNKNOWN_ITEM: 1, executor.INCONSISTENT_FLAGS: 4,
      executor.DUPLICATE: 1}
  assert counts["rows_set_aside"] == len(DIRTY)
  assert counts["query_items"] == {"ORDERED": 2, "CLICKED": 3, "UNCLICKED": 7}
  assert counts["positives"] == {"ORDERED": 2, "CLICKED": 3}
  assert counts["slots"] == {"ORDERED": 2, "CLICKED": 5, "UNCLICKED": 9,
                             "RANDOM": 10, "PADDING": 4}
  assert counts["catalog"] == {"rows_read": CATALOG_SIZE + 2,
                               "items": CATALOG_SIZE, "missing_item_id": 1,
                               "duplicate_item_id": 1, "missing_title": 1}
  split_of = {q: executor.split_of(q, CONFIG) for q in SHOWN}
  for split in executor.SPLITS:
    assert counts["queries"][split] == sum(
        s == split for s in split_of.values())
    assert counts["examples"][split] == sum(
        split_of[q] == split for q, _ in EXPECTED_STAGES)
  assert sum(counts["examples"].values()) == len(EXPECTED_STAGES)
  report = mined["report"]
  assert report.get_int_custom_property("rows_read") == counts["rows_read"]
  assert report.get_int_custom_property("train_examples") == (
      counts["examples"]["train"])


def test_quarantine_holds_every_set_aside_row_with_its_reason(mined):
  records = mined["quarantine"]["logs"]
  got = collections.Counter(
      (r["request_id"], r["item_id"], r["reason"]) for r in records)
  assert got == collections.Counter(
      (row["request_id"], row["item_id"], reason) for row, reason in DIRTY)
  for record in records:
    assert set(record) == set(COLUMNS) | {"reason"}
  d12 = next(r for r in records if r["request_id"] == "d12")
  assert d12["clicked"] is None and d12["query"] == "hammer"
  catalog = collections.Counter((r.get("item_id"), r.get("title"), r["reason"])
                                for r in mined["quarantine"]["catalog"])
  assert catalog == {(None, "no id", "missing_item_id"): 1,
                     (5, "item 5 again", "duplicate_item_id"): 1}


def test_slot_stages_padding_and_features(mined):
  slates = _slates(mined)
  assert set(slates) == set(EXPECTED_STAGES)
  catalog = {r[features.ITEM_ID]: r for r in _catalog_rows()[:CATALOG_SIZE]}
  for (query, anchor), (_, example) in slates.items():
    stages = _values(example, features.STAGE)
    assert stages == EXPECTED_STAGES[(query, anchor)]
    ids = _values(example, features.ITEM_ID)
    for name in (features.ITEM_ID, features.TITLE, "brand", "price",
                 features.STAGE):
      assert len(_values(example, name)) == CONFIG.slate_size
    assert "category" not in example.features.feature
    assert _values(example, features.QUERY) == [query]
    # Context items are the query's own, at their stage for it.
    for item, stage in zip(ids, stages):
      if stage in (U, C, O):
        assert item in SHOWN[query]
    for item, stage, title, brand, price in zip(
        ids, stages, *(_values(example, n) for n in ("title", "brand",
                                                      "price"))):
      if stage == P:
        assert (item, title, brand, price) == (0, "", "", 0.0)
      else:
        row = catalog[item]
        assert title == row.get("title", "")
        assert brand == row.get("brand", "")
        assert price == pytest.approx(row.get("price", 0.0))
  # The ordered anchor's context: both clicked items first, then one of the
  # unclicked ones.
  red = _values(slates[("red drill", 1)][1], features.ITEM_ID)
  assert sorted(red[1:3]) == [2, 3] and red[3] in {4, 5, 6, 7}


def test_random_negatives_are_distinct_and_never_shown(mined):
  for (query, _), (_, example) in _slates(mined).items():
    ids = _values(example, features.ITEM_ID)
    negatives = [i for i, s in zip(ids, _values(example, features.STAGE))
                 if s == R]
    assert len(set(negatives)) == len(negatives) == 2
    assert not set(negatives) & SHOWN[query]
    assert set(negatives) <= set(range(1, CATALOG_SIZE + 1))


def test_splits_are_disjoint_by_query(mined):
  queries = {s: {_values(e, features.QUERY)[0] for e in examples}
             for s, examples in mined["by_split"].items()}
  assert not queries["train"] & queries["eval"]
  # Seed 3 puts queries with slates in both splits, so both are exercised.
  assert queries["train"] and queries["eval"]
  for split, names in queries.items():
    assert all(executor.split_of(q, CONFIG) == split for q in names)
  assert artifact_utils.decode_split_names(
      mined["examples"].split_names) == ["train", "eval"]


def test_mining_is_deterministic(mined, tmp_path):
  again = _run(tmp_path, CONFIG)

  def contents(run, split):
    # Feature maps serialize in any order; compare the values.
    return sorted(
        json.dumps({n: _values(e, n) for n in e.features.feature},
                   sort_keys=True) for e in run["by_split"][split])

  for split in executor.SPLITS:
    assert contents(again, split) == contents(mined, split)
  assert again["counts"] == mined["counts"]


def test_sampler_takes_every_unshown_item_when_asked_for_more():
  sampler = executor.NegativeSampler(np.arange(CATALOG_SIZE), 0.5)
  shown = np.array(sorted(SHOWN["hammer"])) - 1  # Catalogue indexes.
  drawn = sampler.sample(np.random.default_rng(0), shown, 40)
  assert sorted(drawn.tolist()) == sorted(
      set(range(CATALOG_SIZE)) - set(shown.tolist()))


def test_negative_sampler_follows_popularity():
  impressions = np.zeros(100, dtype=np.int64)
  impressions[0] = 99
  for exponent, expected in ((1.0, 100 / 199), (0.0, 1 / 100)):
    sampler = executor.NegativeSampler(impressions, exponent)
    draws = [sampler.sample(np.random.default_rng(s), np.array([5, 7]), 1)[0]
             for s in range(4000)]
    assert np.mean(np.equal(draws, 0)) == pytest.approx(expected, abs=0.03)
    assert not {5, 7} & set(draws)


def test_normalize_query():
  assert executor.normalize_query(b"  Red\t\tDRILL \n") == "red drill"
  assert executor.normalize_query(None) == ""


def test_component_parameters_follow_mining_config():
  samples = component.MultiStageSamples(
      logs=types.Channel(type=standard_artifacts.Examples),
      catalog=types.Channel(type=standard_artifacts.Examples),
      config=configs.MiningConfig(popularity_exponent=1))
  assert samples.exec_properties == {
      "num_context_items": 6, "num_random_negatives": 4,
      "popularity_exponent": 1.0, "eval_fraction": 0.1,
      "title_query_fraction": 1.0, "title_query_min_words": 2,
      "title_query_max_words": 4, "seed": 17}
  assert isinstance(samples.exec_properties["popularity_exponent"], float)
  assert set(samples.outputs) == {"examples", "report"}


def test_title_query_takes_distinct_title_words():
  config = configs.MiningConfig(title_query_min_words=2,
                                title_query_max_words=3)
  rng = np.random.default_rng(0)
  title_words = ["dewalt", "20v", "max", "1/2", "in", "drill", "drill"]
  for _ in range(50):
    query = executor.title_query(title_words, rng, config)
    words = query.split()
    assert 2 <= len(words) <= 3 and len(set(words)) == len(words)
    assert set(words) <= {"dewalt", "20v", "max", "1/2", "in", "drill"}
  assert executor.title_query(["hammer", "hammer"], rng, config) is None
  assert executor.title_query([], rng, config) is None


def test_title_query_slates_cover_the_asked_share_of_the_catalogue():
  entries = {i: (("item_id", i), ("title", f"steel claw hammer {i}".encode()))
             for i in range(1, 401)}
  catalog = executor.Catalog(entries)
  sampler = executor.NegativeSampler(np.zeros(len(catalog), np.int64), 0.5)
  config = configs.MiningConfig(num_context_items=2, num_random_negatives=3,
                                title_query_fraction=0.25)
  slates = list(executor.title_query_slates(catalog, sampler, config))
  assert 60 <= len(slates) <= 140
  for query, indexes, stages in slates:
    anchor = indexes[0]
    assert set(query.split()) <= set(
        catalog.columns["title"][anchor].decode().split())
    assert stages.tolist() == [C, R, R, R, P, P]
    negatives = indexes[1:4]
    assert anchor not in negatives and len(set(negatives.tolist())) == 3
    assert indexes[4:].tolist() == [-1, -1]
  again = list(executor.title_query_slates(catalog, sampler, config))
  assert [(q, i.tolist()) for q, i, _ in again] == [
      (q, i.tolist()) for q, i, _ in slates]
  off = dataclasses.replace(config, title_query_fraction=0.0)
  assert not list(executor.title_query_slates(catalog, sampler, off))


def test_title_queries_join_the_train_split_only(tmp_path):
  config = dataclasses.replace(CONFIG, title_query_fraction=1.0)
  run = _run(tmp_path, config)
  titled = [e for e in run["by_split"]["train"]
            if (_values(e, features.QUERY)[0],
                _values(e, features.ITEM_ID)[0]) not in EXPECTED_STAGES]
  assert run["counts"]["title_queries"] == len(titled) > 0
  assert run["counts"]["examples"]["train"] == len(run["by_split"]["train"])
  for example in titled:
    assert _values(example, features.STAGE)[0] == C
  eval_queries = {_values(e, features.QUERY)[0]
                  for e in run["by_split"]["eval"]}
  assert eval_queries <= set(SHOWN)
