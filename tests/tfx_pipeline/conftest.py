"""One real pipeline run, shared by every end-to-end test of the session.

Running the pipeline takes minutes, so the end-to-end tests and the report
tests read the same run: the embedded sample, as `mmse run` makes it, with
its item ids rewritten as retailers write them (SKUs, leading zeros,
unicode), so the whole chain carries ids as text. (`make flink-test` runs
the sample's numeric ids.)
"""
import logging
import os

from absl import logging as absl_logging
import pytest

from bench import quality
from contracts import catalog as catalog_lib
from sample_data import simulator
from tests.fixtures import string_ids
from tfx_pipeline import configs
from tfx_pipeline.runners import local

# The embedded sample as `mmse run` trains it; a top-50 index is enough.
E2E_OVERRIDES = (*configs.SAMPLE_OVERRIDES, "index.k=50")


def e2e_overrides(data_dir: str):
  """The run's overrides: blessed on the sample's judgments, as `mmse run`."""
  return (*E2E_OVERRIDES, "evaluation.judgments_path="
          f"{os.path.join(data_dir, 'judgments.csv')}")


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
  root = tmp_path_factory.mktemp("e2e")
  data_dir = str(root / "data")
  simulator.simulate(data_dir)
  string_ids.rewrite(data_dir)
  # Real catalogues carry dirt: a second row for an item, a row without an
  # id, an id longer than any SKU (a shifted column) and one holding a tab.
  # Each is set aside, and everything downstream still runs.
  catalog_csv = os.path.join(data_dir, "catalog.csv")
  duplicated = catalog_lib.read_catalog(catalog_csv).item_ids[0]
  with open(catalog_csv, "a", encoding="utf-8") as f:
    f.write(f"{duplicated},Zzz duplicate row,,,1.0\n,No id here,,,2.0\n"
            f"{'X' * 300},Id too long,,,3.0\n\"SKU\t7\",Tab in its id,,,4.0\n")
  # Laid out as the quality benchmark lays out its work dir, so that its
  # trained systems can be checked against this run.
  work_dir = root / "work"
  config = configs.PipelineConfig(
      logs_pattern=os.path.join(data_dir, "logs", "*.csv.gz"),
      catalog_path=os.path.join(data_dir, "catalog.csv"),
      output_dir=str(work_dir / quality.PIPELINE_DIR),
      cache_dir=str(work_dir / "cache"))
  config = configs.with_overrides(config, e2e_overrides(data_dir))
  local.run(config, enable_cache=True)
  return config, data_dir


@pytest.fixture
def logging_restored():
  """Puts logging back as it was (setup_logging replaces handlers)."""
  root = logging.getLogger()
  handlers, level = root.handlers[:], root.level
  absl_verbosity = absl_logging.get_verbosity()
  yield
  for handler in root.handlers:
    handler.close()
  root.handlers[:] = handlers
  root.setLevel(level)
  absl_logging.set_verbosity(absl_verbosity)
  logging.captureWarnings(False)
