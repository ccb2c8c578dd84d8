"""The embedded sample: formats the project reads, behaviour the model needs."""
import collections
import csv
import gzip
import os

import numpy as np
import pytest

from contracts import catalog as catalog_lib
from contracts import features
from contracts import text as text_rule
from evaluation import metrics
from sample_data import simulator
from sample_data import templates
from sample_data import world

TINY = dict(num_items=300, num_queries=40, num_judged_queries=10,
            num_requests=400, page_size=12)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  out_dir = str(tmp_path_factory.mktemp("sample"))
  return out_dir, simulator.simulate(out_dir, seed=7, **TINY)


def _log_rows(summary):
  rows = []
  for path in summary["logs"]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
      reader = csv.reader(f)
      assert tuple(next(reader)) == features.LOG_COLUMNS
      rows += [dict(zip(features.LOG_COLUMNS, row)) for row in reader]
  return rows


def _files(out_dir):
  found = {}
  for root, _, names in os.walk(out_dir):
    for name in names:
      with open(os.path.join(root, name), "rb") as f:
        found[os.path.relpath(os.path.join(root, name), out_dir)] = f.read()
  return found


def test_same_seed_gives_byte_identical_files(tiny, tmp_path):
  out_dir, summary = tiny
  again = simulator.simulate(str(tmp_path / "again"), seed=7, **TINY)
  assert _files(str(tmp_path / "again")) == _files(out_dir)
  paths = ("catalog", "logs", "judgments")
  assert ({k: v for k, v in again.items() if k not in paths} ==
          {k: v for k, v in summary.items() if k not in paths})
  other = simulator.simulate(str(tmp_path / "other"), seed=8, **TINY)
  with open(other["catalog"], "rb") as a, open(summary["catalog"], "rb") as b:
    assert a.read() != b.read()


def test_catalog_parses_with_the_project_reader(tiny):
  _, summary = tiny
  catalog = catalog_lib.read_catalog(summary["catalog"])
  assert list(catalog.columns) == ["item_id", "title", "brand", "category",
                                   "price"]
  assert not catalog.set_aside
  ids = catalog.item_ids
  assert len(ids) == summary["items"] == 300
  # Numeric ids, read as text: the same digits.
  numbers = ids.astype(np.int64)
  assert numbers.min() == world.FIRST_ITEM_ID
  numbers.sort()
  assert np.all(np.diff(numbers) > 0) and (
      numbers[-1] - numbers[0] >= len(ids))  # Gaps.
  assert (catalog.columns["brand"] == "").sum() >= 1
  assert np.all(catalog.columns["price"] > 0)
  assert len(set(catalog.titles)) > 0.95 * len(ids)


def test_logs_have_the_benchmark_format(tiny):
  out_dir, summary = tiny
  assert sorted(os.listdir(os.path.join(out_dir, "logs"))) == [
      "search_logs-00000-of-00002.csv.gz", "search_logs-00001-of-00002.csv.gz"]
  rows = _log_rows(summary)
  assert len(rows) == summary["impressions"]
  assert summary["impressions"] == 400 * 12 + summary["dirty_rows"]["duplicate"]
  assert {r["request_id"] for r in rows} == {f"r{i:07d}" for i in range(400)}
  times = [int(r["event_time"]) for r in rows]
  assert times == sorted(times)
  assert world.LOG_START_TIME <= times[0]
  assert times[-1] < world.LOG_START_TIME + 14 * 86400
  assert {int(r["position"]) for r in rows} == set(range(1, 13))
  for column in ("clicked", "added_to_cart", "ordered"):
    assert {r[column] for r in rows} == {"0", "1"}
  assert sum(int(r["clicked"]) for r in rows) == summary["clicks"]
  assert sum(int(r["added_to_cart"]) for r in rows) == summary["carts"]
  assert sum(int(r["ordered"]) for r in rows) == summary["orders"]
  queries = {r["query"] for r in rows} - {""}
  assert len(queries) == summary["queries"] == 40
  assert all(q == q.lower() and q == q.strip() for q in queries)


def test_judgments_parse_and_hold_relevant_and_irrelevant_items(tiny):
  _, summary = tiny
  judgments = metrics.read_judgments(summary["judgments"])
  assert len(judgments) == summary["judged_queries"] == 10
  assert sum(map(len, judgments.values())) == summary["judgment_rows"]
  item_ids = set(catalog_lib.read_catalog(summary["catalog"]).item_ids.tolist())
  allowed = {1.0, 1.33, 1.67, 2.0, 2.33, 2.67, 3.0}
  for grades in judgments.values():
    assert set(grades) <= item_ids
    assert set(grades.values()) <= allowed
    assert max(grades.values()) >= features.RELEVANT_GRADE
    assert min(grades.values()) < 1.5


def test_held_out_queries_never_occur_in_the_logs(tiny):
  _, summary = tiny
  logged = {r["query"] for r in _log_rows(summary)}
  judged = set(metrics.read_judgments(summary["judgments"]))
  assert not logged & judged


def test_click_through_rate_falls_with_position(tiny):
  _, summary = tiny
  clicks, shown = collections.Counter(), collections.Counter()
  for row in _log_rows(summary):
    band = (int(row["position"]) - 1) // 4  # 1-4, 5-8, 9-12.
    shown[band] += 1
    clicks[band] += int(row["clicked"])
  rates = [clicks[b] / shown[b] for b in range(3)]
  assert rates[0] > rates[1] > rates[2]
  assert rates[0] > 2 * rates[2]


def test_deeper_stages_go_to_higher_graded_items(tiny):
  _, summary = tiny
  shop = world.build_world(7, TINY["num_items"], TINY["num_queries"],
                           TINY["num_judged_queries"])
  query_index = {q.text: i for i, q in enumerate(shop.queries)}
  item_index = {int(i): n for n, i in enumerate(shop.catalog.item_ids)}
  grades = collections.defaultdict(list)
  for row in _log_rows(summary):
    if row["query"] not in query_index or int(row["item_id"]) not in item_index:
      continue  # Dirt.
    grade = shop.grades[query_index[row["query"]],
                        item_index[int(row["item_id"])]]
    clicked, ordered = int(row["clicked"]), int(row["ordered"])
    if ordered and clicked:
      grades["ordered"].append(grade)
    elif clicked:
      grades["clicked"].append(grade)
    elif not ordered:
      grades["shown"].append(grade)
  mean = {stage: np.mean(g) for stage, g in grades.items()}
  assert mean["ordered"] > mean["clicked"] > mean["shown"]
  assert mean["ordered"] > 2.7
  # Orders cluster on relevant items: few go to an item graded below 2.
  assert np.mean(np.array(grades["ordered"]) < 2.0) < 0.05


def test_dirt_counts_match_the_summary(tiny):
  _, summary = tiny
  rows = _log_rows(summary)
  item_ids = set(catalog_lib.read_catalog(summary["catalog"]).item_ids.tolist())
  as_tuples = [tuple(r.values()) for r in rows]
  found = {
      "empty_query": sum(r["query"] == "" for r in rows),
      "unknown_item": sum(r["item_id"] not in item_ids for r in rows),
      "order_without_click": sum(
          r["ordered"] == "1" and r["clicked"] == "0" for r in rows),
      "duplicate": len(as_tuples) - len(set(as_tuples)),
  }
  # 4,800 clean rows * 0.5% / 4 kinds = 6 of each.
  assert summary["dirty_rows"] == found == dict.fromkeys(found, 6)


def test_click_model_matches_its_formula():
  # P(click) = position ** -0.9 * 0.05 * 19 ** ((grade - 1) / 2).
  assert world.click_probability(1, 3.0) == pytest.approx(0.95, abs=1e-9)
  assert world.click_probability(1, 1.0) == pytest.approx(0.05, abs=1e-9)
  assert world.click_probability(1, 2.0) == pytest.approx(0.217945,
                                                           abs=1e-5)
  assert world.click_probability(4, 3.0) == pytest.approx(0.272816,
                                                           abs=1e-5)
  assert world.cart_probability(3.0) == pytest.approx(0.6, abs=1e-9)
  assert world.order_probability(1.0) == pytest.approx(0.15, abs=1e-9)
  assert world.order_probability(2.0) == pytest.approx(0.3125, abs=1e-9)


def _type_index(name):
  return [p.name for p in templates.PRODUCT_TYPES].index(name)


def test_latent_grades_follow_attribute_overlap():
  drill = _type_index("Cordless Drill/Driver Kit")
  impact = _type_index("Cordless Impact Driver")  # Same category, Tools.
  fan = _type_index("Ceiling Fan")
  types = [drill, drill, drill, impact, fan]
  # Columns: voltage code, feature code; brands 0 and 2 differ.
  catalog = world.Catalog(
      item_ids=np.arange(5), titles=[""] * 5, type_index=np.array(types),
      brand_index=np.array([0, 0, 2, 0, 1]),
      attributes=np.array([[2, 0], [1, 0], [1, -1], [2, 1], [-1, 2]]),
      prices=np.ones(5),
      categories=np.array(
          [templates.PRODUCT_TYPES[t].category for t in types]),
      slot_names=["voltage", "feature"], attribute_keys=[[], []], brands=[])
  # "dewalt 20v drill": voltage 2 and brand 0 named.
  query = world.Query("dewalt 20v drill", drill, 0, np.array([2, -1]))
  np.testing.assert_allclose(
      world.latent_grades(query, catalog),
      [3.0, 3.0 - 0.6, 3.0 - 1.2, 1.3 + 0.15 * 2, 1.0], atol=1e-9)
  # Three named, none matched by item 2: 3 - 1.8 = 1.2, floored at 1.6.
  query = world.Query("dewalt 20v brushless drill", drill, 0,
                      np.array([2, 0]))
  assert world.latent_grades(query, catalog)[2] == pytest.approx(
      1.6, abs=1e-9)


def test_rerun_with_fewer_shards_removes_stale_ones(tmp_path):
  sizes = dict(TINY, num_log_shards=3)
  simulator.simulate(str(tmp_path), **sizes)
  summary = simulator.simulate(str(tmp_path), **TINY)
  assert sorted(os.listdir(tmp_path / "logs")) == sorted(
      os.path.basename(p) for p in summary["logs"])


@pytest.mark.parametrize("sizes, message", [
    (dict(TINY, num_requests=10), "num_requests"),
    (dict(TINY, page_size=500), "page_size"),
    (dict(TINY, num_items=0), "num_items"),
    (dict(TINY, num_log_shards=1000), "num_log_shards"),
])
def test_bad_sizes_are_clear_errors(tmp_path, sizes, message):
  with pytest.raises(ValueError, match=message):
    simulator.simulate(str(tmp_path), **sizes)
  assert not os.listdir(tmp_path)


def test_everyday_names_share_no_word_with_any_title():
  catalog = world.build_catalog(np.random.default_rng(0), 2000)
  title_words = {w for title in catalog.titles
                 for w in text_rule.canonical(title).split()}
  assert set(templates.EVERYDAY_NAMES) == {
      p.name for p in templates.PRODUCT_TYPES}
  shared = {name: set(text_rule.canonical(name).split()) & title_words
            for names in templates.EVERYDAY_NAMES.values() for name in names}
  assert not {name: words for name, words in shared.items() if words}


def test_many_held_out_queries_need_words_no_title_holds(tiny):
  out_dir, _ = tiny
  catalog = catalog_lib.read_catalog(os.path.join(out_dir, "catalog.csv"))
  title_words = {w for title in catalog.titles.tolist()
                 for w in text_rule.canonical(title).split()}
  queries = metrics.read_judgments(os.path.join(out_dir, "judgments.csv"))
  unseen = [q for q in queries if set(q.split()) - title_words]
  # About EVERYDAY_NAME_SHARE of them, plus misspellings.
  assert 0.3 <= len(unseen) / len(queries) <= 0.9
