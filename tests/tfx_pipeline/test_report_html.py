"""report.html: built from a real run, and read back through a real browser."""
import gzip
import html.parser
import json
import os
import re
import shutil
import subprocess

import pytest
import tensorflow as tf

from contracts import catalog as catalog_lib
from tfx_pipeline import cli
from tfx_pipeline import report_data
from tfx_pipeline import report_html
from tfx_pipeline import run_report

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _candidate(recall_at_100: float):
  return {"recall@10": 0.30, "recall@100": recall_at_100,
          "ndcg@10": 0.25, "exact_recall@100": recall_at_100 + 0.01,
          "recall_ordered@100": 0.9, "recall_clicked@100": 0.7,
          "index_recall@100": 0.98, "ordered_queries": 3,
          "clicked_queries": 4}


def _run_without_artifacts(**fields):
  """A run summary as `run_report.latest_run` gives it, with no files."""
  run = {
      "run": "2026-01-02T03:04:05.678",
      "components": {
          "Trainer": {"state": "COMPLETE", "seconds": 75.0, "started": 2.0},
          "LogsExampleGen": {"state": "CACHED", "seconds": 0.1,
                             "started": 1.0, "computed_seconds": 9.0},
      },
      "pipeline_seconds": 80.0,
      "blessed": False,
      "pushed": False,
      "evaluation": {
          "candidate": _candidate(0.60), "baseline": _candidate(0.65),
          "baseline_model": "/old/model", "config": {
              "blessing_metric": "recall@100", "cutoffs": [10, 100],
              "min_gain_over_popularity": 0.05,
              "min_gain_over_initial": 0.01, "max_regression": 0.0},
          "eval_queries": 5, "catalog_items": 40, "index_kind": "scann",
          "reason": "recall@100 0.6000 is below the last blessed 0.6500"},
  }
  run.update(fields)
  return run


def test_a_regression_is_not_blessed_and_shows_against_the_baseline():
  page = report_html.render(_run_without_artifacts())
  assert "Not blessed: nothing pushed" in page
  assert "recall@100 0.6000 is below the last blessed 0.6500" in page
  assert ('data-metric="recall@100">0.600<div class="base">base 0.650 '
          '<span class="down">-0.050</span>') in page
  assert "Nothing pushed." in page
  assert ("at least 0.01 above the same towers at their initial weights, and "
          "no more than 0.0 below the last blessed model.") in page
  # What the run did not produce is said, not left blank.
  assert "Trainer produced nothing in this run." in page
  assert "cached (9.0 s when run)" in page


def test_a_run_whose_artifacts_were_deleted_still_gets_a_page(tmp_path):
  gone = str(tmp_path / "deleted")
  page = report_html.render(_run_without_artifacts(
      tensorboard_logdir=gone, statistics={"logs": gone},
      anomalies={"logs": gone}, mining_report_dir=gone))
  assert page.count(f"Not found (moved or deleted): <code>{gone}</code>") == 3


def test_the_verdict_names_a_failed_component():
  run = _run_without_artifacts()
  run["components"]["Trainer"]["state"] = "FAILED"
  assert report_html.verdict(run) == ("failed",
                                      "Run incomplete: Trainer FAILED")
  run = _run_without_artifacts(blessed=True, pushed=True, pushed_version="3",
                               serving_dir="/serving")
  assert report_html.verdict(run) == ("ok", "Blessed and pushed as version 3")


def test_quarantine_examples_are_a_few_of_each_reason(tmp_path):
  quarantine = tmp_path / "quarantine"
  quarantine.mkdir()
  records = [{"query": f"q{i}", "reason": "duplicate"} for i in range(10)]
  records.append({"query": None, "reason": "empty_query"})
  with gzip.open(quarantine / "logs-00000-of-00001.jsonl.gz", "wt") as f:
    f.write("\n".join(json.dumps(r) for r in records) + "\n")
  examples = report_data.read_quarantine(
      str(tmp_path), "logs", ["duplicate", "empty_query", "malformed"])
  assert [r["query"] for r in examples["duplicate"]] == ["q0", "q1", "q2"]
  assert examples["empty_query"] == [{"query": None, "reason": "empty_query"}]
  assert examples["malformed"] == []


def test_training_curves_are_read_from_the_event_files(tmp_path):
  for run, losses in (("train", [3.0, 2.0]), ("validation", [3.5, 3.25])):
    with tf.summary.create_file_writer(str(tmp_path / run)).as_default():
      for epoch, loss in enumerate(losses):
        tf.summary.scalar("epoch/retrieval_loss", loss, step=epoch)
  curves = report_data.read_training_curves(str(tmp_path))
  for run, losses in (("train", [3.0, 2.0]), ("validation", [3.5, 3.25])):
    steps, values = zip(*curves[run]["epoch/retrieval_loss"])
    assert steps == (0, 1)
    assert values == pytest.approx(losses, abs=1e-6)


def test_the_page_plots_the_epoch_summaries_of_the_trainer(tmp_path):
  # As `model.training_callbacks` writes them: at the global step.
  for run, losses in (("train", [3.0, 2.0]), ("validation", [3.5, 3.25])):
    with tf.summary.create_file_writer(str(tmp_path / run)).as_default():
      for step, loss in zip((20, 40), losses):
        tf.summary.scalar("epoch/retrieval_loss", loss, step=step)
        tf.summary.scalar("epoch/ranking_loss", loss / 10, step=step)
        if run == "validation":
          tf.summary.scalar("eval/recall@10_in_slate_items", 0.5, step=step)
  page = report_html.render(_run_without_artifacts(
      tensorboard_logdir=str(tmp_path)))
  assert '<img class="plot" alt="Training curves"' in page
  assert "2 epochs;" in page


@pytest.fixture(scope="module")
def report(pipeline_run):
  """The report of the end-to-end run, and the run summary it shows."""
  config, _ = pipeline_run
  assert cli.main(["report", "--output", config.output_dir]) == 0
  path = os.path.join(config.output_dir, "report.html")
  return path, run_report.latest_run(config.metadata_path)


@pytest.mark.e2e
def test_report_of_a_real_run_is_one_self_contained_file(report):
  path, run = report
  assert os.path.basename(path) == "report.html"
  with open(path, encoding="utf-8") as f:
    page = f.read()
  assert "Blessed and pushed as version" in page
  recall = run["evaluation"]["candidate"]["recall@100"]
  assert f'data-metric="recall@100">{recall:.3f}' in page
  # The catalogue dirt the fixture added, with the row itself.
  assert "Zzz duplicate row" in page
  assert "No id here" in page
  # Training curves and the Recall@K plot are inline images.
  assert len(re.findall(r'<img class="plot" alt="[^"]+" '
                        r'src="data:image/png;base64,', page)) == 2
  # TFDV's view of logs, catalogue and samples is there; it alone loads
  # code from the web, and nothing else on the page does.
  mine, tfdv_view = page.split('<section id="tfdv">')
  assert tfdv_view.count("<facets-overview") == 3
  assert not re.search(r"https?://", mine)


class _TextById(html.parser.HTMLParser):
  """The text inside each element that has an id."""

  def __init__(self):
    super().__init__()
    self.texts = {}
    self._open = []  # [(id, depth)] of the elements being read.
    self._depth = 0

  def handle_starttag(self, tag, attrs):
    if tag in ("br", "img", "meta", "link", "input"):
      return
    self._depth += 1
    element_id = dict(attrs).get("id")
    if element_id:
      self._open.append((element_id, self._depth))
      self.texts[element_id] = ""

  def handle_endtag(self, tag):
    if tag in ("br", "img", "meta", "link", "input"):
      return
    if self._open and self._open[-1][1] == self._depth:
      self._open.pop()
    self._depth -= 1

  def handle_data(self, data):
    for element_id, _ in self._open:
      self.texts[element_id] += " " + data


def _chromium():
  for name in _CHROMIUM_NAMES:
    if shutil.which(name):
      return shutil.which(name)
  pytest.skip("no Chromium binary (Debian: apt-get install chromium)")


@pytest.mark.e2e
def test_browser_shows_the_key_figures_offline(report, tmp_path):
  path, run = report
  dom = subprocess.run(
      [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
       f"--user-data-dir={tmp_path / 'profile'}",
       # No name resolves: the page must show its figures with no network.
       "--host-resolver-rules=MAP * ~NOTFOUND",
       "--dump-dom", f"file://{path}"],
      capture_output=True, text=True, timeout=180, check=True).stdout
  parser = _TextById()
  parser.feed(dom)
  texts = {k: " ".join(v.split()) for k, v in parser.texts.items()}
  assert texts["verdict"] == (
      f"Blessed and pushed as version {run['pushed_version']}")
  assert texts["reason"] == run["evaluation"]["reason"]
  recall = run["evaluation"]["candidate"]["recall@100"]
  assert texts["key-recall-at-100"].startswith(f"recall@100 {recall:.3f}")
  mining = run["mining"]
  catalog_aside = sum(mining["catalog"][r]
                      for r in catalog_lib.SET_ASIDE_REASONS)
  assert catalog_aside == 4
  assert texts["key-set-aside"].startswith(
      f"Rows set aside {mining['rows_set_aside'] + catalog_aside:,} "
      f"{mining['rows_set_aside']:,} of {mining['rows_read']:,} log rows")
