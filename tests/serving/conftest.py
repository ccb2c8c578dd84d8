"""A toy serving directory shared by the tests that only read it."""
import pytest

from tests.fixtures import toy_serving


@pytest.fixture(scope="package")
def serving_dir(tmp_path_factory):
  """Towers version 1 and `retrieval` version 2 (ScaNN, top-3) of TITLES."""
  root = tmp_path_factory.mktemp("serving")
  catalog = toy_serving.write_catalog(root / "catalog.csv")
  directory = str(root / "serving")
  toy_serving.write_serving_dir(directory, catalog, kind="scann")
  return directory
