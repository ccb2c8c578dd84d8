"""Embedding catalogue columns and queries with exported towers."""
import numpy as np
import pytest

from contracts import catalog as catalog_lib
from retrieval import embedding
from tests.fixtures import toy_towers

# Eight items; a bag-of-words model scores a query by shared words.
CATALOG_ROWS = [
    (1, "cordless drill", "dewalt", 99.0),
    (2, "drill bit set", "bosch", 19.5),
    (3, "garden hose", "", 25.0),
    (4, "hose reel", "suncast", 40.0),
    (5, "wood screws", "", 6.0),
    (6, "paint brush", "purdy", 8.0),
    (7, "led bulb", "cree", 4.5),
    (8, "door hinge", "", 3.0),
]


def catalog() -> catalog_lib.Catalog:
  builder = catalog_lib.CatalogBuilder()
  for item_id, title, brand, price in CATALOG_ROWS:
    builder.add_row({"item_id": str(item_id), "title": title, "brand": brand,
                     "price": str(price)})
  return builder.build()


def test_embeds_declared_inputs_only(tmp_path):
  toy_towers.save_item_tower(str(tmp_path / "item"))
  toy_towers.save_query_tower(str(tmp_path / "query"))
  item_tower = embedding.load_signature(str(tmp_path / "item"))
  query_tower = embedding.load_signature(str(tmp_path / "query"))
  # The catalogue's brand and price are not fed: the tower does not declare
  # them. Batches of 3 do not divide the 8 rows.
  items = embedding.embed_catalog(item_tower, catalog().columns, batch_size=3)
  queries = embedding.embed_queries(query_tower, ["Cordless DRILL"])
  assert items.shape == (8, toy_towers.DIM) and items.dtype == np.float32
  np.testing.assert_allclose(queries @ items.T, [[2, 1, 0, 0, 0, 0, 0, 0]],
                             atol=1e-6)


def test_catalog_missing_a_declared_input_is_an_error(tmp_path):
  toy_towers.save_item_tower(str(tmp_path / "item"), with_brand=True)
  columns = dict(catalog().columns)
  del columns["brand"]
  with pytest.raises(ValueError, match=r"lacks \['brand'\]"):
    embedding.embed_catalog(
        embedding.load_signature(str(tmp_path / "item")), columns)


def test_rank_catalog_returns_item_ids(tmp_path):
  toy_towers.save_towers(str(tmp_path))
  ranked = embedding.rank_catalog(
      embedding.load_signature(str(tmp_path / "query_tower")),
      embedding.load_signature(str(tmp_path / "item_tower")),
      catalog(), ["garden hose"], k=2)
  assert ranked["garden hose"].tolist() == ["3", "4"]
