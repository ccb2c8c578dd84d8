"""The quality benchmark's trained systems against the shared pipeline run:
the benchmark lays out its work directory as the run does, so every
component of its `mmse` system is the run's, from the cache."""
import os

import numpy as np
import pytest

from bench import quality
from contracts import catalog as catalog_lib
from tests.fixtures import pipeline_run as shared_run
from tfx_pipeline import run_report


def test_the_benchmark_lays_out_its_work_dir_as_the_shared_run():
  assert quality.PIPELINE_DIR == shared_run.PIPELINE_DIR


@pytest.mark.e2e
def test_benchmark_ranks_with_the_towers_its_pipeline_run_trained(
    pipeline_run):
  config, data_dir = pipeline_run
  work_dir = os.path.dirname(config.output_dir)

  class Context:  # What `quality.Context` gives a trained system.
    logs_pattern = config.logs_pattern
    catalog_path = config.catalog_path
    catalog = catalog_lib.read_catalog(config.catalog_path)
    queries = ["cordless drill", "led light bulb"]
    depth = 20
    cache_dir = os.path.join(work_dir, "cache")
    seeds = [1]  # The shipped seed: the run above.

  Context.work_dir = work_dir
  overrides = shared_run.e2e_overrides(data_dir)
  assert quality.pipeline_config(Context, overrides) == config
  run = quality._trained(overrides)(Context)  # Every component cached.
  report = run_report.latest_run(config.metadata_path)
  assert report["components"]["Trainer"]["state"] == "CACHED"
  assert sorted(run.rankings) == sorted(Context.queries)
  assert all(len(r) == 20 for r in run.rankings.values())
  assert set(np.concatenate(list(run.rankings.values()))) <= set(
      Context.catalog.item_ids.tolist())
  # The time of the execution that trained the model, not the cache hit's.
  assert run.train_seconds == report["train_seconds"] > 0
