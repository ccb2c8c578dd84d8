"""Fixtures of the pipeline tests; the shared pipeline run is in
tests/conftest.py (`pipeline_run`)."""
import logging

from absl import logging as absl_logging
import pytest


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
