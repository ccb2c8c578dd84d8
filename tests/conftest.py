"""Shared pytest setup: Keras 2 for TFRS, quiet TensorFlow logs."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="session")
def serving_dir(tmp_path_factory):
  """Towers version 1 and `retrieval` version 2 (ScaNN, top-3) of the toy
  TITLES, for tests that only read it."""
  from tests.fixtures import toy_serving  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("serving")
  catalog = toy_serving.write_catalog(root / "catalog.csv")
  directory = str(root / "serving")
  toy_serving.write_serving_dir(directory, catalog, kind="scann")
  return directory


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
  """(config, data_dir) of the one pipeline run the end-to-end tests share
  (tests/fixtures/pipeline_run.py)."""
  from tests.fixtures import pipeline_run as run  # pylint: disable=g-import-not-at-top
  return run.run(str(tmp_path_factory.mktemp("e2e")))
