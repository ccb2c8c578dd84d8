"""Shared pytest setup: Keras 2 for TFRS, quiet TensorFlow logs."""
import os
import pathlib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "homedepot"


@pytest.fixture
def homedepot_dir():
  """The benchmark data beside the checkout; tests needing it skip without it."""
  if not (SHARED_DATA / "catalog.csv").exists():
    pytest.skip("../shared/data/homedepot is not available")
  return SHARED_DATA
