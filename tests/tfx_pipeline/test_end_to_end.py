"""The whole TFX pipeline on a tiny simulated set, then the pushed models."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from contracts import catalog as catalog_lib
from contracts import features
from contracts import serving_layout
from evaluation import lexical
from evaluation import metrics
from tfx_pipeline import cli
from tfx_pipeline import run_report


@pytest.mark.e2e
def test_every_component_completes_and_the_model_is_pushed(pipeline_run):
  config, _ = pipeline_run
  report = run_report.latest_run(config.metadata_path)
  assert report["components"], report
  states = {name: c["state"] for name, c in report["components"].items()}
  assert set(states.values()) <= {"COMPLETE", "CACHED"}, states
  assert report["mining"]["rows_read"] > 0
  assert report["blessed"] is True
  assert report["pushed"] is True
  for name in serving_layout.SERVED_MODELS:
    assert os.path.exists(os.path.join(config.serving_dir, name, "1",
                                       "saved_model.pb"))
  assert os.path.exists(os.path.join(config.serving_dir, "models.config"))
  assert os.path.isdir(report["tensorboard_logdir"])
  assert os.path.isdir(os.path.dirname(serving_layout.trained_tower_dir(
      report["model_dir"], serving_layout.QUERY_TOWER)))


@pytest.mark.e2e
def test_the_model_learned_what_word_overlap_cannot_find(pipeline_run):
  config, data_dir = pipeline_run
  scores = run_report.latest_run(config.metadata_path)["evaluation"][
      "by_judgments"]["judgments_file"]
  learned, initial = scores["candidate"], scores["initial"]
  # The towers start from the teacher's word vectors, already a semantic
  # match well above a random start (README gives both); the logs still add
  # to it.
  assert learned["recall@100"] >= initial["recall@100"] + 0.03
  # The sample's queries often name products by words no title holds.
  judgments = metrics.read_judgments(os.path.join(data_dir, "judgments.csv"))
  bm25 = metrics.score(lexical.bm25_rankings(
      catalog_lib.read_catalog(config.catalog_path), list(judgments), k=100),
                       judgments, (100,))
  assert learned["recall@100"] > bm25["recall@100"]


@pytest.mark.e2e
def test_catalogue_dirt_is_set_aside_and_the_index_has_each_item_once(
    pipeline_run):
  config, _ = pipeline_run
  report = run_report.latest_run(config.metadata_path)
  catalog_counts = report["mining"]["catalog"]
  assert catalog_counts[catalog_lib.DUPLICATE_ITEM_ID] == 1
  assert catalog_counts[catalog_lib.MISSING_ITEM_ID] == 1
  assert catalog_counts[catalog_lib.BAD_ITEM_ID] == 2
  served = np.load(os.path.join(
      serving_layout.index_dir(os.path.join(config.serving_dir,
                                            serving_layout.RETRIEVAL, "1")),
      "item_ids.npy"))
  expected = catalog_lib.read_catalog(config.catalog_path).item_ids
  np.testing.assert_array_equal(np.sort(served), expected)


@pytest.mark.e2e
def test_no_eval_query_is_trained_on(pipeline_run):
  config, _ = pipeline_run
  report = run_report.latest_run(config.metadata_path)
  queries = {}
  for split in ("train", "eval"):
    files = tf.io.gfile.glob(os.path.join(report["examples_dir"],
                                          f"Split-{split}", "*"))
    queries[split] = {
        tf.train.Example.FromString(record.numpy()).features.feature[
            features.QUERY].bytes_list.value[0]
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP")}
  assert queries["train"] and queries["eval"]
  assert not queries["train"] & queries["eval"]


@pytest.mark.e2e
def test_pushed_models_agree_with_each_other(pipeline_run):
  config, data_dir = pipeline_run
  load = lambda name: tf.saved_model.load(
      os.path.join(config.serving_dir, name, "1")).signatures[
          "serving_default"]
  retrieval, query_tower, item_tower = (
      load(serving_layout.RETRIEVAL), load(serving_layout.QUERY_TOWER),
      load(serving_layout.ITEM_TOWER))
  items = catalog_lib.read_catalog(os.path.join(data_dir, "catalog.csv"))
  queries = tf.constant(["cordless drill", "led light bulb"])

  result = retrieval(query=queries)
  ids, scores = result["item_ids"].numpy(), result["scores"].numpy()
  # Ids come back as text, each byte for byte one of the catalogue's.
  assert ids.shape == (2, 50) and ids.dtype == object
  assert {i.decode("utf-8") for i in ids.ravel()} <= set(
      items.item_ids.tolist())
  assert any(not i.isdigit() for i in items.item_ids.tolist())
  assert np.all(np.diff(scores, axis=1) <= 1e-6)  # Best first.

  # The retrieval model's scores are query_tower . item_tower.
  q = query_tower(query=queries)["embedding"].numpy()
  inputs = {name: tf.constant(items.columns[name])
            for name in item_tower.structured_input_signature[1]}
  v = item_tower(**inputs)["embedding"].numpy()
  exact = q @ v.T
  best = np.argsort(-exact, axis=1)[:, :50]
  np.testing.assert_allclose(scores, np.take_along_axis(exact, best, 1),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.e2e
def test_cli_retrieve_and_evaluate_read_the_serving_dir(pipeline_run, tmp_path,
                                                        capsys):
  config, data_dir = pipeline_run
  queries = tmp_path / "queries.txt"
  queries.write_text("cordless drill\n\nled light bulb\n")
  out = tmp_path / "out.jsonl"
  assert cli.main(["retrieve", "--serving-dir", config.serving_dir,
                   "--queries", str(queries), "-k", "5",
                   "--out", str(out)]) == 0
  lines = [json.loads(l) for l in out.read_text().splitlines()]
  assert [l["query"] for l in lines] == ["cordless drill", "", "led light bulb"]
  assert all(len(l["item_ids"]) == 5 for l in lines)

  capsys.readouterr()
  assert cli.main(["evaluate", "--serving-dir", config.serving_dir,
                   "--catalog", os.path.join(data_dir, "catalog.csv"),
                   "--judgments", os.path.join(data_dir, "judgments.csv")]) == 0
  metrics = json.loads(capsys.readouterr().out)
  for key in ("recall@10", "recall@100", "recall@1000", "ndcg@10", "ndcg@100"):
    assert 0.0 <= metrics[key] <= 1.0
  assert metrics["queries"] > 0
  # The judgments' text ids meet the catalogue's: most relevant items are
  # found (mismatched ids would find none).
  assert metrics["recall@1000"] > 0.5


@pytest.mark.e2e
def test_pushed_models_need_only_core_tensorflow(pipeline_run):
  """The real towers load where ScaNN and tensorflow-text are not imported."""
  # pylint: disable-next=g-import-not-at-top
  from tests.serving import test_saved_model_ops as ops_check
  config, _ = pipeline_run
  paths = [os.path.join(config.serving_dir, name, "1")
           for name in serving_layout.SERVED_MODELS]
  result = subprocess.run(
      [sys.executable, "-c", ops_check.CORE_OPS_CHECK, *paths],
      capture_output=True, text=True, timeout=300, check=False,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["imported"] == []
  for path in paths:
    assert report[path]["unregistered_ops"] == [], path
