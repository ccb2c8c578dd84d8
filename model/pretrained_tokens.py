"""Word vectors distilled from a pretrained sentence encoder: the teacher.

The logs teach the towers the words that logged queries and clicked titles
use; the rest of a catalogue's words, and every word of an item nobody
clicked, would start as random vectors that no training slate moves. Encoding
each word alone with all-MiniLM-L6-v2 (`model.minilm`, in TensorFlow) gives
every word a vector that already places "faucet" near "tap", in the spirit of
Model2Vec's static embeddings. By default the trainer distils the Transform's
word vocabulary this way (`teacher_vectors`, cached by word), starts
the token table from these vectors, projected to its width, and fine-tunes
it; the served towers stay plain lookups, so no encoder ships with them.

A table file is an `.npz` with `words` (str) and `vectors` (float32 [N, D]).
"""
import dataclasses
import io
import logging
import os
from typing import Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from model import minilm
from model import preprocessing

# `ModelConfig.pretrained_token_table` value: distil the vocabulary with the
# teacher (otherwise a table file, or empty for a random start).
TEACHER = "teacher"


def teacher_vectors(texts: Sequence[str], cache_dir: str = "") -> np.ndarray:
  """[len(texts), D] float32: each text (a word of the vocabulary) encoded
  alone by the teacher.

  Args:
    texts: what to encode.
    cache_dir: where the teacher's vectors are kept between runs, one table
      of every text it has encoded (`{minilm.NAME}.npz`): a run encodes only
      the texts no earlier run did. Empty: encode every time.
  """
  texts = list(texts)
  if not texts:
    return np.zeros((0, 0), np.float32)
  known_texts, known_vectors = [], None
  path = os.path.join(cache_dir, f"{minilm.NAME}.npz") if cache_dir else ""
  if path and tf.io.gfile.exists(path):
    known_texts, known_vectors = load(path)
  row = {text: n for n, text in enumerate(known_texts)}
  new = sorted(set(texts) - set(row))
  logging.info("Teacher: %d words, %d of them in the cache", len(texts),
               sum(t in row for t in texts))
  if new:
    encoded = minilm.load().encode(new, batch_size=512, what="words")
    known_vectors = (encoded if known_vectors is None else
                     np.vstack([known_vectors, encoded]))
    row.update((text, len(known_texts) + n) for n, text in enumerate(new))
    known_texts = known_texts + new
    if path:
      # Per process: the workers of a multi-worker run may write it at once.
      partial = f"{path}.{os.getpid()}.partial"
      save(partial, known_texts, known_vectors)
      tf.io.gfile.rename(partial, path, overwrite=True)  # Never a torn cache.
  return known_vectors[[row[t] for t in texts]]


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


@dataclasses.dataclass(frozen=True)
class StartVectors:
  """What token tables start from: vectors of `words`, and the Transform's
  word vocabulary (the tables' rows) they are placed into."""
  vocabulary: Sequence[str]
  words: Sequence[str]
  vectors: np.ndarray
  source: str


def start_vectors(tf_transform_output, source: Optional[str],
                  cache_dir: str = "") -> Optional[StartVectors]:
  """The vectors `source` gives: `TEACHER`, a table file, or nothing (empty:
  None, the random start stays). Read once for any number of tables."""
  if not source:
    return None
  vocabulary_words = read_token_vocabulary(tf_transform_output)
  if source == TEACHER:
    return StartVectors(vocabulary_words, vocabulary_words,
                        teacher_vectors(vocabulary_words, cache_dir),
                        minilm.NAME)
  words, vectors = load(source)
  return StartVectors(vocabulary_words, words, vectors, source)


def initialize(text_encoder, start: Optional[StartVectors]) -> None:
  """Starts `text_encoder`'s token table from `start` (None: the random
  start stays)."""
  if start is None:
    return
  embedding = text_encoder.token_embedding
  if not embedding.built:
    embedding.build((None,))
  table, found = token_table(start.vocabulary, start.words, start.vectors,
                             embedding.get_weights()[0])
  embedding.set_weights([table])
  logging.info("Token table: %d of %d vocabulary words start from %s",
               found, len(start.vocabulary), start.source)
