"""The zero-shot semantic peer MMSE has to beat: all-MiniLM-L6-v2.

A learned retriever is only worth its training if it finds more than lexical
matching (BM25 over titles, `evaluation.lexical`) and more than an
off-the-shelf sentence encoder used zero-shot; the reciprocal-rank fusion of
the two (`lexical.rrf_rankings`) is the strongest cheap hybrid. Rankings
have the shape `evaluation.metrics.score` takes - query -> item ids, best
first - so every system in the benchmark is scored by the same code.

MiniLM runs in TensorFlow (`model.minilm`, the pipeline's teacher), so no
baseline needs torch.
"""
import hashlib
import json
import logging
import os
from typing import Optional, Sequence

import numpy as np

from contracts import catalog as catalog_lib
from evaluation import lexical
from model import minilm
from retrieval import topk


def _encode(model, model_name: str, texts: Sequence[str],
            cache_dir: Optional[str]) -> np.ndarray:
  """Unit-length embeddings of `texts`, cached by model and exact texts."""
  cache_path = None
  if cache_dir:
    digest = hashlib.sha256(
        json.dumps([model_name, list(texts)]).encode("utf-8")).hexdigest()
    cache_path = os.path.join(cache_dir, f"minilm-{digest[:24]}.npy")
    if os.path.exists(cache_path):
      logging.info("MiniLM: %d embeddings from %s", len(texts), cache_path)
      return np.load(cache_path)
  embeddings = model.encode(texts, batch_size=128)
  if cache_path:
    os.makedirs(cache_dir, exist_ok=True)
    partial = f"{cache_path}.{os.getpid()}.partial.npy"
    np.save(partial, embeddings)
    os.replace(partial, cache_path)  # A crash never leaves a torn cache.
  return embeddings


def minilm_rankings(catalog: catalog_lib.Catalog, queries: Sequence[str],
                    k: int, cache_dir: Optional[str] = None
                   ) -> lexical.Rankings:
  """Ranks the catalogue by cosine similarity of all-MiniLM-L6-v2 embeddings.

  Zero-shot: the pretrained encoder embeds raw queries and titles, nothing is
  fitted to the logs.

  Args:
    catalog: a `contracts.catalog.Catalog` (ids and titles are used).
    queries: raw query strings.
    k: ranking depth (capped at the catalogue size).
    cache_dir: where embeddings are kept between runs (keyed by the model and
      the exact texts, so a changed catalogue is re-encoded); None encodes
      every time.

  Returns:
    query -> the top-k item ids, best first.

  Raises:
    FileNotFoundError: the teacher's weights are not installed.
  """
  item_ids, titles = lexical.catalog_titles(catalog)
  depth = lexical.depth_of(k, len(titles))
  if not queries:
    return {}
  model = minilm.load()
  item_embeddings = _encode(model, model.name, titles, cache_dir)
  query_embeddings = _encode(model, model.name, list(queries), cache_dir)
  logging.info("MiniLM: ranking %d queries", len(queries))
  top, _ = topk.exact_top_k(query_embeddings, item_embeddings, depth)
  return {q: item_ids[row].tolist() for q, row in zip(queries, top)}
