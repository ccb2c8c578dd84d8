"""The blessing on real pipeline runs: what learned nothing or got worse is
refused and pushes nothing; an ordinary retrain is blessed and pushed.

The runs that start from the shared run's directory copy its metadata and
serving directory, so they find its model blessed and serving, and reuse
its finished components (ML Metadata caching) up to training.
"""
import dataclasses
import os
import shutil

import pytest

from contracts import serving_layout
from tests.fixtures import toy_serving
from tfx_pipeline import configs
from tfx_pipeline import run_report
from tfx_pipeline.runners import local

pytestmark = pytest.mark.e2e


def _run(config, *overrides):
  config = configs.with_overrides(config, overrides)
  local.run(config, enable_cache=True)
  report = run_report.latest_run(config.metadata_path)
  states = {name: c["state"] for name, c in report["components"].items()}
  assert set(states.values()) <= {"COMPLETE", "CACHED"}, states
  return config, report


def _beside_the_shared_run(pipeline_run, tmp_path):
  """A new output directory that already serves the shared run's model."""
  config, _ = pipeline_run
  copy = dataclasses.replace(config, output_dir=str(tmp_path / "output"))
  os.makedirs(copy.output_dir)
  shutil.copy(config.metadata_path, copy.metadata_path)
  shutil.copytree(config.serving_dir, copy.serving_dir)
  return copy


def _refusals(reason):
  """The comparisons a refused model failed (those before "; passes")."""
  return reason.split("; passes ")[0]


def test_a_first_run_that_cannot_learn_is_refused(pipeline_run, tmp_path):
  config, _ = pipeline_run
  fresh = dataclasses.replace(config, output_dir=str(tmp_path / "fresh"))
  fresh, report = _run(fresh, "model.learning_rate=0", "model.epochs=1")
  assert report["blessed"] is False and report["pushed"] is False
  evaluation = report["evaluation"]
  assert evaluation["baseline"] is None
  # Never updated, the towers score exactly what they scored at the start.
  assert evaluation["candidate"]["recall@100"] == pytest.approx(
      evaluation["initial"]["recall@100"], abs=1e-6)
  assert "against its initial weights" in _refusals(evaluation["reason"])
  assert toy_serving.served_versions(fresh.serving_dir) == {
      name: [] for name in serving_layout.SERVED_MODELS}
  summary = run_report.format_report(report)
  assert "Blessed: False (on the judgments file, recall@100" in summary
  assert "Nothing pushed" in summary


def test_a_worse_model_leaves_the_served_one_alone(pipeline_run, tmp_path):
  copy = _beside_the_shared_run(pipeline_run, tmp_path)
  # Untrained and without the teacher's start: towers from the teacher's
  # word vectors alone come close to the blessed model on the sample.
  copy, report = _run(copy, "model.learning_rate=0",
                      "model.pretrained_token_table=")
  components = report["components"]
  # Everything before training came from the shared run.
  assert components["MultiStageSamples"]["state"] == "CACHED"
  assert components["Trainer"]["state"] == "COMPLETE"
  evaluation = report["evaluation"]
  assert evaluation["baseline_model"] is not None
  assert report["blessed"] is False and report["pushed"] is False
  assert "against the last blessed model" in _refusals(evaluation["reason"])
  assert toy_serving.served_versions(copy.serving_dir) == {
      name: [1] for name in serving_layout.SERVED_MODELS}


def test_a_retrain_with_another_seed_is_blessed(pipeline_run, tmp_path):
  copy = _beside_the_shared_run(pipeline_run, tmp_path)
  copy, report = _run(copy, "model.seed=2")
  evaluation = report["evaluation"]
  assert report["blessed"] is True, evaluation["reason"]
  assert "against the last blessed model" in evaluation["reason"]
  assert report["pushed"] is True and report["pushed_version"] == "2"
  assert toy_serving.served_versions(copy.serving_dir) == {
      name: [1, 2] for name in serving_layout.SERVED_MODELS}
