"""MultiStageSamples on hand-made logs whose labels and counts are known.

The executor runs as TFX runs it (`Do` on artifacts), over Examples written
the way CsvExampleGen writes them: gzip TFRecords of tf.Example in which an
empty CSV cell is a missing feature. The library steps have their own tests
in tests/mining/.
"""
import collections
import dataclasses
import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import types
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components import artifacts
from components.multistage_samples import component
from components.multistage_samples import executor
from components.multistage_samples import spec
from contracts import catalog as catalog_lib
from contracts import config_io
from contracts import features
from mining import aggregation
from mining import cleaning
from mining import count_keys
from mining import report as report_lib
from mining import slates as slates_lib
from mining import splits
from mining import title_queries
from mining.config import MiningConfig
from mining.negatives import NegativeSampler
from tests.mining import fixtures as mining_fixtures

COLUMNS = features.LOG_COLUMNS
# Three context slots and two random negatives: slates of six.
CONFIG = MiningConfig(num_context_items=3, num_random_negatives=2,
                      popularity_exponent=0.5, eval_fraction=0.5,
                      title_query_fraction=0.0, seed=3)


def _log(request, query, item, position, clicked=0, carted=0, ordered=0):
  """A log row; `item` is written as text, as ExampleGen writes ids."""
  item = None if item is None else str(item)
  return dict(zip(COLUMNS, (request, 1767225600, "u1", query, item, position,
                            clicked, carted, ordered)))


# Kept rows. "red drill" (four spellings, one query by the model's text rule)
# stages: 1 ordered; 2 clicked; 3 clicked (shown in r1, carted in r2: the
# maximum counts); 4-7 unclicked.
KEPT = [
    _log("r1", "Red  Drill ", 1, 1, clicked=1, carted=1, ordered=1),
    _log("r1", "Red  Drill ", 2, 2, clicked=1),
    _log("r1", "Red  Drill ", 3, 3),
    _log("r1", "Red  Drill ", 4, 4),
    _log("r1", "Red  Drill ", 5, 5),
    _log("r1", "Red  Drill ", 6, 6),
    _log("r2", "red drill", 3, 1, clicked=1, carted=1),
    _log("r2", "RED\tDRILL,", 4, 2),
    _log("r2", "red drill", 7, 3),
    _log("r3", "Hammer", 10, 1, clicked=1),
    _log("r3", "Hammer", 11, 2),
    _log("r4", "nails", 12, 1),  # Shown, never clicked: no slate.
    _log("r5", "saw", 20, 1, clicked=1, ordered=1),
    _log("r5", "saw", 21, 2),
]
# Set-aside rows, each with the reason it must be counted under.
DIRTY = [
    (_log("d1", None, 13, 1), cleaning.EMPTY_QUERY),
    (_log("d2", "   ", 13, 1), cleaning.EMPTY_QUERY),
    (_log("d4", "?!", 13, 1), cleaning.EMPTY_QUERY),  # No word.
    (_log("d3", "hammer", 999, 3), cleaning.UNKNOWN_ITEM),
    (_log("r2", "red drill", 7, 3), cleaning.DUPLICATE),
    (_log("d5", "Hammer", 14, 3, ordered=1), cleaning.INCONSISTENT_FLAGS),
    (_log("d5", "Hammer", 14, 3, ordered=1), cleaning.INCONSISTENT_FLAGS),
    (_log("d6", "hammer", 15, 4, carted=1), cleaning.INCONSISTENT_FLAGS),
    (_log("d7", "hammer", 16, 5, clicked=2), cleaning.INCONSISTENT_FLAGS),
    (_log("d8", "hammer", None, 1), cleaning.MALFORMED),
    (_log("d9", "hammer", 17, 0), cleaning.MALFORMED),
    # Several faults: the first check in SET_ASIDE_REASONS order wins.
    (_log("d10", None, 999, 1), cleaning.EMPTY_QUERY),
    (_log("d11", "", None, 1), cleaning.MALFORMED),
    (_log("d12", "hammer", 18, 1, clicked=None), cleaning.MALFORMED),
]
# Items each query was shown, set-aside rows with a catalogue item included.
SHOWN = {query: set(map(str, items)) for query, items in {
    "red drill": {1, 2, 3, 4, 5, 6, 7},
    "hammer": {10, 11, 14, 15, 16, 17, 18},
    "nails": {12},
    "saw": {20, 21},
}.items()}
R, U, C, O, P = 0, 1, 2, 3, -1  # Stage values, for short expected slates.
EXPECTED_STAGES = {
    ("red drill", "1"): [O, C, C, U, R, R],
    ("red drill", "2"): [C, U, U, U, R, R],
    ("red drill", "3"): [C, U, U, U, R, R],
    ("hammer", "10"): [C, U, R, R, P, P],
    ("saw", "20"): [O, U, R, R, P, P],
}
CATALOG_SIZE = 30


def _catalog_rows():
  rows = []
  for i in range(1, CATALOG_SIZE + 1):
    row = {features.ITEM_ID: str(i)}
    if i != 30:
      row[features.TITLE] = f"item {i}"
    if i <= 10:
      row["brand"] = f"b{i}"
    if i % 2 == 0:
      row["price"] = i * 1.5
    rows.append(row)
  rows.append({features.ITEM_ID: "5", features.TITLE: "item 5 again"})
  rows.append({features.TITLE: "no id"})
  return rows


def _feature(value):
  if isinstance(value, int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  if isinstance(value, float):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
  return tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))


def _examples_artifact(uri, rows_by_split):
  """Writes {split: rows} as CsvExampleGen would; None cells are missing."""
  for split, rows in rows_by_split.items():
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
  artifact.split_names = artifact_utils.encode_split_names(list(rows_by_split))
  return artifact


def _read_jsonl_gz(pattern):
  records = []
  for path in tf.io.gfile.glob(pattern):
    with tf.io.gfile.GFile(path, "rb") as raw, gzip.GzipFile(
        fileobj=raw) as f:
      records.extend(json.loads(line) for line in f)
  return records


def _run(tmp_path, config, catalog_rows=None, logs=None):
  """Runs the executor; returns its outputs, read back."""
  logs = logs or [r for r, _ in DIRTY] + KEPT
  # Two splits, so the executor must read every split of the logs.
  logs_artifact = _examples_artifact(
      str(tmp_path / "logs"), {"a": logs[::2], "b": logs[1::2]})
  catalog_artifact = _examples_artifact(
      str(tmp_path / "catalog"), {"train": catalog_rows or _catalog_rows()})
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  report = artifacts.MiningReport()
  report.uri = str(tmp_path / "report")
  cleaned_catalog = artifacts.Catalog()
  cleaned_catalog.uri = str(tmp_path / "cleaned_catalog")
  for uri in (examples.uri, report.uri, cleaned_catalog.uri):
    tf.io.gfile.makedirs(uri)
  executor.Executor().Do(
      {spec.LOGS_KEY: [logs_artifact], spec.CATALOG_KEY: [catalog_artifact]},
      {spec.EXAMPLES_KEY: [examples], spec.REPORT_KEY: [report],
       spec.CLEANED_CATALOG_KEY: [cleaned_catalog]},
      config_io.to_parameters(config))
  by_split = {}
  for split in splits.SPLITS:
    files = tf.io.gfile.glob(
        os.path.join(examples.uri, f"Split-{split}", "*.gz"))
    by_split[split] = [tf.train.Example.FromString(r.numpy()) for r in
                       tf.data.TFRecordDataset(files, compression_type="GZIP")]
  with tf.io.gfile.GFile(os.path.join(report.uri, spec.COUNTS_FILE)) as f:
    counts = json.load(f)
  quarantine = {
      kind: _read_jsonl_gz(os.path.join(report.uri, spec.QUARANTINE_DIR,
                                        kind + "*"))
      for kind in (spec.LOGS_QUARANTINE, spec.CATALOG_QUARANTINE)}
  return {"examples": examples, "by_split": by_split, "counts": counts,
          "quarantine": quarantine, "report": report,
          "cleaned_catalog": cleaned_catalog}


def _values(example, name):
  feature = example.features.feature[name]
  values = list(getattr(feature, feature.WhichOneof("kind")).value)
  return [v.decode() if isinstance(v, bytes) else v for v in values]


def _slate_key(example):
  """(query, anchor item_id) of a slate."""
  return (_values(example, features.QUERY)[0],
          _values(example, features.ITEM_ID)[0])


def _slates(run):
  """{(query, anchor item_id): (split, example)}."""
  slates = {}
  for split, examples in run["by_split"].items():
    for example in examples:
      key = _slate_key(example)
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
      cleaning.MALFORMED: 4, cleaning.BAD_ITEM_ID: 0, cleaning.EMPTY_QUERY: 4,
      cleaning.UNKNOWN_ITEM: 1, cleaning.INCONSISTENT_FLAGS: 4,
      cleaning.DUPLICATE: 1}
  assert counts["rows_set_aside"] == len(DIRTY)
  assert counts["query_items"] == {"ORDERED": 2, "CLICKED": 3, "UNCLICKED": 7}
  assert counts["positives"] == {"ORDERED": 2, "CLICKED": 3}
  assert counts["slots"] == {"ORDERED": 2, "CLICKED": 5, "UNCLICKED": 9,
                             "RANDOM": 10, "PADDING": 4}
  assert counts["catalog"] == {"rows_read": CATALOG_SIZE + 2,
                               "items": CATALOG_SIZE, "missing_item_id": 1,
                               "bad_item_id": 0, "duplicate_item_id": 1,
                               "missing_title": 1}
  split_of = {q: splits.split_of(q, CONFIG) for q in SHOWN}
  for split in splits.SPLITS:
    assert counts["queries"][split] == sum(
        s == split for s in split_of.values())
    assert counts["examples"][split] == sum(
        split_of[q] == split for q, _ in EXPECTED_STAGES)
  assert sum(counts["examples"].values()) == len(EXPECTED_STAGES)
  assert counts["title_queries"] == counts["title_queries_held_out"] == 0
  report = mined["report"]
  assert report.get_int_custom_property("rows_read") == counts["rows_read"]
  assert report.get_int_custom_property("train_examples") == (
      counts["examples"]["train"])


def test_logs_without_one_usable_row_stop_the_run(tmp_path):
  # Without the row it repeats, the duplicate would be usable.
  unusable = [row for row, reason in DIRTY if reason != cleaning.DUPLICATE]
  with pytest.raises(ValueError, match=f"No usable search-log row: all "
                     f"{len(unusable)} rows read were set aside .*quarantine"):
    _run(tmp_path, CONFIG, logs=unusable)


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
                     ("5", "item 5 again", "duplicate_item_id"): 1}


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
        assert (item, title, brand, price) == ("", "", "", 0.0)
      else:
        row = catalog[item]
        assert title == row.get("title", "")
        assert brand == row.get("brand", "")
        assert price == pytest.approx(row.get("price", 0.0), abs=1e-4)
  # The ordered anchor's context: both clicked items first, then one of the
  # unclicked ones.
  red = _values(slates[("red drill", "1")][1], features.ITEM_ID)
  assert sorted(red[1:3]) == ["2", "3"] and red[3] in {"4", "5", "6", "7"}


def test_random_negatives_are_distinct_and_never_shown(mined):
  for (query, _), (_, example) in _slates(mined).items():
    ids = _values(example, features.ITEM_ID)
    negatives = [i for i, s in zip(ids, _values(example, features.STAGE))
                 if s == R]
    assert len(set(negatives)) == len(negatives) == 2
    assert not set(negatives) & SHOWN[query]
    assert set(negatives) <= set(map(str, range(1, CATALOG_SIZE + 1)))


def test_splits_are_disjoint_by_query(mined):
  queries = {s: {_values(e, features.QUERY)[0] for e in examples}
             for s, examples in mined["by_split"].items()}
  assert not queries["train"] & queries["eval"]
  # Seed 3 puts queries with slates in both splits, so both are exercised.
  assert queries["train"] and queries["eval"]
  for split, names in queries.items():
    assert all(splits.split_of(q, CONFIG) == split for q in names)
  assert artifact_utils.decode_split_names(
      mined["examples"].split_names) == ["train", "eval"]


def test_mining_is_deterministic(mined, tmp_path):
  again = _run(tmp_path, CONFIG)

  def contents(run, split):
    # Feature maps serialize in any order; compare the values.
    return sorted(
        json.dumps({n: _values(e, n) for n in e.features.feature},
                   sort_keys=True) for e in run["by_split"][split])

  for split in splits.SPLITS:
    assert contents(again, split) == contents(mined, split)
  assert again["counts"] == mined["counts"]


def test_component_parameters_follow_mining_config():
  samples = component.MultiStageSamples(
      logs=types.Channel(type=standard_artifacts.Examples),
      catalog=types.Channel(type=standard_artifacts.Examples),
      config=MiningConfig(popularity_exponent=1))
  assert samples.exec_properties == {
      "num_context_items": 6, "num_random_negatives": 4,
      "popularity_exponent": 1.0, "eval_fraction": 0.1,
      "title_query_fraction": 1.0, "title_query_min_words": 2,
      "title_query_max_words": 4, "seed": 17}
  assert isinstance(samples.exec_properties["popularity_exponent"], float)
  assert config_io.from_parameters(
      MiningConfig, samples.exec_properties) == MiningConfig(
          popularity_exponent=1.0)
  assert {k: c.type for k, c in samples.outputs.items()} == {
      "examples": standard_artifacts.Examples,
      "report": artifacts.MiningReport,
      "cleaned_catalog": artifacts.Catalog}


def test_cleaned_catalog_holds_the_kept_rows(mined):
  cleaned = catalog_lib.read_catalog(
      os.path.join(mined["cleaned_catalog"].uri, artifacts.CATALOG_FILE))
  # Item 5's first row is the smaller one, so it stays; the row without an
  # id is gone.
  kept = {r[features.ITEM_ID]: r for r in _catalog_rows()[:CATALOG_SIZE]}
  ids = sorted(kept)
  assert cleaned.item_ids.tolist() == ids
  assert cleaned.side_features == ("brand", "price")
  assert cleaned.titles.tolist() == [kept[i].get("title", "") for i in ids]
  assert cleaned.columns["brand"].tolist() == [
      kept[i].get("brand", "") for i in ids]
  np.testing.assert_allclose(cleaned.columns["price"],
                             [kept[i].get("price", 0.0) for i in ids],
                             atol=1e-6)
  assert not cleaned.set_aside
  assert mined["cleaned_catalog"].get_int_custom_property("items") == len(ids)
  duplicates = [r for r in mined["quarantine"]["catalog"]
                if r[catalog_lib.REASON] == catalog_lib.DUPLICATE_ITEM_ID]
  assert [(r["item_id"], r["title"]) for r in duplicates] == [
      ("5", "item 5 again")]


def test_spellings_of_one_query_are_one_query(mined):
  # "Red  Drill ", "red drill" and "RED\tDRILL," are one query: its items
  # are staged together and its slates share the split and query text.
  drill = [(split, e) for (q, _), (split, e) in _slates(mined).items()
           if q == "red drill"]
  assert len(drill) == 3 and len({split for split, _ in drill}) == 1
  assert mined["counts"]["queries"]["train"] + mined["counts"]["queries"][
      "eval"] == len(SHOWN)


# Titles that are logged queries (of both splits under CONFIG's seed): with
# one-word pseudo-queries allowed, an item titled "Hammer" gives the
# pseudo-query "hammer", which must land in the split of the logged query.
LOGGED_QUERY_TITLES = {"22": "Hammer", "23": "nails!", "24": "SAW"}
TITLES_CONFIG = dataclasses.replace(CONFIG, title_query_fraction=1.0,
                                    title_query_min_words=1,
                                    title_query_max_words=2)


@pytest.fixture(scope="module")
def mined_with_titles(tmp_path_factory):
  rows = _catalog_rows()
  for row in rows:
    if row.get(features.ITEM_ID) in LOGGED_QUERY_TITLES:
      row[features.TITLE] = LOGGED_QUERY_TITLES[row[features.ITEM_ID]]
  return _run(tmp_path_factory.mktemp("titles"), TITLES_CONFIG, rows)


def test_no_eval_query_is_trained_on(mined_with_titles):
  run = mined_with_titles
  queries = {s: {_values(e, features.QUERY)[0] for e in examples}
             for s, examples in run["by_split"].items()}
  # The fixture exercises what it should: a pseudo-query with the text of a
  # logged eval query, and logged queries in both splits.
  twins = {"hammer", "nails", "saw"}
  assert {splits.split_of(q, TITLES_CONFIG) for q in twins} == set(
      splits.SPLITS)
  assert not queries["train"] & queries["eval"]
  for split, names in queries.items():
    assert all(splits.split_of(q, TITLES_CONFIG) == split for q in names)
  # The eval split is logged behaviour only: pseudo-queries that fall in
  # eval are held out, not added to it.
  eval_slates = {_slate_key(e) for e in run["by_split"]["eval"]}
  assert eval_slates == {
      k for k in EXPECTED_STAGES
      if splits.split_of(k[0], TITLES_CONFIG) == splits.EVAL}
  titled = [e for e in run["by_split"]["train"]
            if _slate_key(e) not in EXPECTED_STAGES]
  for example in titled:
    assert _values(example, features.STAGE)[0] == C
  counts = run["counts"]
  assert counts["title_queries"] == len(titled) > 0
  assert counts["title_queries_held_out"] > 0
  # Every item with a title (all but item 30) has a pseudo-query.
  assert counts["title_queries"] + counts["title_queries_held_out"] == (
      CATALOG_SIZE - 1)
  assert counts["examples"]["train"] == len(run["by_split"]["train"])
  assert counts["examples"]["eval"] == len(run["by_split"]["eval"])
  assert run["report"].get_int_custom_property("title_queries_held_out") == (
      counts["title_queries_held_out"])


def _library_run(config, logs, catalog_rows):
  """What the mining library makes of the rows, step by step in plain
  Python, with no Beam: ({split: slates}, counts report, quarantined logs).
  """
  builder = catalog_lib.CatalogBuilder()
  for row in catalog_rows:
    builder.add_row(row)
  catalog = builder.build()
  cleaned = cleaning.clean_rows(
      ((tuple(row[c] for c in COLUMNS), ()) for row in logs), catalog)
  counts = collections.Counter(cleaned.counts)
  counts.update({count_keys.catalog(k): n for k, n in catalog.counts.items()})
  quarantine = list(cleaned.set_aside)
  query_logs = []
  for query, (kept, shown) in cleaned.by_query.items():
    stats, set_aside = mining_fixtures.query_stats(kept, shown, counts)
    quarantine += set_aside
    aggregated = aggregation.query_log(query, stats, config)
    counts.update(aggregated.counts)
    if aggregated.log is not None:
      query_logs.append(aggregated.log)
  impressions = collections.Counter()
  for log in query_logs:
    impressions.update(log.impressions_by_item())
  sampler = NegativeSampler.for_catalog(impressions, catalog,
                                        config.popularity_exponent)
  by_split = {split: [] for split in splits.SPLITS}
  for log in query_logs:
    by_split[log.split] += slates_lib.query_examples(log, catalog, sampler,
                                                     config, counts)
  by_split[splits.TRAIN] += title_queries.title_query_examples(
      catalog, sampler, config, counts)
  by_split = {split: [tf.train.Example.FromString(e) for e in examples]
              for split, examples in by_split.items()}
  return by_split, report_lib.report_from_counts(counts, config), quarantine


def _contents(examples):
  # Feature maps serialize in any order; compare the values.
  return sorted(json.dumps({n: _values(e, n) for n in e.features.feature},
                           sort_keys=True) for e in examples)


def test_the_beam_graph_mines_what_the_library_does_row_by_row(tmp_path):
  # Every set-aside reason, duplicates and title pseudo-queries: the
  # batched, combined Beam graph must give exactly the slates, counts and
  # quarantine of the library's steps run one row after another.
  logs = [r for r, _ in DIRTY] + KEPT + [
      _log("b1", "hammer", "1\x07", 2), _log("b2", "saw", "9" * 300, 3)]
  run = _run(tmp_path, TITLES_CONFIG, logs=logs)
  by_split, counts, quarantine = _library_run(TITLES_CONFIG, logs,
                                              _catalog_rows())
  assert all(counts["set_aside"].values())  # Every reason is exercised.
  assert counts["examples"][splits.EVAL] and counts["title_queries"]
  for split in splits.SPLITS:
    assert _contents(run["by_split"][split]) == _contents(by_split[split])
  assert run["counts"] == json.loads(json.dumps(counts))
  assert sorted(json.dumps(r, sort_keys=True)
                for r in run["quarantine"][spec.LOGS_QUARANTINE]) == sorted(
                    json.dumps(r, sort_keys=True) for r in quarantine)
