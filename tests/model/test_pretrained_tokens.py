"""Tests of the distilled word-vector table and how it starts the towers."""
import numpy as np
import pytest

from model import minilm
from model import pretrained_tokens
from tfx_pipeline import configs


def test_save_and_load_round_trip(tmp_path):
  vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
  path = str(tmp_path / "table.npz")
  pretrained_tokens.save(path, ["a", "b", "c"], vectors)
  words, loaded = pretrained_tokens.load(path)
  assert words == ["a", "b", "c"]
  np.testing.assert_array_equal(loaded, vectors)


def test_load_rejects_a_file_that_is_not_a_table(tmp_path):
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a table")
  with pytest.raises(ValueError, match="not a word-vector table"):
    pretrained_tokens.load(str(bad))
  with pytest.raises(ValueError, match="not a word-vector table"):
    pretrained_tokens.load(str(tmp_path / "missing.npz"))
  with pytest.raises(ValueError, match="2 words but 3 vectors"):
    pretrained_tokens.save(str(bad), ["a", "b"], np.zeros((3, 4)))


def test_project_keeps_the_geometry_in_fewer_columns():
  rng = np.random.default_rng(0)
  # Points on a 2-d plane inside 8 dimensions, plus a shared offset.
  vectors = rng.normal(size=(50, 2)) @ rng.normal(size=(2, 8)) + 5.0
  projected = pretrained_tokens.project(vectors, 3)
  assert projected.shape == (50, 3)
  assert np.linalg.norm(projected, axis=1).mean() == pytest.approx(1.0,
                                                                   abs=1e-5)
  centred = vectors - vectors.mean(axis=0)
  original = centred @ centred.T
  kept = projected @ projected.T
  # Inner products survive up to one scale factor (nothing is lost).
  scale = original[0, 0] / kept[0, 0]
  np.testing.assert_allclose(kept * scale, original, rtol=1e-6, atol=1e-6)
  assert pretrained_tokens.project(vectors, 12).shape == (50, 12)


def test_token_table_fills_known_words_after_the_padding_row():
  rng = np.random.default_rng(1)
  words = ["drill", "hammer", "saw", "nail"]
  vectors = rng.normal(size=(4, 6)).astype(np.float32)
  initial = np.full((1 + 3 + 2, 4), 7.0, np.float32)  # pad, 3 words, 2 OOV.
  table, found = pretrained_tokens.token_table(
      ["hammer", "glue", "drill"], words, vectors, initial)
  projected = pretrained_tokens.project(vectors, 4)
  assert found == 2
  np.testing.assert_array_equal(table[0], initial[0])
  np.testing.assert_allclose(table[1], projected[1], atol=1e-6)
  np.testing.assert_array_equal(table[2], initial[2])  # "glue": no vector.
  np.testing.assert_allclose(table[3], projected[0], atol=1e-6)
  np.testing.assert_array_equal(table[4:], initial[4:])


def test_teacher_vectors_are_the_teachers_and_each_text_is_encoded_once(
    tmp_path, monkeypatch):
  calls = []

  class Teacher:

    def encode(self, texts, **unused_kwargs):
      calls.append(list(texts))
      return np.array([[len(t), 1.0] for t in texts], np.float32)

  monkeypatch.setattr(minilm, "load", Teacher)
  cache = str(tmp_path / "cache")
  vectors = pretrained_tokens.teacher_vectors(["a", "bbb"], cache)
  np.testing.assert_array_equal(vectors, [[1, 1], [3, 1]])
  again = pretrained_tokens.teacher_vectors(["a", "bbb"], cache)
  np.testing.assert_array_equal(again, vectors)
  assert calls == [["a", "bbb"]]  # The second call read the cache.
  # New texts: only they are encoded, and the answer keeps the order asked.
  mixed = pretrained_tokens.teacher_vectors(["cc", "a", "dddd a"], cache)
  assert calls[-1] == ["cc", "dddd a"]
  np.testing.assert_array_equal(mixed, [[2, 1], [1, 1], [6, 1]])
  assert [p.name for p in (tmp_path / "cache").iterdir()] == [
      f"{minilm.NAME}.npz"]
  # Without a cache directory every call encodes.
  pretrained_tokens.teacher_vectors(["a"])
  assert calls[-1] == ["a"]


def test_model_config_starts_the_table_from_the_teacher_by_default():
  assert (configs.ModelConfig().pretrained_token_table ==
          pretrained_tokens.TEACHER)
  config = configs.with_overrides(
      configs.PipelineConfig("l", "c", "o"),
      ["model.pretrained_token_table=/t/table.npz"])
  assert config.model.pretrained_token_table == "/t/table.npz"


def test_initialize_starts_the_encoders_token_table(tmp_path):
  from model import towers  # pylint: disable=g-import-not-at-top

  class TransformOutput:

    def vocabulary_by_name(self, name):
      assert name == "tokens"
      return [b"hammer", b"glue", b"drill"]

  rng = np.random.default_rng(2)
  vectors = rng.normal(size=(3, 40)).astype(np.float32)
  path = str(tmp_path / "table.npz")
  pretrained_tokens.save(path, ["drill", "hammer", "saw"], vectors)
  config = configs.ModelConfig(token_embedding_dim=8, head_dim=4)
  encoder = towers.TextEncoder(1 + 3 + 2, 10, config)
  pretrained_tokens.initialize(
      encoder, pretrained_tokens.start_vectors(TransformOutput(), path))
  table = encoder.token_embedding.get_weights()[0]
  projected = pretrained_tokens.project(vectors, 8)
  np.testing.assert_allclose(table[1], projected[1], atol=1e-6)
  np.testing.assert_allclose(table[3], projected[0], atol=1e-6)
  before = table.copy()
  pretrained_tokens.initialize(  # No table.
      encoder, pretrained_tokens.start_vectors(TransformOutput(), ""))
  np.testing.assert_array_equal(encoder.token_embedding.get_weights()[0],
                                before)
