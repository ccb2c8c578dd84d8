"""IndexBuilder: the cleaned catalogue embedded once, `retrieval` + index."""
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import types
from tfx.types import standard_artifacts

from components import artifacts
from components.index_builder import component
from components.index_builder import executor
from components.index_builder import spec
from contracts import config_io
from contracts import serving_layout
from retrieval import ann
from retrieval import embedding
from retrieval.config import IndexConfig
from tests.fixtures import toy_towers

# Item 3 twice: the policy keeps the smaller row ("garden hose") and sets the
# other aside, so the index holds each id once.
CATALOG_CSV = """item_id,title,brand
SKU-001,cordless drill,dewalt
SKU-002,drill bit set,
SKU-003,zzz garden hose,
SKU-003,garden hose,
SKU-004,hose reel,suncast
SKU-005,wood screws,
"""
ITEM_IDS = ["SKU-001", "SKU-002", "SKU-003", "SKU-004", "SKU-005"]
CONFIG = IndexConfig(kind="scann", k=3, batch_size=2)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """Runs the executor once: (model uri, index artifact)."""
  root = tmp_path_factory.mktemp("index_builder")
  model = standard_artifacts.Model()
  model.uri = str(root / "model")
  toy_towers.save_towers(os.path.join(model.uri, "Format-Serving"))
  catalog = artifacts.Catalog()
  catalog.uri = str(root / "catalog")
  os.makedirs(catalog.uri)
  with open(os.path.join(catalog.uri, artifacts.CATALOG_FILE), "w") as f:
    f.write(CATALOG_CSV)
  index = artifacts.RetrievalIndex()
  index.uri = str(root / "index")
  executor.Executor().Do(
      {spec.MODEL_KEY: [model], spec.CATALOG_KEY: [catalog]},
      {spec.INDEX_KEY: [index]}, config_io.to_parameters(CONFIG))
  return model.uri, index


def _index_dir(index):
  return serving_layout.index_dir(
      serving_layout.indexed_retrieval_dir(index.uri))


def test_index_holds_each_catalogue_item_once(built):
  model_uri, index = built
  loaded = ann.load(_index_dir(index))
  assert loaded.index.item_ids.tolist() == ITEM_IDS
  assert loaded.titles[2] == b"garden hose"
  assert loaded.meta["kind"] == "scann" and loaded.k == 3
  assert loaded.query_tower_fingerprint == ann.saved_model_fingerprint(
      serving_layout.trained_tower_dir(model_uri, serving_layout.QUERY_TOWER))
  assert index.get_int_custom_property(spec.NUM_ITEMS_PROPERTY) == 5
  assert index.get_int_custom_property(spec.SET_ASIDE_PROPERTY) == 1
  assert index.get_int_custom_property(spec.K_PROPERTY) == 3
  assert index.get_int_custom_property(
      spec.EMBEDDING_DIM_PROPERTY) == toy_towers.DIM
  assert index.get_string_custom_property(spec.INDEX_KIND_PROPERTY) == "scann"
  # Nothing but the served model is left in the artifact.
  assert os.listdir(index.uri) == [serving_layout.RETRIEVAL]


def test_beam_shards_come_back_in_catalogue_order(built):
  model_uri, index = built
  item_tower = embedding.load_signature(serving_layout.trained_tower_dir(
      model_uri, serving_layout.ITEM_TOWER))
  titles = ["cordless drill", "drill bit set", "garden hose", "hose reel",
            "wood screws"]
  expected = embedding.embed_catalog(item_tower, {
      "item_id": np.asarray(ITEM_IDS, dtype=object),
      "title": np.asarray(titles, dtype=object),
  })
  np.testing.assert_allclose(ann.load(_index_dir(index)).index.embeddings,
                             expected, atol=1e-6)


def test_retrieval_model_answers_from_the_catalogue(built):
  _, index = built
  retrieval = tf.saved_model.load(
      serving_layout.indexed_retrieval_dir(index.uri)).signatures[
          serving_layout.SERVING_SIGNATURE]
  result = retrieval(**{
      serving_layout.QUERY_INPUT: tf.constant(["garden hose"])})
  assert result[serving_layout.ITEM_IDS_OUTPUT].numpy().tolist()[0][:2] == [
      b"SKU-003", b"SKU-004"]
  assert result[serving_layout.SCORES_OUTPUT].shape == (1, 3)


class TestComponent:

  def _channels(self):
    return dict(model=types.Channel(type=standard_artifacts.Model),
                catalog=types.Channel(type=artifacts.Catalog))

  def test_parameters_from_index_config(self):
    builder = component.IndexBuilder(**self._channels(), config=CONFIG)
    assert builder.exec_properties == {"kind": "scann", "k": 3,
                                       "batch_size": 2}
    assert config_io.from_parameters(IndexConfig,
                                     builder.exec_properties) == CONFIG
    assert builder.outputs["index"].type_name == "mmse.RetrievalIndex"

  def test_defaults_without_a_config(self):
    builder = component.IndexBuilder(**self._channels())
    assert config_io.from_parameters(
        IndexConfig, builder.exec_properties) == IndexConfig()

  def test_unknown_kind_fails_at_construction(self):
    with pytest.raises(ValueError, match="Unknown index kind 'annoy'"):
      component.IndexBuilder(**self._channels(),
                             config=IndexConfig(kind="annoy"))
