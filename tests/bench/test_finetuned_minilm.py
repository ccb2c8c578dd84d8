"""The fine-tuned MiniLM peer: its training pairs, batches and one real
fine-tuning (that part needs the minilm extra, torch)."""
import gzip
import importlib.util
import json
import os

import numpy as np
import pytest

from bench import finetuned_minilm
from contracts import catalog as catalog_lib

HAS_MINILM_EXTRA = all(importlib.util.find_spec(m) is not None
                       for m in ("torch", "sentence_transformers"))
_HEADER = ("request_id,event_time,user_id,query,item_id,position,clicked,"
           "added_to_cart,ordered\n")


def _catalog(tmp_path):
  path = tmp_path / "catalog.csv"
  path.write_text("item_id,title\n1,cordless drill 20v\n2,garden hose 50 ft\n"
                  "3,led light bulb\n4,paint roller\n")
  return catalog_lib.read_catalog(str(path))


def _write_logs(path, rows):
  with gzip.open(path, "wt") as f:
    f.write(_HEADER + "".join(rows))


def test_pairs_are_the_distinct_clicked_or_ordered_titles(tmp_path):
  (tmp_path / "logs").mkdir()
  _write_logs(tmp_path / "logs" / "a.csv.gz", [
      "r1,1,u,drill,1,1,1,0,0\n",      # clicked
      "r2,2,u,drill,1,1,1,1,1\n",      # the same pair again
      "r3,3,u,hose,2,1,0,0,1\n",       # ordered without a click (dirt)
      "r4,4,u,hose,3,2,0,0,0\n",       # shown only
      "r5,5,u,,4,1,1,0,0\n",           # empty query
      "r6,6,u,bulb,99,1,1,0,0\n",      # an item the catalogue lacks
      "r7,7,u,drill,2,2,x,0,\n",       # unreadable flags
  ])
  _write_logs(tmp_path / "logs" / "b.csv.gz",
              ["r8,8,u, roller ,4,3,1,0,0\n"])
  pairs = finetuned_minilm.click_pairs(str(tmp_path / "logs" / "*.csv.gz"),
                                       _catalog(tmp_path))
  assert pairs == [("drill", "cordless drill 20v"),
                   ("hose", "garden hose 50 ft"), ("roller", "paint roller")]


def test_logs_without_the_columns_are_named(tmp_path):
  with gzip.open(tmp_path / "bad.csv.gz", "wt") as f:
    f.write("query,item_id\ndrill,1\n")
  with pytest.raises(ValueError, match=r"bad\.csv\.gz.*clicked"):
    finetuned_minilm.click_pairs(str(tmp_path / "*.csv.gz"),
                                 _catalog(tmp_path))
  with pytest.raises(FileNotFoundError, match="matches no file"):
    finetuned_minilm.click_pairs(str(tmp_path / "none*.csv"),
                                 _catalog(tmp_path))


def test_batches_are_full_and_never_repeat_a_text():
  # 30 queries with many clicked titles each: a batch holds each query once.
  pairs = [(f"q{i % 30}", f"t{i}") for i in range(1000)]
  batches = finetuned_minilm.batches_without_duplicates(pairs, 64, seed=1)
  assert len(batches) == 16  # ceil(1000 / 64), as an epoch of the loader.
  for batch in batches:
    texts = [text for pair in batch for text in pair]
    assert len(texts) == len(set(texts))
    assert len(batch) == 30  # As full as distinct queries allow.
  plain = [(f"q{i}", f"t{i}") for i in range(130)]
  batches = finetuned_minilm.batches_without_duplicates(plain, 64, seed=2)
  assert [len(b) for b in batches] == [64, 64, 64]
  assert set(plain) <= {pair for batch in batches for pair in batch}
  assert batches == finetuned_minilm.batches_without_duplicates(plain, 64,
                                                                seed=2)


@pytest.mark.skipif(not HAS_MINILM_EXTRA,
                    reason="the minilm extra (torch) is missing")
def test_fine_tuning_learns_the_clicks_and_is_cached(tmp_path):
  catalog = _catalog(tmp_path)
  (tmp_path / "logs").mkdir()
  # Each query clicks a title other than the one its words point to, so
  # only what fine-tuning learnt ranks the clicked title first.
  clicks = [("water hose", 1), ("bright lamp", 2), ("paint brush", 3),
            ("drill bit", 4)]
  _write_logs(tmp_path / "logs" / "a.csv.gz", [
      f"r{i},{i},u,{query},{item},1,1,0,0\n"
      for i, (query, item) in enumerate(clicks * 8)])
  logs = str(tmp_path / "logs" / "*.csv.gz")
  queries = [query for query, _ in clicks]
  zero_shot = finetuned_minilm.FineTuning(epochs=0)
  before = finetuned_minilm.rankings(catalog, queries, 4, logs, seed=1,
                                     cache_dir=str(tmp_path / "zero"),
                                     work_dir=str(tmp_path),
                                     settings=zero_shot)
  assert [before.rankings[q][0] for q in queries] == [2, 3, 4, 1]
  settings = finetuned_minilm.FineTuning(batch_size=4, learning_rate=1e-4,
                                         warmup_share=0.0, epochs=8)
  tuned = finetuned_minilm.rankings(catalog, queries, 4, logs, seed=1,
                                    cache_dir=str(tmp_path / "cache"),
                                    work_dir=str(tmp_path), settings=settings)
  assert [tuned.rankings[q][0] for q in queries] == [1, 2, 3, 4]
  assert tuned.train_seconds > 0 and tuned.encode_seconds > 0
  (model_dir,) = os.listdir(tmp_path / "cache" / "finetuned_minilm")
  record = json.loads((tmp_path / "cache" / "finetuned_minilm" / model_dir /
                       finetuned_minilm.TRAINING_FILE).read_text())
  assert record["pairs"] == 4 and record["steps"] == 8
  again = finetuned_minilm.rankings(catalog, queries, 4, logs, seed=1,
                                    cache_dir=str(tmp_path / "cache"),
                                    work_dir=str(tmp_path), settings=settings)
  assert again.rankings == tuned.rankings
  assert again.train_seconds == pytest.approx(record["train_seconds"],
                                              abs=1e-9)
  assert np.isfinite(again.encode_seconds)
