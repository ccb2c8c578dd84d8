"""`mmse index`: a new `retrieval` version for a changed catalogue."""
import json
import os

import numpy as np
import pytest

from contracts import serving_layout
from retrieval import ann
from serving import indexing
from tests.fixtures import toy_serving


@pytest.fixture
def towers_dir(tmp_path):
  directory = str(tmp_path / "serving")
  toy_serving.write_towers(directory, version=3, dim=8, buckets=64)
  return directory


def test_build_index_writes_a_complete_new_version(towers_dir, tmp_path,
                                                   caplog):
  catalog = toy_serving.write_catalog(tmp_path / "catalog.csv")
  # A second row for an item is set aside with a warning, not an error.
  with open(catalog, "a", encoding="utf-8") as f:
    f.write("0100,zzz cordless drill\n")
  assert indexing.build_index(towers_dir, catalog, kind="scann", k=50) == 4
  assert "set aside {'duplicate_item_id': 1}" in caplog.text
  retrieval = os.path.join(towers_dir, "retrieval")
  assert sorted(os.listdir(retrieval)) == ["4"]  # No staging dir left.
  index_dir = serving_layout.index_dir(os.path.join(retrieval, "4"))
  with open(os.path.join(index_dir, ann.META_FILE)) as f:
    meta = json.load(f)
  assert meta["kind"] == "scann" and meta["num_items"] == 8
  assert meta["k"] == 8  # Capped at the catalogue size.
  assert meta["query_tower_fingerprint"] == ann.saved_model_fingerprint(
      os.path.join(towers_dir, "query_tower", "3"))
  loaded = ann.load(index_dir)
  assert loaded.index.item_ids.tolist() == sorted(toy_serving.TITLES)
  assert loaded.titles[0] == b"cordless drill"
  norms = np.linalg.norm(loaded.index.embeddings, axis=1)
  np.testing.assert_allclose(norms, 1.0, atol=1e-5)
  # The next one is numbered after every model's versions, as the pusher.
  assert indexing.build_index(towers_dir, catalog, kind="exact", k=2) == 5


def test_bad_catalogue_leaves_nothing_behind(towers_dir, tmp_path):
  bad = tmp_path / "bad.csv"
  bad.write_text("item_id,name\n1,drill\n")
  with pytest.raises(ValueError, match="lacks the columns"):
    indexing.build_index(towers_dir, str(bad))
  assert not os.path.exists(os.path.join(towers_dir, "retrieval"))


def test_a_failed_build_removes_the_staging_dir(towers_dir, tmp_path):
  catalog = toy_serving.write_catalog(tmp_path / "catalog.csv")
  with pytest.raises(ValueError, match="Unknown index kind"):
    indexing.build_index(towers_dir, catalog, kind="annoy")
  # Fails after the exact model was exported into the staging dir.
  with pytest.raises(ValueError, match="Unknown faiss params"):
    indexing.build_index(towers_dir, catalog, params={"leaves": 3})
  assert os.listdir(os.path.join(towers_dir, "retrieval")) == []


def test_missing_item_tower(tmp_path):
  catalog = toy_serving.write_catalog(tmp_path / "catalog.csv")
  with pytest.raises(FileNotFoundError, match="item_tower"):
    indexing.build_index(str(tmp_path), catalog)
