"""Nearest-neighbour indexes over item embeddings: ScaNN, FAISS or exact.

Scoring every catalogue item for every query costs O(N * D); a partitioned,
quantised index answers the same top-k from a small part of the catalogue.
The index is built once per catalogue (IndexBuilder, `mmse index`) and saved
inside the `retrieval` model's version directory under `assets.extra/index/`
(TF Serving ignores that folder), so a version is one unit: its exact
SavedModel, the embeddings, the index and which query tower they pair with.

Files in an index directory: `item_ids.npy` (int64 [N]), `embeddings.npy`
(float32 [N, D]), `index.json` (kind, params, sizes, pairing) and the index's
own files (`scann/`, `faiss.index`); `titles.json` when titles were given.
Exact search is the reference the others are measured against.
"""
import abc
import hashlib
import json
import logging
import math
import os
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

INDEX_SUBDIR = os.path.join("assets.extra", "index")
ITEM_IDS_FILE = "item_ids.npy"
EMBEDDINGS_FILE = "embeddings.npy"
META_FILE = "index.json"
TITLES_FILE = "titles.json"
KINDS = ("scann", "faiss", "exact")
FORMAT_VERSION = 1


class Index(abc.ABC):
  """Top-k maximum inner product search over a fixed set of items."""

  kind = ""

  def __init__(self, item_ids: np.ndarray, embeddings: np.ndarray,
               params: Dict[str, Any]):
    self.item_ids = item_ids
    self.embeddings = embeddings
    self.params = params

  @staticmethod
  def default_params(num_items: int, k: int) -> Dict[str, Any]:
    """Parameters sized for `num_items` and searches of up to `k` items."""
    del num_items, k
    return {}

  @property
  def size(self) -> int:
    return len(self.item_ids)

  @property
  def dim(self) -> int:
    return self.embeddings.shape[1]

  def search(self, queries: np.ndarray,
             k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (item ids int64 [B, k], scores float32 [B, k]), best first."""
    rows, scores = self.search_rows(queries, k)
    return self.item_ids[rows], scores

  def search_rows(self, queries: np.ndarray,
                  k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Like `search`, with row numbers into the item arrays for ids."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != self.dim:
      raise ValueError(f"queries must be [batch, {self.dim}], got "
                       f"{list(queries.shape)}")
    if not 1 <= k <= self.size:
      raise ValueError(f"k must be in 1..{self.size}, got {k}")
    rows, scores = self._search_rows(queries, k)
    return rows, scores.astype(np.float32, copy=False)

  @abc.abstractmethod
  def _search_rows(self, queries: np.ndarray,
                   k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Row numbers into the item arrays and their scores, best first."""

  def _save_files(self, directory: str) -> None:
    """Writes the index's own files (none for exact search)."""

  @classmethod
  def _load(cls, directory: str, item_ids: np.ndarray, embeddings: np.ndarray,
            params: Dict[str, Any]) -> "Index":
    return cls(item_ids, embeddings, params)


def _top_k_rows(scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
  """The k best columns of each row of `scores`, best first."""
  if k < scores.shape[1]:
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
  else:
    top = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
  top_scores = np.take_along_axis(scores, top, axis=1)
  order = np.argsort(-top_scores, axis=1, kind="stable")
  return (np.take_along_axis(top, order, axis=1),
          np.take_along_axis(top_scores, order, axis=1))


def _partitions_to_search(partitions: int, num_items: int) -> int:
  """30% of the partitions, and enough to hold at least ~15k items."""
  share = max(0.3, min(1.0, 15_000 / num_items))
  return max(1, min(partitions, int(math.ceil(share * partitions))))


class ExactIndex(Index):
  """Scores every item; the reference for recall and speed."""

  kind = "exact"
  # Queries are scored in blocks of at most this many scores (256 MB).
  _BLOCK_SCORES = 1 << 26

  def _search_rows(self, queries, k):
    rows = np.empty((len(queries), k), dtype=np.int64)
    scores = np.empty((len(queries), k), dtype=np.float32)
    block = int(np.clip(self._BLOCK_SCORES // self.size, 1, 256))
    for start in range(0, len(queries), block):
      stop = start + block
      # A transposed view: BLAS reads it in place, nothing N x D is copied.
      rows[start:stop], scores[start:stop] = _top_k_rows(
          queries[start:stop] @ self.embeddings.T, k)
    return rows, scores


def _scann_pybind():
  # Imported on use: it loads TensorFlow and a native library.
  from scann.scann_ops.py import scann_ops_pybind  # pylint: disable=g-import-not-at-top
  return scann_ops_pybind


class ScannIndex(Index):
  """ScaNN: k-means tree partitioning, anisotropic quantisation, re-ranking.

  A query scores the quantised items of `leaves_to_search` partitions, then
  re-scores the best `reorder_num_neighbors` exactly, so the scores returned
  are true dot products.
  """

  kind = "scann"
  _SUBDIR = "scann"

  def __init__(self, item_ids, embeddings, params, searcher=None):
    super().__init__(item_ids, embeddings, params)
    self._searcher = searcher or self._build(embeddings, params)

  @staticmethod
  def default_params(num_items: int, k: int) -> Dict[str, Any]:
    # ~2 sqrt(N) partitions of ~sqrt(N)/2 items; searching 30% of them (and
    # at least ~15k items, since a small catalogue's top-k spans more of its
    # few, small partitions) and re-ranking a few times k keeps recall@100
    # >= 0.95 on clustered embeddings (bench/results/serving.md), at a small
    # share of exact search's cost.
    # Below a few thousand items neither partitions nor quantisation pay (nor
    # can quantisation train), so ScaNN scores every item exactly.
    small = num_items < 2000
    num_leaves = 1 if small else int(round(2 * math.sqrt(num_items)))
    return {
        "scoring": "brute_force" if small else "asymmetric_hashing",
        "num_leaves": num_leaves,
        "leaves_to_search": _partitions_to_search(num_leaves, num_items),
        "reorder_num_neighbors": min(num_items, max(1000, 4 * k)),
        "dims_per_block": 2,
        "quantization_threshold": 0.2,
        "training_sample_size": min(num_items, 250_000),
    }

  @staticmethod
  def _build(embeddings, params):
    builder = _scann_pybind().builder(embeddings, 10, "dot_product")
    if params["num_leaves"] > 1:
      builder = builder.tree(
          num_leaves=params["num_leaves"],
          num_leaves_to_search=params["leaves_to_search"],
          training_sample_size=params["training_sample_size"])
    if params["scoring"] == "brute_force":
      return builder.score_brute_force().build()
    if params["scoring"] != "asymmetric_hashing":
      raise ValueError(f"Unknown ScaNN scoring {params['scoring']!r}")
    return (builder.score_ah(
        params["dims_per_block"],
        anisotropic_quantization_threshold=params["quantization_threshold"])
            .reorder(params["reorder_num_neighbors"]).build())

  def _search_rows(self, queries, k):
    rows, scores = self._searcher.search_batched(
        queries, final_num_neighbors=k,
        pre_reorder_num_neighbors=max(k, self.params["reorder_num_neighbors"]),
        leaves_to_search=self.params["leaves_to_search"])
    return rows.astype(np.int64), scores

  def _save_files(self, directory):
    scann_dir = os.path.join(directory, self._SUBDIR)
    os.makedirs(scann_dir)
    self._searcher.serialize(scann_dir)

  @classmethod
  def _load(cls, directory, item_ids, embeddings, params):
    # ScaNN's asset list holds absolute paths from when it was written; the
    # version directory has been renamed (and maybe copied) since, so every
    # asset is looked up beside the list instead.
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    from scann.scann_ops import scann_assets_pb2  # pylint: disable=g-import-not-at-top
    pybind = _scann_pybind()
    scann_dir = os.path.join(directory, cls._SUBDIR)
    with open(os.path.join(scann_dir, "scann_assets.pbtxt")) as f:
      assets = text_format.Parse(f.read(), scann_assets_pb2.ScannAssets())
    for asset in assets.assets:
      asset.asset_path = os.path.join(scann_dir,
                                      os.path.basename(asset.asset_path))
      if not os.path.isfile(asset.asset_path):
        raise FileNotFoundError(f"ScaNN asset {asset.asset_path} is missing")
    searcher = pybind.ScannSearcher(
        pybind.scann_pybind.ScannNumpy(scann_dir,
                                       text_format.MessageToString(assets)))
    return cls(item_ids, embeddings, params, searcher=searcher)


class FaissIndex(Index):
  """FAISS inverted file (k-means partitions) with exact in-list scoring."""

  kind = "faiss"
  _FILE = "faiss.index"

  def __init__(self, item_ids, embeddings, params, index=None):
    super().__init__(item_ids, embeddings, params)
    self._index = index or self._build(embeddings, params)
    if params["nlist"] > 1:
      self._index.nprobe = params["nprobe"]

  @staticmethod
  def default_params(num_items: int, k: int) -> Dict[str, Any]:
    del k  # Every probed list is scored exactly; k does not change the plan.
    # The same plan as ScaNN's: ~2 sqrt(N) lists, 30% of them probed.
    nlist = 1 if num_items < 2000 else int(round(2 * math.sqrt(num_items)))
    return {
        "nlist": nlist,
        "nprobe": _partitions_to_search(nlist, num_items),
        "training_sample_size": min(num_items, 250_000),
    }

  @staticmethod
  def _build(embeddings, params):
    import faiss  # pylint: disable=g-import-not-at-top
    if params["nlist"] == 1:  # A small catalogue: one list is a flat scan.
      index = faiss.IndexFlatIP(embeddings.shape[1])
      index.add(embeddings)
      return index
    index = faiss.index_factory(embeddings.shape[1],
                                f"IVF{params['nlist']},Flat",
                                faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(
        len(embeddings), params["training_sample_size"], replace=False)
    index.train(embeddings[np.sort(sample)])
    index.add(embeddings)
    return index

  def _search_rows(self, queries, k):
    scores, rows = self._index.search(queries, k)
    if (rows < 0).any():
      # The probed lists held fewer than k items; widen to every list.
      missing = (rows < 0).any(axis=1)
      exact_rows, exact_scores = ExactIndex(
          self.item_ids, self.embeddings, {})._search_rows(queries[missing], k)
      rows[missing], scores[missing] = exact_rows, exact_scores
    return rows, scores

  def _save_files(self, directory):
    import faiss  # pylint: disable=g-import-not-at-top
    faiss.write_index(self._index, os.path.join(directory, self._FILE))

  @classmethod
  def _load(cls, directory, item_ids, embeddings, params):
    import faiss  # pylint: disable=g-import-not-at-top
    return cls(item_ids, embeddings, params,
               index=faiss.read_index(os.path.join(directory, cls._FILE)))


_CLASSES = {c.kind: c for c in (ScannIndex, FaissIndex, ExactIndex)}


def build(item_ids: np.ndarray, embeddings: np.ndarray, kind: str = "scann",
          k: int = 100, params: Optional[Dict[str, Any]] = None) -> Index:
  """Builds an index; `params` override the kind's size-based defaults.

  Args:
    item_ids: int64 [N], unique.
    embeddings: float32 [N, D], row i embeds item_ids[i].
    kind: scann, faiss or exact.
    k: the largest k it will be searched with (sizes the re-ranking).
    params: overrides of `default_params` of the kind.
  """
  if kind not in _CLASSES:
    raise ValueError(f"Unknown index kind {kind!r}; one of {KINDS}")
  item_ids = np.asarray(item_ids, dtype=np.int64)
  embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
  if embeddings.ndim != 2 or len(embeddings) != len(item_ids):
    raise ValueError(f"embeddings {list(embeddings.shape)} do not match "
                     f"{len(item_ids)} item ids")
  if not len(item_ids):
    raise ValueError("Cannot index an empty catalogue")
  if len(np.unique(item_ids)) != len(item_ids):
    raise ValueError("item_ids must be unique")
  if not np.isfinite(embeddings).all():
    raise ValueError("embeddings contain NaN or infinite values")
  cls = _CLASSES[kind]
  defaults = cls.default_params(len(item_ids), k)
  unknown = set(params or {}) - set(defaults)
  if unknown:
    raise ValueError(f"Unknown {kind} params {sorted(unknown)}; "
                     f"known: {sorted(defaults)}")
  merged = {**defaults, **(params or {})}
  started = time.monotonic()
  index = cls(item_ids, embeddings, merged)
  logging.info("Built %s index over %d x %d in %.1fs (%s)", kind,
               len(item_ids), embeddings.shape[1], time.monotonic() - started,
               merged)
  return index


def saved_model_fingerprint(saved_model_dir: str) -> str:
  """Identifies a SavedModel by its graph and its variables' checksums.

  `variables.index` stores a checksum of every variable, so hashing it with
  `saved_model.pb` tells two trainings apart without reading the weights,
  and a copy (the pusher's) has the same fingerprint as its source.
  """
  digest = hashlib.sha256()
  for name in ("saved_model.pb", os.path.join("variables", "variables.index")):
    path = os.path.join(saved_model_dir, name)
    if os.path.exists(path):
      with open(path, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


class LoadedIndex:
  """An index read back from disk, with what it was built for."""

  def __init__(self, index: Index, meta: Dict[str, Any],
               titles: Optional[np.ndarray]):
    self.index = index
    self.meta = meta
    self.titles = titles

  @property
  def query_tower_fingerprint(self) -> Optional[str]:
    return self.meta.get("query_tower_fingerprint")

  @property
  def k(self) -> Optional[int]:
    return self.meta.get("k")


def save(index: Index, directory: str, k: int,
         titles: Optional[Sequence[str]] = None,
         query_tower_dir: Optional[str] = None) -> None:
  """Writes `index` into a new directory `directory`.

  Args:
    index: what `build` returned.
    directory: created here; must not exist yet.
    k: the top-k the served model answers with (recorded for the server).
    titles: optional item titles in row order, returned beside the ids.
    query_tower_dir: the query tower SavedModel whose embeddings pair with
      these item embeddings; the server embeds queries with it.
  """
  if titles is not None and len(titles) != index.size:
    raise ValueError(f"{len(titles)} titles for {index.size} items")
  os.makedirs(directory)
  np.save(os.path.join(directory, ITEM_IDS_FILE), index.item_ids)
  np.save(os.path.join(directory, EMBEDDINGS_FILE), index.embeddings)
  index._save_files(directory)  # pylint: disable=protected-access
  if titles is not None:
    with open(os.path.join(directory, TITLES_FILE), "w",
              encoding="utf-8") as f:
      json.dump([str(t) for t in titles], f, ensure_ascii=False)
  meta = {
      "format_version": FORMAT_VERSION,
      "kind": index.kind,
      "params": index.params,
      "num_items": index.size,
      "dim": index.dim,
      "k": k,
      "query_tower_fingerprint": (saved_model_fingerprint(query_tower_dir)
                                  if query_tower_dir else None),
  }
  # Written last: an index directory without it is incomplete.
  with open(os.path.join(directory, META_FILE), "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=2)


def write_index(directory: str, item_ids: np.ndarray, embeddings: np.ndarray,
                k: int, kind: str = "scann",
                params: Optional[Dict[str, Any]] = None,
                titles: Optional[Sequence[str]] = None,
                query_tower_dir: Optional[str] = None) -> Index:
  """`build` then `save`: what IndexBuilder and `mmse index` call."""
  index = build(item_ids, embeddings, kind=kind, k=k, params=params)
  save(index, directory, k=k, titles=titles, query_tower_dir=query_tower_dir)
  return index


def load(directory: str) -> LoadedIndex:
  """Reads an index directory; raises on a missing or inconsistent file."""
  meta_path = os.path.join(directory, META_FILE)
  if not os.path.isfile(meta_path):
    raise FileNotFoundError(f"{meta_path} is missing (incomplete index)")
  with open(meta_path, encoding="utf-8") as f:
    meta = json.load(f)
  if meta.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{meta_path}: unsupported format_version "
                     f"{meta.get('format_version')}")
  if meta.get("kind") not in _CLASSES:
    raise ValueError(f"{meta_path}: unknown index kind {meta.get('kind')!r}")
  item_ids = np.load(os.path.join(directory, ITEM_IDS_FILE))
  embeddings = np.load(os.path.join(directory, EMBEDDINGS_FILE))
  if (item_ids.shape != (meta["num_items"],) or
      embeddings.shape != (meta["num_items"], meta["dim"])):
    raise ValueError(f"{directory}: item_ids {item_ids.shape} / embeddings "
                     f"{embeddings.shape} disagree with {META_FILE}")
  titles = None
  titles_path = os.path.join(directory, TITLES_FILE)
  if os.path.exists(titles_path):
    with open(titles_path, encoding="utf-8") as f:
      titles = np.asarray([t.encode("utf-8") for t in json.load(f)],
                          dtype=object)
    if len(titles) != len(item_ids):
      raise ValueError(f"{titles_path}: {len(titles)} titles for "
                       f"{len(item_ids)} items")
  index = _CLASSES[meta["kind"]]._load(  # pylint: disable=protected-access
      directory, item_ids, embeddings, meta["params"])
  return LoadedIndex(index, meta, titles)
