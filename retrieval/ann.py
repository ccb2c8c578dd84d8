"""Nearest-neighbour indexes over item embeddings: ScaNN, FAISS or exact.

Scoring every catalogue item for every query costs O(N * D); a quantised
index scores compact codes instead and re-scores only the best few exactly
(and, on a large catalogue, scores only some partitions).
The index is built once per catalogue (IndexBuilder, `mmse index`) and saved
inside the `retrieval` model's version directory under `assets.extra/index/`
(TF Serving ignores that folder), so a version is one unit: its exact
SavedModel, the embeddings, the index and which query tower they pair with.

Files in an index directory: `item_ids.npy` (text [N]), `embeddings.npy`
(float32 [N, D]), `index.json` (kind, params, sizes, pairing) and the index's
own files (`scann/`, `faiss.index`); `titles.json` when titles were given.
Every file goes through tf.io.gfile, so the directory may be a `gs://` URI;
ScaNN and FAISS write and read their own files on a local disk, which is
copied to and from such a URI.

As TFRS's `factorized_top_k` layers, an index is built over the candidates
once (`build`) and then answers `search(queries, k)`. Exact search
(`retrieval.topk`) is the reference the others are measured against.
"""
import abc
import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import time
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from contracts import serving_layout
from retrieval import config as index_config
from retrieval import topk

INDEX_SUBDIR = serving_layout.INDEX_SUBDIR
ITEM_IDS_FILE = "item_ids.npy"
EMBEDDINGS_FILE = "embeddings.npy"
META_FILE = "index.json"
TITLES_FILE = "titles.json"
KINDS = ("scann", "faiss", "exact")
# 2: item ids are text (1 held int64 ids).
FORMAT_VERSION = 2


class Index(abc.ABC):
  """Top-k maximum inner product search over a fixed set of items."""

  kind = ""
  # The entry (file or folder) of an index directory holding the index's own
  # files; None when it has none (exact search).
  _NATIVE: Optional[str] = None

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
    """Returns (item ids str [B, k], scores float32 [B, k]), best first."""
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

  def _save_files(self, local_dir: str) -> None:
    """Writes `_NATIVE` into a local directory."""

  @classmethod
  def _load(cls, local_dir: str, item_ids: np.ndarray,
            embeddings: np.ndarray, params: Dict[str, Any]) -> "Index":
    """Reads the index back; `_NATIVE` is in the local directory."""
    return cls(item_ids, embeddings, params)


# Below this many items an index scores every item's codes: partitions
# lose the items only some heads match (FaissIndex says why).
_MAX_SCANNED_ITEMS = 250_000
# Width the FAISS codes are taken at: on the benchmark's embeddings (three
# trainings of three heads, 2,304 wide), 256 principal directions keep the
# re-scored top-100's dev recall close to exact search and search faster
# than 384 (README, Serving; bench/results/serving.md).
_PROJECTION_DIM = 256


# Threads a FAISS search may use; None leaves OpenMP's default (every core).
_search_threads: Optional[int] = None


def set_search_threads(threads: int) -> None:
  """Threads one FAISS search may use, on whichever thread searches (ScaNN's
  `search_batched` uses one)."""
  if threads < 1:
    raise ValueError(f"threads must be >= 1, got {threads}")
  global _search_threads
  _search_threads = threads


def _apply_search_threads() -> None:
  """Gives the calling thread the count `set_search_threads` chose: OpenMP
  keeps it per thread, so set once on the main thread it would not reach a
  server's model threads (they would search on every core)."""
  import faiss  # pylint: disable=g-import-not-at-top
  if (_search_threads is not None and
      faiss.omp_get_max_threads() != _search_threads):
    faiss.omp_set_num_threads(_search_threads)


def _partitions_to_search(partitions: int, num_items: int) -> int:
  """30% of the partitions, and enough to hold at least ~15k items."""
  share = max(0.3, min(1.0, 15_000 / num_items))
  return max(1, min(partitions, int(math.ceil(share * partitions))))


def partition_plan(num_items: int, partitioned: bool) -> Tuple[int, int]:
  """(partitions, partitions searched): one, or ~2 sqrt(N) of ~sqrt(N)/2
  items with 30% of them searched (and at least ~15k items)."""
  partitions = int(round(2 * math.sqrt(num_items))) if partitioned else 1
  return partitions, _partitions_to_search(partitions, num_items)


class ExactIndex(Index):
  """Scores every item (`topk.exact_top_k`); the reference for recall."""

  kind = "exact"

  def _search_rows(self, queries, k):
    return topk.exact_top_k(queries, self.embeddings, k)


def _scann_pybind():
  # Imported on use: it loads TensorFlow and a native library.
  from scann.scann_ops.py import scann_ops_pybind  # pylint: disable=g-import-not-at-top
  return scann_ops_pybind


class ScannIndex(Index):
  """ScaNN: anisotropic quantisation, re-ranking, k-means partitions when
  the catalogue is large.

  A query scores the quantised items (of `leaves_to_search` partitions when
  `num_leaves` > 1), then
  re-scores the best `reorder_num_neighbors` exactly, so the scores returned
  are true dot products.
  """

  kind = "scann"
  _NATIVE = "scann"

  def __init__(self, item_ids, embeddings, params, searcher=None):
    super().__init__(item_ids, embeddings, params)
    self._searcher = searcher or self._build(embeddings, params)

  @staticmethod
  def default_params(num_items: int, k: int) -> Dict[str, Any]:
    # Up to a few hundred thousand items every item's codes are scored
    # (partitions lose relevant items, see FaissIndex); above, ~2 sqrt(N)
    # partitions of ~sqrt(N)/2 items, 30% of them searched (and at least
    # ~15k items). Re-ranking 4 k (at least 250) keeps recall@100 >= 0.95
    # (bench/results/serving.md).
    # Below a few thousand items neither partitions nor quantisation pay (nor
    # can quantisation train), so ScaNN scores every item exactly.
    small = num_items < 2000
    num_leaves, leaves_to_search = partition_plan(
        num_items, partitioned=num_items >= _MAX_SCANNED_ITEMS)
    return {
        "scoring": "brute_force" if small else "asymmetric_hashing",
        "num_leaves": num_leaves,
        "leaves_to_search": leaves_to_search,
        "reorder_num_neighbors": min(num_items, max(250, 4 * k)),
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

  def _save_files(self, local_dir):
    scann_dir = os.path.join(local_dir, self._NATIVE)
    os.makedirs(scann_dir)
    self._searcher.serialize(scann_dir)

  @classmethod
  def _load(cls, local_dir, item_ids, embeddings, params):
    # ScaNN's asset list holds absolute paths from when it was written; the
    # version directory has been renamed (and maybe copied) since, so every
    # asset is looked up beside the list instead.
    from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
    from scann.scann_ops import scann_assets_pb2  # pylint: disable=g-import-not-at-top
    pybind = _scann_pybind()
    scann_dir = os.path.join(local_dir, cls._NATIVE)
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
  """FAISS: compact codes of every item, the best re-scored in full.

  Items are projected onto their top principal directions (learned from
  the item embeddings, centred, applied without the mean so that a
  query's ranking is unchanged), then coded with 4-bit product
  quantisation that FAISS scores with SIMD lookups ("fast scan"). A query
  scores every code (or the codes of `nprobe` of `nlist` k-means lists on a
  large catalogue), keeps `k_factor` k candidates (at least
  `min_candidates`) and re-scores them with the full embeddings kept in
  16-bit floats, so the scores returned are the dot products to about 1e-3.

  `pq_dims_per_code` 0 turns the plan into FAISS's inverted file with
  exact in-list scoring (no projection, no codes, no re-scoring).
  """

  kind = "faiss"
  _NATIVE = "faiss.index"

  def __init__(self, item_ids, embeddings, params, index=None):
    super().__init__(item_ids, embeddings, params)
    self._index = index or self._build(embeddings, params)
    self._set_search_params(self._index, params)

  @staticmethod
  def default_params(num_items: int, k: int) -> Dict[str, Any]:
    del k  # k_factor scales the candidates with each search's k.
    # On the benchmark's learned embeddings, searching 30% of k-means
    # partitions found 94% of the exact top-100 but lost relevant items
    # disproportionately (the lexical and trigram heads match items that do
    # not cluster with the query's), so up to a few hundred thousand items
    # every code is scanned; above, ~2 sqrt(N) lists, 30% probed.
    # Below a few thousand items neither lists nor codes pay (nor can the
    # quantiser train): one exact scan.
    small = num_items < 2000
    nlist, nprobe = partition_plan(num_items,
                                   partitioned=num_items >= _MAX_SCANNED_ITEMS)
    return {
        "nlist": nlist,
        "nprobe": nprobe,
        "projection_dim": 0 if small else _PROJECTION_DIM,
        # Each 4-bit code stands for this many (projected) dimensions.
        "pq_dims_per_code": 0 if small else 2,
        # Candidates re-scored: k_factor k, at least min_candidates.
        "k_factor": 2.0,
        "min_candidates": 200,
        "training_sample_size": min(num_items, 250_000),
    }

  @staticmethod
  def _set_search_params(index, params) -> None:
    import faiss  # pylint: disable=g-import-not-at-top
    if params["nlist"] > 1:
      faiss.extract_index_ivf(index).nprobe = params["nprobe"]
    fast_scan = FaissIndex._flat_fast_scan(index)
    if fast_scan is not None:
      # One query at a time over every code block, candidates kept in a
      # reservoir: the same results as FAISS's automatic choice, and faster
      # from batches of 8 up (bench/results/serving.md, index plans).
      fast_scan.implem = 15

  @staticmethod
  def _flat_fast_scan(index):
    """The 4-bit PQ scan of every item inside `index`, or None (an inverted
    file, or no codes)."""
    import faiss  # pylint: disable=g-import-not-at-top
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
      index = faiss.downcast_index(index.base_index)
    if isinstance(index, faiss.IndexPreTransform):
      index = faiss.downcast_index(index.index)
    return index if isinstance(index, faiss.IndexPQFastScan) else None

  @staticmethod
  def _projection(sample: np.ndarray, dim: int):
    """Rows of the top principal directions of `sample`, spun by a fixed
    random rotation so every product-quantiser block holds as much
    variance as the next."""
    import faiss  # pylint: disable=g-import-not-at-top
    centred = sample - sample.mean(axis=0)
    # The covariance's top eigenvectors are the centred sample's top right
    # singular vectors; a D x D eigenproblem is far cheaper than the SVD of
    # an N x D matrix when N >> D.
    _, eigenvectors = np.linalg.eigh(
        (centred.T @ centred).astype(np.float64))
    top = eigenvectors[:, ::-1][:, :dim]
    rotation, _ = np.linalg.qr(
        np.random.default_rng(0).standard_normal((dim, dim)))
    matrix = (top @ rotation).T.astype(np.float32)
    # No bias: a query's score moves by q.mean for every item alike.
    transform = faiss.LinearTransform(sample.shape[1], dim, True)
    faiss.copy_array_to_vector(matrix.ravel(), transform.A)
    faiss.copy_array_to_vector(np.zeros(dim, np.float32), transform.b)
    transform.is_trained = True
    return transform

  @classmethod
  def _build(cls, embeddings, params):
    import faiss  # pylint: disable=g-import-not-at-top
    num_items, dim = embeddings.shape
    sample = embeddings[np.sort(np.random.default_rng(0).choice(
        num_items, params["training_sample_size"], replace=False))]
    per_code = params["pq_dims_per_code"]
    coded_dim = min(params["projection_dim"] or dim, dim)
    if per_code and coded_dim % per_code:
      raise ValueError(f"pq_dims_per_code {per_code} must divide the coded "
                       f"width {coded_dim}")
    lists = f"IVF{params['nlist']}," if params["nlist"] > 1 else ""
    codes = f"PQ{coded_dim // per_code}x4fs" if per_code else "Flat"
    base = faiss.index_factory(coded_dim, lists + codes,
                               faiss.METRIC_INNER_PRODUCT)
    if coded_dim < dim and per_code:
      base = faiss.IndexPreTransform(cls._projection(sample, coded_dim), base)
    index = base
    if per_code:
      index = faiss.IndexRefine(base, faiss.IndexScalarQuantizer(
          dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))
    index.train(sample)
    index.add(embeddings)
    return index

  def _search_rows(self, queries, k):
    _apply_search_threads()
    search_params = None
    if self.params["pq_dims_per_code"]:
      import faiss  # pylint: disable=g-import-not-at-top
      candidates = max(self.params["k_factor"] * k,
                       self.params["min_candidates"])
      search_params = faiss.IndexRefineSearchParameters(
          k_factor=min(candidates, self.size) / k)
    scores, rows = self._index.search(queries, k, params=search_params)
    if (rows < 0).any():
      # The probed lists held fewer than k items; widen to every list.
      missing = (rows < 0).any(axis=1)
      rows[missing], scores[missing] = topk.exact_top_k(
          queries[missing], self.embeddings, k)
    return rows, scores

  def _save_files(self, local_dir):
    import faiss  # pylint: disable=g-import-not-at-top
    faiss.write_index(self._index, os.path.join(local_dir, self._NATIVE))

  @classmethod
  def _load(cls, local_dir, item_ids, embeddings, params):
    import faiss  # pylint: disable=g-import-not-at-top
    return cls(item_ids, embeddings, params,
               index=faiss.read_index(os.path.join(local_dir, cls._NATIVE)))


_CLASSES = {c.kind: c for c in (ScannIndex, FaissIndex, ExactIndex)}


def build(item_ids: np.ndarray, embeddings: np.ndarray,
          kind: str = index_config.IndexConfig.kind,
          k: int = index_config.IndexConfig.k,
          params: Optional[Dict[str, Any]] = None) -> Index:
  """Builds an index; `params` override the kind's size-based defaults.

  Args:
    item_ids: [N] str, unique.
    embeddings: float32 [N, D], row i embeds item_ids[i].
    kind: scann, faiss or exact.
    k: the largest k it will be searched with (sizes the re-ranking).
    params: overrides of `default_params` of the kind.
  """
  if kind not in _CLASSES:
    raise ValueError(f"Unknown index kind {kind!r}; one of {KINDS}")
  item_ids = np.asarray(item_ids, dtype=str)
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


def _gfile():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def _is_local(path: str) -> bool:
  return "://" not in path


def saved_model_fingerprint(saved_model_dir: str) -> str:
  """Identifies a SavedModel by its graph and its variables' checksums.

  `variables.index` stores a checksum of every variable, so hashing it with
  `saved_model.pb` tells two trainings apart without reading the weights,
  and a copy (the pusher's) has the same fingerprint as its source.
  """
  gfile = _gfile()
  digest = hashlib.sha256()
  for name in (serving_layout.SAVED_MODEL_FILE,
               os.path.join("variables", "variables.index")):
    path = os.path.join(saved_model_dir, name)
    if gfile.exists(path):
      with gfile.GFile(path, "rb") as f:
        digest.update(f.read())
  return digest.hexdigest()


def _copy_tree(source: str, destination: str) -> None:
  """Copies a file or a folder, between any two tf.io.gfile paths."""
  gfile = _gfile()
  if not gfile.isdir(source):
    gfile.copy(source, destination)
    return
  gfile.makedirs(destination)
  for name in gfile.listdir(source):
    name = name.rstrip("/")
    _copy_tree(os.path.join(source, name), os.path.join(destination, name))


@contextlib.contextmanager
def _local_copy(directory: str, entry: Optional[str]) -> Iterator[str]:
  """A local directory holding `directory/entry` (itself when local)."""
  if entry is None or _is_local(directory):
    yield directory
    return
  with tempfile.TemporaryDirectory() as local_dir:
    _copy_tree(os.path.join(directory, entry), os.path.join(local_dir, entry))
    yield local_dir


def _save_native(index: Index, directory: str) -> None:
  """The index's own files, written locally and copied to a URI."""
  # pylint: disable=protected-access
  if index._NATIVE is None or _is_local(directory):
    index._save_files(directory)
    return
  with tempfile.TemporaryDirectory() as local_dir:
    index._save_files(local_dir)
    _copy_tree(os.path.join(local_dir, index._NATIVE),
               os.path.join(directory, index._NATIVE))


def _write_array(path: str, array: np.ndarray) -> None:
  with _gfile().GFile(path, "wb") as f:
    np.save(f, array)


def _read_array(path: str) -> np.ndarray:
  with _gfile().GFile(path, "rb") as f:
    return np.load(f)


def _write_json(path: str, value: Any, **kwargs) -> None:
  with _gfile().GFile(path, "w") as f:
    f.write(json.dumps(value, **kwargs))


def _read_json(path: str) -> Any:
  with _gfile().GFile(path, "r") as f:
    return json.loads(f.read())


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
  gfile = _gfile()
  if gfile.exists(directory):
    raise FileExistsError(f"{directory} already exists")
  gfile.makedirs(directory)
  _write_array(os.path.join(directory, ITEM_IDS_FILE), index.item_ids)
  _write_array(os.path.join(directory, EMBEDDINGS_FILE), index.embeddings)
  _save_native(index, directory)
  if titles is not None:
    _write_json(os.path.join(directory, TITLES_FILE),
                [str(t) for t in titles], ensure_ascii=False)
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
  _write_json(os.path.join(directory, META_FILE), meta, indent=2)


def write_index(directory: str, item_ids: np.ndarray, embeddings: np.ndarray,
                k: int, kind: str = index_config.IndexConfig.kind,
                params: Optional[Dict[str, Any]] = None,
                titles: Optional[Sequence[str]] = None,
                query_tower_dir: Optional[str] = None) -> Index:
  """`build` then `save`: what IndexBuilder and `mmse index` call."""
  index = build(item_ids, embeddings, kind=kind, k=k, params=params)
  save(index, directory, k=k, titles=titles, query_tower_dir=query_tower_dir)
  return index


def load(directory: str) -> LoadedIndex:
  """Reads an index directory; raises on a missing or inconsistent file."""
  gfile = _gfile()
  meta_path = os.path.join(directory, META_FILE)
  if not gfile.exists(meta_path):
    raise FileNotFoundError(f"{meta_path} is missing (incomplete index)")
  meta = _read_json(meta_path)
  if meta.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"{meta_path}: unsupported format_version "
                     f"{meta.get('format_version')} (this release reads "
                     f"{FORMAT_VERSION}; rebuild the index with `mmse index`)")
  if meta.get("kind") not in _CLASSES:
    raise ValueError(f"{meta_path}: unknown index kind {meta.get('kind')!r}")
  item_ids = _read_array(os.path.join(directory, ITEM_IDS_FILE))
  embeddings = _read_array(os.path.join(directory, EMBEDDINGS_FILE))
  if (item_ids.shape != (meta["num_items"],) or
      embeddings.shape != (meta["num_items"], meta["dim"])):
    raise ValueError(f"{directory}: item_ids {item_ids.shape} / embeddings "
                     f"{embeddings.shape} disagree with {META_FILE}")
  titles = None
  titles_path = os.path.join(directory, TITLES_FILE)
  if gfile.exists(titles_path):
    titles = np.asarray([t.encode("utf-8") for t in _read_json(titles_path)],
                        dtype=object)
    if len(titles) != len(item_ids):
      raise ValueError(f"{titles_path}: {len(titles)} titles for "
                       f"{len(item_ids)} items")
  cls = _CLASSES[meta["kind"]]
  # pylint: disable=protected-access
  with _local_copy(directory, cls._NATIVE) as local_dir:
    index = cls._load(local_dir, item_ids, embeddings, meta["params"])
  # pylint: enable=protected-access
  return LoadedIndex(index, meta, titles)
