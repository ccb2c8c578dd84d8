"""The one catalogue reader and its policy for bad and duplicate rows."""
import gzip

import numpy as np
import pytest

from contracts import catalog as catalog_lib
from contracts import features


def _write(path, text):
  path.write_text(text, encoding="utf-8")
  return str(path)


def test_reads_columns_sorted_by_item_id(tmp_path):
  path = _write(tmp_path / "c.csv",
                "title,item_id,price,unused\nSaw,20,9.5,x\nDrill,10,,y\n")
  catalog = catalog_lib.read_catalog(path)
  assert catalog.item_ids.tolist() == ["10", "20"]
  assert catalog.titles.tolist() == ["Drill", "Saw"]
  assert catalog.side_features == ("price",)
  np.testing.assert_allclose(catalog.columns["price"], [0.0, 9.5], atol=1e-6)
  assert catalog.has_item("20") and not catalog.has_item("30")


def test_item_ids_are_opaque_strings(tmp_path):
  # Leading zeros, letters, dashes, spaces and unicode: each id as written,
  # sorted as text; ids equal only after normalisation stay apart.
  path = _write(tmp_path / "c.csv",
                "item_id,title\n0123,a\n123,b\nSKU-9,c\n123 ,d\nÜ-7,e\n"
                "B00X4WHP5E,f\n")
  catalog = catalog_lib.read_catalog(path)
  assert catalog.item_ids.tolist() == ["0123", "123", "123 ", "B00X4WHP5E",
                                       "SKU-9", "Ü-7"]
  assert catalog.titles.tolist() == ["a", "b", "d", "f", "c", "e"]
  assert not catalog.set_aside
  np.testing.assert_array_equal(
      catalog.indexes(np.array(["123", "Ü-7"])), [1, 5])


@pytest.mark.parametrize("value, expected", [
    ("SKU-1", ("SKU-1", None)),
    (b"0042", ("0042", None)),
    (42, ("42", None)),  # A caller's int stands for its digits.
    ("", (None, catalog_lib.MISSING_ITEM_ID)),
    (None, (None, catalog_lib.MISSING_ITEM_ID)),
    ("x" * 257, (None, catalog_lib.BAD_ITEM_ID)),
    ("é" * 129, (None, catalog_lib.BAD_ITEM_ID)),  # 258 bytes in UTF-8.
    ("a\tb", (None, catalog_lib.BAD_ITEM_ID)),
    ("a\x00", (None, catalog_lib.BAD_ITEM_ID)),
    (b"\xff", (None, catalog_lib.BAD_ITEM_ID)),
    (4.0, (None, catalog_lib.BAD_ITEM_ID)),
    (True, (None, catalog_lib.BAD_ITEM_ID)),
])
def test_parse_item_id(value, expected):
  assert catalog_lib.parse_item_id(value) == expected


def test_bad_ids_are_set_aside_with_their_reason():
  builder = catalog_lib.CatalogBuilder()
  for item_id in ("ok", "x" * 300, "tab\there", ""):
    builder.add_row({"item_id": item_id, "title": "t"})
  catalog = builder.build()
  assert catalog.item_ids.tolist() == ["ok"]
  assert catalog.counts[catalog_lib.BAD_ITEM_ID] == 2
  assert catalog.counts[catalog_lib.MISSING_ITEM_ID] == 1
  assert sorted(r[catalog_lib.REASON] for r in catalog.set_aside) == [
      "bad_item_id", "bad_item_id", "missing_item_id"]


def test_a_spreadsheet_export_reads_as_the_plain_file(tmp_path):
  plain = catalog_lib.read_catalog(_write(
      tmp_path / "plain.csv", "item_id,title\n10,Drill\n20,Saw\n"))
  # Excel's "CSV UTF-8": a byte-order mark and Windows line ends.
  excel = catalog_lib.read_catalog(_write(
      tmp_path / "excel.csv",
      "\ufeffitem_id,title\r\n10,Drill\r\n20,Saw\r\n"))
  np.testing.assert_array_equal(excel.item_ids, plain.item_ids)
  assert excel.titles.tolist() == plain.titles.tolist()


def test_duplicates_and_rows_without_id_are_set_aside(tmp_path):
  # The smallest row of an id wins, whichever comes first in the file.
  path = _write(tmp_path / "c.csv", "item_id,title\n7,Saw\n7,Drill\n,Glue\n"
                ",Tape\n8,\n")
  catalog = catalog_lib.read_catalog(path)
  assert catalog.item_ids.tolist() == ["7", "8"]
  assert catalog.titles.tolist() == ["Drill", ""]
  reasons = sorted(r[catalog_lib.REASON] for r in catalog.set_aside)
  assert reasons == ["duplicate_item_id", "missing_item_id",
                     "missing_item_id"]
  assert catalog.counts[catalog_lib.MISSING_TITLE] == 1
  assert catalog.counts["rows_read"] == 5 and catalog.counts["items"] == 2
  duplicate = [r for r in catalog.set_aside
               if r[catalog_lib.REASON] == "duplicate_item_id"][0]
  assert duplicate[features.TITLE] == "Saw"


def test_builders_merge_in_any_order_to_the_same_catalogue():
  rows = [{"item_id": 1, "title": "b"}, {"item_id": 1, "title": "a"},
          {"item_id": 2, "title": "c", "price": "oops"}]
  one, two = catalog_lib.CatalogBuilder(), catalog_lib.CatalogBuilder()
  one.add_row(rows[0])
  two.add_row(rows[1])
  two.add_row(rows[2])
  forward = catalog_lib.CatalogBuilder().merge(one).merge(two).build()
  backward = catalog_lib.CatalogBuilder().merge(two).merge(one).build()
  for merged in (forward, backward):
    assert merged.titles.tolist() == ["a", "c"]
    assert merged.counts[catalog_lib.DUPLICATE_ITEM_ID] == 1
    assert merged.counts["bad_price"] == 1
    assert merged.counts["rows_read"] == 3


def test_round_trip_and_gzip(tmp_path):
  path = _write(tmp_path / "c.csv",
                'item_id,title,brand\n3,"Saw, 12"" blade",Acme\n1,Drill,\n')
  catalog = catalog_lib.read_catalog(path)
  out = str(tmp_path / "out.csv")
  catalog_lib.write_catalog(catalog, out)
  again = catalog_lib.read_catalog(out)
  np.testing.assert_array_equal(again.item_ids, catalog.item_ids)
  assert again.titles.tolist() == ['Drill', 'Saw, 12" blade']
  assert again.columns["brand"].tolist() == ["", "Acme"]
  gz = tmp_path / "c.csv.gz"
  gz.write_bytes(gzip.compress((tmp_path / "c.csv").read_bytes()))
  assert catalog_lib.read_catalog(str(gz)).titles.tolist() == (
      catalog.titles.tolist())


def test_slot_values_fill_padding_with_defaults(tmp_path):
  catalog = catalog_lib.read_catalog(
      _write(tmp_path / "c.csv", "item_id,title,price\n5,Saw,2\n6,Drill,3\n"))
  values = catalog.slot_values(np.array([1, -1, 0]))
  assert values[features.ITEM_ID].tolist() == ["6", "", "5"]
  assert values[features.TITLE].tolist() == ["Drill", "", "Saw"]
  np.testing.assert_allclose(values["price"], [3.0, 0.0, 2.0], atol=1e-6)


@pytest.mark.parametrize("content, message", [
    ("id,title\n1,a\n", "lacks the columns"),
    ("item_id,title\n,a\n", "no catalogue row has a usable item_id"),
])
def test_unusable_files_name_the_file(tmp_path, content, message):
  path = _write(tmp_path / "bad.csv", content)
  with pytest.raises(ValueError, match=message) as raised:
    catalog_lib.read_catalog(path)
  assert "bad.csv" in str(raised.value)


def test_non_utf8_names_the_file(tmp_path):
  path = tmp_path / "latin1.csv"
  path.write_bytes("item_id,title\n1,Säge\n".encode("latin-1"))
  with pytest.raises(ValueError, match="not UTF-8"):
    catalog_lib.read_catalog(str(path))
