"""run_fn on a tiny transformed dataset, then the exported SavedModels."""
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from contracts import features
from contracts import serving_layout
from model import export
from model import trainer
from tests.fixtures import tiny_trainer
# pylint: disable=g-importing-member,unused-import
# (test_training_callbacks and test_distribution read them from here)
from tests.fixtures.tiny_trainer import EMBEDDING_DIM
from tests.fixtures.tiny_trainer import ITEMS
from tests.fixtures.tiny_trainer import MODEL
from tests.fixtures.tiny_trainer import QUERIES
from tests.fixtures.tiny_trainer import TEXT
# pylint: enable=g-importing-member,unused-import


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  """A Transform output and `Split-train`/`Split-eval` transformed examples."""
  tmp = tmp_path_factory.mktemp("trainer")
  output, eval_rows = tiny_trainer.write_transformed(tmp)
  return tmp, output, eval_rows


def _run_fn(fn_args):
  """Runs `trainer.run_fn`; the `mmse.Ensemble` it exported the towers of."""
  exported = []
  export_towers_as_is = export.export_towers

  def export_towers(ensemble, *args):
    exported.append(ensemble)
    export_towers_as_is(ensemble, *args)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(trainer.export, "export_towers", export_towers)
    trainer.run_fn(fn_args)
  return exported[-1]


@pytest.fixture(scope="module")
def trained(transformed):
  """Runs `trainer.run_fn` as the TFX Trainer would.

  Returns:
    (serving model dir, the trained `mmse.Ensemble` `run_fn` handed to the
    exporter).
  """
  tmp, _, _ = transformed
  fn_args = tiny_trainer.fn_args(tmp, tmp / "serving", tmp / "run")
  return tmp / "serving", _run_fn(fn_args)


def _signature(path):
  return tf.saved_model.load(str(path)).signatures[
      serving_layout.SERVING_SIGNATURE]


def _item_inputs(ids):
  return {
      features.ITEM_ID: tf.constant(ids, tf.string),
      features.TITLE: tf.constant([ITEMS[i][0] for i in ids]),
      "brand": tf.constant([ITEMS[i][1] for i in ids]),
      "price": tf.constant([ITEMS[i][2] for i in ids], tf.float32),
  }


def _catalog():
  return _item_inputs(sorted(ITEMS))


def test_run_fn_exports_both_towers_with_the_contract_signatures(trained):
  trained, _ = trained
  assert os.listdir(trained.parent / "run")  # TensorBoard logs
  query_tower = _signature(trained / serving_layout.QUERY_TOWER)
  _, inputs = query_tower.structured_input_signature
  assert inputs == {"query": tf.TensorSpec([None], tf.string, name="query")}
  assert query_tower.structured_outputs["embedding"].shape.as_list() == [
      None, EMBEDDING_DIM]
  embeddings = query_tower(query=tf.constant(["Cordless drill!", "", "zzz"]))
  assert embeddings["embedding"].shape == (3, EMBEDDING_DIM)

  item_tower = _signature(trained / serving_layout.ITEM_TOWER)
  _, inputs = item_tower.structured_input_signature
  assert {n: s.dtype for n, s in inputs.items()} == {
      "item_id": tf.string, "title": tf.string, "brand": tf.string,
      "price": tf.float32}
  items = item_tower(**_catalog())["embedding"]
  assert items.shape == (len(ITEMS), EMBEDDING_DIM)
  assert np.isfinite(items.numpy()).all()


def test_run_fn_writes_the_towers_before_training_beside_them(trained):
  trained, _ = trained
  initial = serving_layout.initial_towers_dir(str(trained.parent))
  queries = tf.constant(["cordless drill", "garden hose"])
  embeddings = {}
  for name, parent in (("trained", str(trained)), ("initial", initial)):
    query_tower = _signature(os.path.join(parent, serving_layout.QUERY_TOWER))
    item_tower = _signature(os.path.join(parent, serving_layout.ITEM_TOWER))
    embeddings[name] = (query_tower(query=queries)["embedding"].numpy(),
                        item_tower(**_catalog())["embedding"].numpy())
  for trained_part, initial_part in zip(embeddings["trained"],
                                        embeddings["initial"]):
    assert trained_part.shape == initial_part.shape
    # Training moved the towers away from where they started.
    assert np.abs(trained_part - initial_part).max() > 1e-3


def test_retrieval_model_returns_exact_top_k(trained, tmp_path):
  trained, _ = trained
  items = _signature(trained / serving_layout.ITEM_TOWER)(
      **_catalog())["embedding"]
  ids = np.asarray(sorted(ITEMS), str)
  export.export_retrieval_model(
      str(trained / serving_layout.QUERY_TOWER), ids, items.numpy(),
      str(tmp_path / "retrieval"), k=100)
  retrieval = _signature(tmp_path / "retrieval")
  queries = tf.constant(["cordless drill", "paint roller"])
  result = retrieval(query=queries)
  assert result["item_ids"].dtype == tf.string
  assert result["item_ids"].shape == (2, len(ITEMS))  # k capped at N
  query_embeddings = _signature(trained / serving_layout.QUERY_TOWER)(
      query=queries)["embedding"].numpy()
  scores = query_embeddings @ items.numpy().T
  # Every id byte for byte as the catalogue has it.
  assert [[i.decode("utf-8") for i in row]
          for row in result["item_ids"].numpy().tolist()] == (
              ids[np.argsort(-scores, axis=1)].tolist())
  np.testing.assert_allclose(result["scores"], -np.sort(-scores, axis=1),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="another model"):
    export.export_retrieval_model(
        str(trained / serving_layout.QUERY_TOWER), ids,
        items.numpy()[:, :5], str(tmp_path / "bad"), k=3)


def test_exported_towers_reproduce_the_models_fused_score(transformed,
                                                          trained):
  _, _, data = transformed
  serving, ensemble = trained
  assert len(ensemble.members) == 1
  model = ensemble.members[0]

  batch = {k: tf.constant(np.stack([row[k] for row in data])) for k in data[0]}
  query_heads = model.query_tower(batch)
  slots = {k: tf.reshape(v, [-1] + v.shape[2:].as_list())
           for k, v in batch.items() if not k.startswith("query")}
  item_heads = model.item_tower(slots)
  expected = model.fusion(query_heads, item_heads).numpy()

  slates = tiny_trainer.slates()
  queries = _signature(serving / serving_layout.QUERY_TOWER)(
      query=tf.constant([s[features.QUERY][0] for s in slates]))["embedding"]
  items = _signature(serving / serving_layout.ITEM_TOWER)(**_item_inputs(
      [i.decode() for s in slates for i in s[features.ITEM_ID]]))["embedding"]
  np.testing.assert_allclose(tf.matmul(queries, items, transpose_b=True),
                             expected, rtol=1e-4, atol=1e-5)


def test_run_fn_serves_several_trainings_side_by_side(transformed, tmp_path,
                                                       caplog):
  root, _, data = transformed
  fn_args = tiny_trainer.fn_args(root, tmp_path / "serving", tmp_path / "run",
                                 model={"trainings": 2, "epochs": 1})
  with caplog.at_level(logging.INFO):
    ensemble = _run_fn(fn_args)
  assert "Training 2 of 2 (seed 1001)" in caplog.text
  assert {"training_1", "training_2"} <= set(os.listdir(tmp_path / "run"))
  first, second = ensemble.members
  assert (first.config.seed, second.config.seed) == (1, 1001)

  # The towers' vectors are the two models' side by side, so the served
  # score is the sum of the two models' fused scores.
  batch = {k: tf.constant(np.stack([row[k] for row in data])) for k in data[0]}
  slots = {k: tf.reshape(v, [-1] + v.shape[2:].as_list())
           for k, v in batch.items() if not k.startswith("query")}
  expected = sum(
      m.fusion(m.query_tower(batch), m.item_tower(slots)).numpy()
      for m in (first, second))
  slates = tiny_trainer.slates()
  queries = _signature(tmp_path / "serving" / serving_layout.QUERY_TOWER)(
      query=tf.constant([s[features.QUERY][0] for s in slates]))["embedding"]
  items = _signature(tmp_path / "serving" / serving_layout.ITEM_TOWER)(
      **_item_inputs([i.decode() for s in slates
                      for i in s[features.ITEM_ID]]))[
          "embedding"]
  assert queries.shape[1] == items.shape[1] == 2 * EMBEDDING_DIM
  np.testing.assert_allclose(tf.matmul(queries, items, transpose_b=True),
                             expected, rtol=1e-4, atol=1e-5)
  # Different seeds: different models, not one model twice.
  queries = queries.numpy()
  assert np.abs(queries[:, :EMBEDDING_DIM] -
                queries[:, EMBEDDING_DIM:]).max() > 1e-3


def test_run_fn_turns_arithmetic_rewrites_back_on_after_training(trained):
  # Off only while training (the second epoch needs it off); the teacher's
  # function, run before and after, crashes TensorFlow without it.
  del trained
  assert tf.config.optimizer.get_experimental_options()[
      "arithmetic_optimization"]
