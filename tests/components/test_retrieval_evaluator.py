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

from components.retrieval_evaluator import component
from components.retrieval_evaluator import executor
from tfx_pipeline import configs
import toy_towers  # tests/ is on sys.path under pytest (no __init__.py).

CATALOG = {
    "train": [(1, "cordless drill", "dewalt"), (2, "drill bit set", None),
              (3, "garden hose", None), (4, "hose reel", "suncast"),
              (5, "wood screws", None)],
    "eval": [(6, "paint brush", "purdy"), (7, "led bulb", None),
             (8, "door hinge", None)],
}
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
# The upside-down model ranks five unrelated items first for both queries.
BAD_METRICS = dict(
    GOOD_METRICS, **{
        name: 0.0 for name in GOOD_METRICS
        if "@" in name
    })


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


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory):
  """Slates, catalogue and two trained models, built once for the module."""
  root = tmp_path_factory.mktemp("artifacts")
  for split, slates in SLATES.items():
    _write_split(str(root / "slates"), split, [{
        "query": _bytes([query.encode()]),
        "item_id": _ints(ids),
        "title": _bytes([b""] * len(ids)),
        "stage": _ints(stages),
    } for query, ids, stages in slates])
  for split, rows in CATALOG.items():
    # A missing brand is an absent feature, as CsvExampleGen writes it.
    _write_split(str(root / "catalog"), split, [
        dict({"item_id": _ints([i]), "title": _bytes([t.encode()])},
             **({"brand": _bytes([b.encode()])} if b else {}))
        for i, t, b in rows
    ])
  toy_towers.save_towers(str(root / "good" / "Format-Serving"))
  toy_towers.save_towers(str(root / "bad" / "Format-Serving"), query_sign=-1)
  return root


def _model(artifacts_dir, name, model_id):
  model = standard_artifacts.Model()
  model.uri = str(artifacts_dir / name)
  model.id = model_id
  return model


def _run(artifacts_dir, tmp_path, model, baseline=None, **config):
  """Runs the executor; returns (metrics.json, evaluation, blessing)."""
  evaluation = component.RetrievalEvaluation()
  evaluation.uri = str(tmp_path / "evaluation")
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / "blessing")
  input_dict = {
      executor.MODEL_KEY: [model],
      executor.EXAMPLES_KEY: [
          _examples_artifact(str(artifacts_dir / "slates"), ["train", "eval"])
      ],
      executor.CATALOG_KEY: [
          _examples_artifact(str(artifacts_dir / "catalog"), ["train", "eval"])
      ],
  }
  if baseline is not None:
    input_dict[executor.BASELINE_MODEL_KEY] = [baseline]
  exec_properties = {
      executor.CUTOFFS_KEY: "[1, 3]",
      executor.BLESSING_METRIC_KEY: "recall@3",
      executor.MIN_BLESSING_VALUE_KEY: 0.5,
      executor.MAX_REGRESSION_KEY: 0.0,
  }
  exec_properties.update(config)
  executor.Executor().Do(input_dict, {
      executor.EVALUATION_KEY: [evaluation],
      executor.BLESSING_KEY: [blessing],
  }, exec_properties)
  with open(os.path.join(evaluation.uri, executor.METRICS_FILE)) as f:
    report = json.load(f)
  return report, evaluation, blessing


def _blessing_files(blessing):
  return sorted(os.listdir(blessing.uri))


class TestExecutor:

  def test_blessed_without_baseline(self, artifacts_dir, tmp_path):
    model = _model(artifacts_dir, "good", 11)
    report, evaluation, blessing = _run(artifacts_dir, tmp_path, model)
    assert report["candidate"] == pytest.approx(GOOD_METRICS)
    assert report["baseline"] is None and report["blessed"]
    assert report["eval_queries"] == 2 and report["catalog_items"] == 8
    assert evaluation.get_float_custom_property("recall@3") == 1.0
    assert evaluation.get_int_custom_property("queries") == 2
    assert _blessing_files(blessing) == ["BLESSED"]
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("current_model_id") == 11
    assert blessing.get_string_custom_property("current_model") == model.uri
    assert not blessing.has_custom_property("baseline_model_id")
    assert model_utils.is_model_blessed(blessing)  # What the Pusher checks.

  def test_not_blessed_below_floor(self, artifacts_dir, tmp_path):
    report, _, blessing = _run(artifacts_dir, tmp_path,
                               _model(artifacts_dir, "bad", 12))
    assert report["candidate"] == pytest.approx(BAD_METRICS)
    assert not report["blessed"] and "below the floor" in report["reason"]
    assert _blessing_files(blessing) == ["NOT_BLESSED"]
    assert blessing.get_int_custom_property("blessed") == 0
    assert not model_utils.is_model_blessed(blessing)

  def test_not_blessed_on_regression_from_baseline(self, artifacts_dir,
                                                   tmp_path):
    baseline = _model(artifacts_dir, "good", 11)
    report, _, blessing = _run(
        artifacts_dir, tmp_path, _model(artifacts_dir, "bad", 12), baseline,
        **{executor.MIN_BLESSING_VALUE_KEY: 0.0,
           executor.MAX_REGRESSION_KEY: 0.5})
    assert report["baseline"] == pytest.approx(GOOD_METRICS)
    assert not report["blessed"] and "regresses" in report["reason"]
    assert _blessing_files(blessing) == ["NOT_BLESSED"]
    assert blessing.get_int_custom_property("baseline_model_id") == 11
    assert blessing.get_string_custom_property(
        "baseline_model") == baseline.uri

  def test_latest_blessed_model_strategy_accepts_the_blessing(
      self, artifacts_dir, tmp_path):
    baseline = _model(artifacts_dir, "bad", 12)
    candidate = _model(artifacts_dir, "good", 13)
    report, _, blessing = _run(artifacts_dir, tmp_path, candidate, baseline,
                               **{executor.MIN_BLESSING_VALUE_KEY: 0.0})
    assert report["blessed"] and "baseline" in report["reason"]
    rejected = standard_artifacts.ModelBlessing()
    rejected.set_int_custom_property("current_model_id", 12)
    rejected.set_int_custom_property("blessed", 0)
    resolved = latest_blessed_model_strategy.LatestBlessedModelStrategy(
    )._resolve({
        "model": [baseline, candidate],
        "blessing": [rejected, blessing]
    }, "model", "blessing")
    assert [m.id for m in resolved["model"]] == [13]

  def test_examples_without_eval_split_are_an_error(self, artifacts_dir,
                                                    tmp_path):
    model = _model(artifacts_dir, "good", 11)
    examples = _examples_artifact(str(artifacts_dir / "slates"), ["train"])
    with pytest.raises(ValueError, match="needs 'eval'"):
      executor.Executor().Do(
          {
              executor.MODEL_KEY: [model],
              executor.EXAMPLES_KEY: [examples],
              executor.CATALOG_KEY: [examples],
          }, {
              executor.EVALUATION_KEY: [component.RetrievalEvaluation()],
              executor.BLESSING_KEY: [standard_artifacts.ModelBlessing()],
          }, {
              executor.CUTOFFS_KEY: "[1]",
              executor.BLESSING_METRIC_KEY: "recall@1",
              executor.MIN_BLESSING_VALUE_KEY: 0.0,
              executor.MAX_REGRESSION_KEY: 0.0,
          })


class TestBlessingDecision:

  @pytest.mark.parametrize("candidate,baseline,blessed", [
      (0.48, None, True),
      (0.04, None, False),  # Below the floor of 0.05.
      (0.48, 0.50, True),  # Within the allowed regression of 0.03.
      (0.46, 0.50, False),
      (0.04, 0.01, False),  # Beats the baseline, still below the floor.
  ])
  def test_floor_and_regression(self, candidate, baseline, blessed):
    config = configs.EvalConfig(min_blessing_value=0.05, max_regression=0.03)
    decision, _ = executor.blessing_decision(
        config, {"recall@100": candidate},
        None if baseline is None else {"recall@100": baseline})
    assert decision == blessed


class TestComponent:

  def _channels(self):
    return dict(
        model=types.Channel(type=standard_artifacts.Model),
        examples=types.Channel(type=standard_artifacts.Examples),
        catalog=types.Channel(type=standard_artifacts.Examples))

  def test_parameters_from_eval_config(self):
    config = configs.EvalConfig(cutoffs=(5, 50), blessing_metric="ndcg@5")
    evaluator = component.RetrievalEvaluator(
        **self._channels(), **dataclasses.asdict(config))
    assert evaluator.exec_properties == {
        "cutoffs": "[5, 50]",
        "blessing_metric": "ndcg@5",
        "min_blessing_value": 0.05,
        "max_regression": 0.0,
    }
    assert (evaluator.outputs["blessing"].type ==
            standard_artifacts.ModelBlessing)
    assert evaluator.outputs["evaluation"].type_name == "mmse.RetrievalEvaluation"

  def test_unknown_blessing_metric_fails_at_construction(self):
    with pytest.raises(ValueError, match="recall@1000"):
      component.RetrievalEvaluator(**self._channels(),
                                   blessing_metric="recall@1000",
                                   cutoffs=(10, 100))
