"""RetrievalEvaluator on hand-built artifacts: metrics, blessing, resolver."""
import dataclasses
import json
import math
import os

import pytest
import tensorflow as tf
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.input_resolution.strategies import latest_blessed_model_strategy
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components import artifacts
from components.data_gate import spec as gate_spec
from components.multistage_samples import spec as mining_spec
from components.retrieval_evaluator import component
from components.retrieval_evaluator import executor
from components.retrieval_evaluator import spec
from contracts import catalog as catalog_lib
from contracts import config_io
from contracts import serving_layout
from evaluation.config import EvalConfig
from mining import report as mining_report
from mining.config import MiningConfig
from retrieval import ann
from retrieval import embedding
from tests.fixtures import toy_towers

# (item_id, title, brand); a missing brand is an empty cell.
CATALOG = [(1, "cordless drill", "dewalt"), (2, "drill bit set", None),
           (3, "garden hose", None), (4, "hose reel", "suncast"),
           (5, "wood screws", None), (6, "paint brush", "purdy"),
           (7, "led bulb", None), (8, "door hinge", None)]
# Slates of 5: (query, item ids, stages). Eval judgments: "cordless drill"
# {1: ordered, 2: clicked (its best stage over two slates)}, "garden hose"
# {4: clicked}; item 3 was shown unclicked, so it is unjudged.
SLATES = {
    "eval": [
        ("cordless drill", [1, 2, 5, 7, 0], [3, 2, 1, 0, -1]),
        ("cordless drill", [2, 5, 8, 6, 0], [2, 1, 0, 0, -1]),
        ("garden hose", [4, 3, 6, 7, 8], [2, 1, 0, 0, 0]),
    ],
    "train": [("paint brush", [6, 7, 8, 0, 0], [3, 0, 0, -1, -1])],
}
# The bag-of-words model ranks "cordless drill": 1, 2, ...; "garden hose":
# 3, 4, ... Cutoffs 1 and 3.
GOOD_METRICS = {
    "recall@1": (0.5 + 0.0) / 2,
    "recall@3": 1.0,
    "ndcg@1": (1.0 + 0.0) / 2,
    # Gains 2.0 (ordered) and 1.5 (clicked): "cordless drill" is ideal.
    "ndcg@3": (1.0 + (1.5 / math.log2(3)) / 1.5) / 2,
    "recall_ordered@1": 1.0,
    "recall_ordered@3": 1.0,
    "ordered_queries": 1,
    "recall_clicked@1": 0.0,
    "recall_clicked@3": 1.0,
    "clicked_queries": 2,
    "queries": 2,
    "recall_queries": 2,
}
# The index is exact search: it finds what exact search finds.
GOOD_METRICS.update({
    f"exact_{name}@{k}": GOOD_METRICS[f"{name}@{k}"]
    for name in ("recall", "ndcg") for k in (1, 3)
})
GOOD_METRICS.update({"index_recall@1": 1.0, "index_recall@3": 1.0})
# The upside-down model ranks five unrelated items first for both queries.
BAD_METRICS = dict(
    GOOD_METRICS, **{
        name: 0.0 for name in GOOD_METRICS
        if "@" in name and not name.startswith("index_recall")
    })
# Popularity ranks item 6 (ordered in the one train slate) first, for every
# query: it finds none of the eval split's relevant items.
POPULARITY_METRICS = dict(BAD_METRICS)
del POPULARITY_METRICS["index_recall@1"], POPULARITY_METRICS["index_recall@3"]
CONFIG = EvalConfig(cutoffs=(1, 3), blessing_metric="recall@3",
                    min_gain_over_popularity=0.5, min_gain_over_initial=0.1,
                    max_regression=0.0)


def _bytes(value):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=value))


def _ints(value):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=value))


def _write_split(uri, split, examples):
  os.makedirs(os.path.join(uri, f"Split-{split}"))
  path = os.path.join(uri, f"Split-{split}", "data_tfrecord-00000.gz")
  with tf.io.TFRecordWriter(path, options="GZIP") as writer:
    for feature in examples:
      writer.write(
          tf.train.Example(features=tf.train.Features(
              feature=feature)).SerializeToString())


def _examples_artifact(uri, splits):
  artifact = standard_artifacts.Examples()
  artifact.uri = uri
  artifact.split_names = artifact_utils.encode_split_names(list(splits))
  return artifact


def _write_catalog(uri, rows):
  builder = catalog_lib.CatalogBuilder()
  for item_id, title, brand in rows:
    builder.add_row({"item_id": item_id, "title": title, "brand": brand})
  os.makedirs(uri)
  catalog = builder.build()
  catalog_lib.write_catalog(catalog, os.path.join(uri, artifacts.CATALOG_FILE))
  return catalog


def _write_index(model_uri, index_uri, catalog):
  """What IndexBuilder leaves for the evaluator: an exact index."""
  item_tower = embedding.load_signature(serving_layout.trained_tower_dir(
      model_uri, serving_layout.ITEM_TOWER))
  ann.write_index(
      serving_layout.index_dir(serving_layout.indexed_retrieval_dir(
          index_uri)),
      catalog.item_ids, embedding.embed_catalog(item_tower, catalog.columns),
      k=3, kind="exact",
      query_tower_dir=serving_layout.trained_tower_dir(
          model_uri, serving_layout.QUERY_TOWER))


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory):
  """Slates, catalogue, two trained models and their indexes, built once."""
  root = tmp_path_factory.mktemp("artifacts")
  for split, slates in SLATES.items():
    _write_split(str(root / "slates"), split, [{
        "query": _bytes([query.encode()]),
        "item_id": _bytes([str(i).encode() for i in ids]),
        "title": _bytes([b""] * len(ids)),
        "stage": _ints(stages),
    } for query, ids, stages in slates])
  catalog = _write_catalog(str(root / "catalog"), CATALOG)
  _write_catalog(str(root / "other_catalog"), CATALOG[1:])
  # (trained, initial) towers: "good" learned, "bad" got worse, "untrained"
  # is as it started.
  for name, trained_sign, initial_sign in (("good", 1, -1), ("bad", -1, -1),
                                           ("untrained", 1, 1)):
    toy_towers.save_towers(str(root / name / "Format-Serving"),
                           query_sign=trained_sign)
    toy_towers.save_towers(serving_layout.initial_towers_dir(str(root / name)),
                           query_sign=initial_sign)
  for name in ("good", "bad", "untrained"):
    _write_index(str(root / name), str(root / f"{name}_index"), catalog)
  return root


def _model(artifacts_dir, name, model_id):
  model = standard_artifacts.Model()
  model.uri = str(artifacts_dir / name)
  model.id = model_id
  return model


def _artifact(cls, uri):
  artifact = cls()
  artifact.uri = str(uri)
  return artifact


def _run(artifacts_dir, tmp_path, model, baseline=None, index=None,
         catalog="catalog", extra_inputs=None, **config):
  """Runs the executor; returns (metrics.json, evaluation, blessing).

  The index is the model's own unless `index` names another.
  """
  evaluation = _artifact(artifacts.RetrievalEvaluation,
                         tmp_path / "evaluation")
  blessing = _artifact(standard_artifacts.ModelBlessing, tmp_path / "blessing")
  index_name = index or f"{os.path.basename(model.uri)}_index"
  input_dict = {
      spec.MODEL_KEY: [model],
      spec.INDEX_KEY: [_artifact(artifacts.RetrievalIndex,
                                 artifacts_dir / index_name)],
      spec.EXAMPLES_KEY: [
          _examples_artifact(str(artifacts_dir / "slates"), ["train", "eval"])
      ],
      spec.CATALOG_KEY: [_artifact(artifacts.Catalog, artifacts_dir / catalog)],
  }
  if baseline is not None:
    input_dict[spec.BASELINE_MODEL_KEY] = [baseline]
  input_dict.update(extra_inputs or {})
  exec_properties = config_io.to_parameters(
      dataclasses.replace(CONFIG, **config))
  executor.Executor().Do(input_dict, {
      spec.EVALUATION_KEY: [evaluation],
      spec.BLESSING_KEY: [blessing],
  }, exec_properties)
  with open(os.path.join(evaluation.uri, spec.METRICS_FILE)) as f:
    report = json.load(f)
  return report, evaluation, blessing


def _blessing_files(blessing):
  return sorted(os.listdir(blessing.uri))


class _WorstFirst(ann.ExactIndex):
  """An index that answers the worst items first, as a broken ANN might."""

  def _search_rows(self, queries, k):
    rows, scores = super()._search_rows(queries, self.size)
    return rows[:, ::-1][:, :k], scores[:, ::-1][:, :k]


class TestExecutor:

  def test_blessed_without_baseline(self, artifacts_dir, tmp_path):
    model = _model(artifacts_dir, "good", 11)
    report, evaluation, blessing = _run(artifacts_dir, tmp_path, model)
    assert report["candidate"] == pytest.approx(GOOD_METRICS, abs=1e-6)
    # The initial towers are searched the same way as the trained ones.
    assert report["initial"] == pytest.approx(BAD_METRICS, abs=1e-6)
    assert report["popularity"] == pytest.approx(POPULARITY_METRICS, abs=1e-6)
    assert report["judged_on"] == "eval_split"
    assert list(report["by_judgments"]) == ["eval_split"]
    assert report["baseline"] is None and report["blessed"]
    assert "no blessed model yet" in report["reason"]
    assert report["eval_queries"] == 2 and report["catalog_items"] == 8
    assert report["index_kind"] == "exact"
    assert evaluation.get_float_custom_property("recall@3") == pytest.approx(
        1.0, abs=1e-6)
    assert evaluation.get_float_custom_property(
        "index_recall@3") == pytest.approx(1.0, abs=1e-6)
    assert evaluation.get_int_custom_property("queries") == 2
    assert _blessing_files(blessing) == ["BLESSED"]
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("current_model_id") == 11
    assert blessing.get_string_custom_property("current_model") == model.uri
    assert not blessing.has_custom_property("baseline_model_id")
    assert model_utils.is_model_blessed(blessing)  # What the Pusher checks.

  def test_suspect_data_refuses_a_good_model(self, artifacts_dir, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    drifted = {"column": "query", "measure": "L-infinity", "value": 0.3,
               "threshold": 0.05, "exceeded": True}
    (gate / gate_spec.REPORT_FILE).write_text(json.dumps({
        "reported": {}, "compared_with": 4, "drift": [drifted],
        "drift_accepted": False, "max_set_aside_share": 0.05}))
    mined = tmp_path / "mining"
    mined.mkdir()
    counts = mining_report.report_from_counts(
        {"rows_read": 100, "rows_kept": 90, "set_aside/unknown_item": 10},
        MiningConfig())
    (mined / mining_spec.COUNTS_FILE).write_text(json.dumps(counts))
    inputs = {
        spec.DATA_REPORT_KEY: [_artifact(artifacts.DataGateReport, gate)],
        spec.MINING_REPORT_KEY: [_artifact(artifacts.MiningReport, mined)],
    }
    model = _model(artifacts_dir, "good", 11)
    report, _, blessing = _run(artifacts_dir, tmp_path, model,
                               extra_inputs=inputs)
    assert not report["blessed"]
    assert report["data_problems"] == [
        "drift against served version 4: query L-infinity 0.3000 (threshold "
        "0.0500)",
        "10.0% of the log rows were set aside (10 of 100: unknown_item 10), "
        "more than validation.max_set_aside_share 5.0%"]
    assert report["reason"].startswith("the data: drift against served ")
    # What the model alone would have got is still said.
    assert "; the model: on the eval split, recall@3 1.0000: " in (
        report["reason"])
    assert _blessing_files(blessing) == ["NOT_BLESSED"]

    (gate / gate_spec.REPORT_FILE).write_text(json.dumps({
        "reported": {}, "compared_with": 4, "drift": [drifted],
        "drift_accepted": True, "max_set_aside_share": 0.05}))
    (mined / mining_spec.COUNTS_FILE).write_text(json.dumps(
        mining_report.report_from_counts(
            {"rows_read": 100, "rows_kept": 95, "set_aside/unknown_item": 5},
            MiningConfig())))
    report, _, _ = _run(artifacts_dir, tmp_path, model, extra_inputs=inputs)
    assert report["blessed"] and report["data_problems"] == []
    assert report["reason"].startswith(
        "the data: accepted for this run: drift against served version 4: "
        "query L-infinity 0.3000")

  def test_log_rows_lost_before_mining_refuse_a_good_model(
      self, artifacts_dir, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    mined = tmp_path / "mining"
    mined.mkdir()
    (mined / mining_spec.COUNTS_FILE).write_text(json.dumps(
        mining_report.report_from_counts(
            {"rows_read": 97, "rows_kept": 97}, MiningConfig())))
    inputs = {
        spec.DATA_REPORT_KEY: [_artifact(artifacts.DataGateReport, gate)],
        spec.MINING_REPORT_KEY: [_artifact(artifacts.MiningReport, mined)],
    }
    model = _model(artifacts_dir, "good", 11)

    def run_with_logs_examples(logs_examples):
      (gate / gate_spec.REPORT_FILE).write_text(json.dumps({
          "reported": {}, "compared_with": None, "drift": [],
          "drift_accepted": False, "max_set_aside_share": 0.05,
          gate_spec.LOGS_EXAMPLES: logs_examples}))
      return _run(artifacts_dir, tmp_path, model, extra_inputs=inputs)

    report, _, blessing = run_with_logs_examples(100)
    assert not report["blessed"]
    [problem] = report["data_problems"]
    assert problem.startswith(
        "mining read 97 log rows but ExampleGen wrote 100: the Beam runner "
        "delivered 3 fewer records than were written")
    assert report["reason"].startswith("the data: mining read 97 log rows ")
    assert _blessing_files(blessing) == ["NOT_BLESSED"]

    report, _, blessing = run_with_logs_examples(97)
    assert report["blessed"] and report["data_problems"] == []
    assert blessing.get_int_custom_property("blessed") == 1

  def test_not_blessed_when_no_better_than_popularity(self, artifacts_dir,
                                                      tmp_path):
    report, _, blessing = _run(artifacts_dir, tmp_path,
                               _model(artifacts_dir, "bad", 12))
    assert report["candidate"] == pytest.approx(BAD_METRICS, abs=1e-6)
    assert not report["blessed"]
    assert "+0.0000 against the most popular items" in report["reason"]
    assert _blessing_files(blessing) == ["NOT_BLESSED"]
    assert blessing.get_int_custom_property("blessed") == 0
    assert not model_utils.is_model_blessed(blessing)

  def test_a_model_that_learned_nothing_is_not_blessed(self, artifacts_dir,
                                                        tmp_path):
    report, _, blessing = _run(artifacts_dir, tmp_path,
                               _model(artifacts_dir, "untrained", 14))
    assert report["candidate"] == pytest.approx(report["initial"], abs=1e-6)
    failed, passed = report["reason"].split("; passes ")
    assert "+0.0000 against its initial weights (1.0000; needs +0.1000)" in (
        failed)
    assert "most popular items" in passed
    assert not report["blessed"] and _blessing_files(blessing) == [
        "NOT_BLESSED"]

  def test_a_judgments_file_is_scored_and_blessed_on(self, artifacts_dir,
                                                     tmp_path):
    # Judged by a person, "garden hose" wants the paint brush (item 6):
    # the popular item, which the good model does not rank in its top 3.
    judgments = tmp_path / "judgments.csv"
    judgments.write_text("query,item_id,relevance\ngarden hose,6,3\n")
    report, evaluation, _ = _run(artifacts_dir, tmp_path,
                                 _model(artifacts_dir, "good", 11),
                                 judgments_path=str(judgments))
    assert report["judged_on"] == "judgments_file"
    logged = report["by_judgments"]["eval_split"]
    assert logged["candidate"] == pytest.approx(GOOD_METRICS, abs=1e-6)
    assert report["candidate"] == report["by_judgments"]["judgments_file"][
        "candidate"]
    assert report["candidate"]["recall@3"] == pytest.approx(0.0, abs=1e-6)
    assert report["popularity"]["recall@3"] == pytest.approx(1.0, abs=1e-6)
    assert evaluation.get_float_custom_property("recall@3") == pytest.approx(
        0.0, abs=1e-6)
    assert not report["blessed"]
    assert report["reason"].startswith("on the judgments file, recall@3")

  def test_an_empty_judgments_file_is_an_error(self, artifacts_dir, tmp_path):
    judgments = tmp_path / "judgments.csv"
    judgments.write_text("query,item_id,relevance\n")
    with pytest.raises(ValueError, match="judgments.csv: no judgments"):
      _run(artifacts_dir, tmp_path, _model(artifacts_dir, "good", 11),
           judgments_path=str(judgments))

  def test_blessing_follows_the_index_not_exact_search(
      self, artifacts_dir, tmp_path, monkeypatch):
    load = ann.load

    def load_broken(directory):
      loaded = load(directory)
      return ann.LoadedIndex(
          _WorstFirst(loaded.index.item_ids, loaded.index.embeddings, {}),
          loaded.meta, loaded.titles)

    monkeypatch.setattr(ann, "load", load_broken)
    report, _, blessing = _run(artifacts_dir, tmp_path,
                               _model(artifacts_dir, "good", 11))
    candidate = report["candidate"]
    assert candidate["exact_recall@3"] == pytest.approx(1.0, abs=1e-6)
    assert candidate["recall@3"] == pytest.approx(0.0, abs=1e-6)
    assert candidate["index_recall@3"] < 1.0
    assert not report["blessed"] and "recall@3 0.0000" in report["reason"]
    assert _blessing_files(blessing) == ["NOT_BLESSED"]

  def test_not_blessed_on_regression_from_baseline(self, artifacts_dir,
                                                   tmp_path):
    baseline = _model(artifacts_dir, "good", 11)
    report, _, blessing = _run(
        artifacts_dir, tmp_path, _model(artifacts_dir, "bad", 12), baseline,
        min_gain_over_popularity=0.0, min_gain_over_initial=0.0,
        max_regression=0.5)
    # The baseline, without an index of its own, is searched in an index of
    # the candidate's kind built over its item tower's embeddings.
    assert report["baseline"] == pytest.approx(GOOD_METRICS, abs=1e-6)
    assert not report["blessed"]
    assert "-1.0000 against the last blessed model (1.0000; needs -0.5000)" in (
        report["reason"])
    assert _blessing_files(blessing) == ["NOT_BLESSED"]
    assert blessing.get_int_custom_property("baseline_model_id") == 11
    assert blessing.get_string_custom_property(
        "baseline_model") == baseline.uri

  def test_latest_blessed_model_strategy_accepts_the_blessing(
      self, artifacts_dir, tmp_path):
    baseline = _model(artifacts_dir, "bad", 12)
    candidate = _model(artifacts_dir, "good", 13)
    report, _, blessing = _run(artifacts_dir, tmp_path, candidate, baseline)
    assert report["blessed"] and "last blessed model" in report["reason"]
    rejected = standard_artifacts.ModelBlessing()
    rejected.set_int_custom_property("current_model_id", 12)
    rejected.set_int_custom_property("blessed", 0)
    resolved = latest_blessed_model_strategy.LatestBlessedModelStrategy(
    )._resolve({
        "model": [baseline, candidate],
        "blessing": [rejected, blessing]
    }, "model", "blessing")
    assert [m.id for m in resolved["model"]] == [13]

  def test_an_index_of_another_model_is_an_error(self, artifacts_dir,
                                                 tmp_path):
    with pytest.raises(ValueError, match="not built for the query tower"):
      _run(artifacts_dir, tmp_path, _model(artifacts_dir, "good", 11),
           index="bad_index")

  def test_an_index_of_other_items_is_an_error(self, artifacts_dir, tmp_path):
    with pytest.raises(ValueError, match="other items than the catalogue"):
      _run(artifacts_dir, tmp_path, _model(artifacts_dir, "good", 11),
           catalog="other_catalog")

  def test_examples_without_eval_split_are_an_error(self, artifacts_dir,
                                                    tmp_path):
    model = _model(artifacts_dir, "good", 11)
    examples = _examples_artifact(str(artifacts_dir / "slates"), ["train"])
    with pytest.raises(ValueError, match="needs 'eval'"):
      executor.Executor().Do(
          {
              spec.MODEL_KEY: [model],
              spec.INDEX_KEY: [artifacts.RetrievalIndex()],
              spec.EXAMPLES_KEY: [examples],
              spec.CATALOG_KEY: [artifacts.Catalog()],
          }, {
              spec.EVALUATION_KEY: [artifacts.RetrievalEvaluation()],
              spec.BLESSING_KEY: [standard_artifacts.ModelBlessing()],
          }, config_io.to_parameters(EvalConfig(cutoffs=(1,),
                                                blessing_metric="recall@1")))


class TestComponent:

  def _channels(self):
    return dict(
        model=types.Channel(type=standard_artifacts.Model),
        index=types.Channel(type=artifacts.RetrievalIndex),
        examples=types.Channel(type=standard_artifacts.Examples),
        catalog=types.Channel(type=artifacts.Catalog))

  def test_parameters_from_eval_config(self):
    config = EvalConfig(cutoffs=(5, 50), blessing_metric="ndcg@5")
    evaluator = component.RetrievalEvaluator(**self._channels(), config=config)
    assert evaluator.exec_properties == {
        "cutoffs": "[5, 50]",
        "blessing_metric": "ndcg@5",
        "judgments_path": "",
        "min_gain_over_popularity": 0.05,
        "min_gain_over_initial": 0.01,
        "max_regression": 0.05,
    }
    assert (evaluator.outputs["blessing"].type ==
            standard_artifacts.ModelBlessing)
    assert evaluator.outputs["evaluation"].type_name == "mmse.RetrievalEvaluation"
    assert config_io.from_parameters(
        EvalConfig, evaluator.exec_properties) == config

  def test_defaults_without_a_config(self):
    evaluator = component.RetrievalEvaluator(**self._channels())
    assert config_io.from_parameters(
        EvalConfig, evaluator.exec_properties) == EvalConfig()

  def test_unknown_blessing_metric_fails_at_construction(self):
    with pytest.raises(ValueError, match="recall@1000"):
      component.RetrievalEvaluator(
          **self._channels(),
          config=EvalConfig(blessing_metric="recall@1000", cutoffs=(10, 100)))
