"""Tests of the teacher: all-MiniLM-L6-v2 in TensorFlow, without torch."""
import importlib.util
import json
import pathlib

import numpy as np
import pytest

from model import minilm
from sample_data import simulator

# Texts and their embeddings from sentence-transformers (the file's
# `made_by` says which versions): a word, a misspelling, accents, an empty
# text and one past the 256 word pieces the model truncates at.
REFERENCE = pathlib.Path(__file__).parent / "testdata" / "minilm_reference.npz"
HAS_SENTENCE_TRANSFORMERS = all(
    importlib.util.find_spec(m) is not None
    for m in ("torch", "sentence_transformers"))


@pytest.fixture(scope="module")
def teacher():
  return minilm.load()


def test_encodes_as_sentence_transformers_does(teacher):
  reference = np.load(REFERENCE)
  texts = json.loads(str(reference["texts"]))
  vectors = teacher.encode(texts)
  assert vectors.shape == (len(texts), 384)
  np.testing.assert_allclose(vectors, reference["vectors"], atol=1e-5)


def test_a_text_encodes_the_same_in_any_batch(teacher):
  texts = ["cordless drill", "garden hose 50 ft. heavy duty", "tap", "x"]
  alone = np.stack([teacher.encode([t])[0] for t in texts])
  np.testing.assert_allclose(teacher.encode(texts, batch_size=3), alone,
                             atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)
  assert teacher.encode([]).shape == (0, 384)


def test_places_words_by_meaning(teacher):
  faucet, tap, lumber = teacher.encode(["faucet", "tap", "lumber"])
  assert faucet @ tap > faucet @ lumber + 0.1


def test_missing_weights_say_how_to_install(monkeypatch, tmp_path):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(FileNotFoundError, match="requirements-teacher.txt"):
    minilm.packaged_model_dir()
  (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
  with pytest.raises(ValueError, match="not a BERT encoder"):
    minilm.MiniLM(str(tmp_path))


@pytest.mark.skipif(not HAS_SENTENCE_TRANSFORMERS,
                    reason="the minilm extra (torch) is missing")
def test_matches_sentence_transformers_on_catalogue_titles(teacher, tmp_path):
  # pylint: disable=g-import-not-at-top
  import sentence_transformers
  from contracts import catalog as catalog_lib
  simulator.simulate(str(tmp_path))
  titles = catalog_lib.read_catalog(
      str(tmp_path / "catalog.csv")).titles.tolist()[:300]
  encoder = sentence_transformers.SentenceTransformer(
      minilm.packaged_model_dir(), device="cpu")
  expected = encoder.encode(titles, normalize_embeddings=True)
  np.testing.assert_allclose(teacher.encode(titles), expected, atol=1e-5)
