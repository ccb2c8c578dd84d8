"""Loaded versions: signatures from saved_model.pb, retrieval via its index."""
import asyncio
import concurrent.futures
import os

import numpy as np
import pytest

from contracts import features
from contracts import serving_layout
from retrieval import ann
from serving import servables

RETRIEVAL_VERSION = 2  # After the towers' version 1 (conftest).


def _retrieval_dir(serving_dir):
  return os.path.join(serving_dir, serving_layout.RETRIEVAL,
                      str(RETRIEVAL_VERSION))


def _load_retrieval(serving_dir, base_paths):
  load = servables.make_loader(base_paths, servables.RunOptions())
  return load(serving_layout.RETRIEVAL, RETRIEVAL_VERSION,
              _retrieval_dir(serving_dir))


def _retrieve(servable, query):
  return asyncio.run(servable.run(
      serving_layout.SERVING_SIGNATURE,
      {serving_layout.QUERY_INPUT: np.asarray([query], dtype=object)}, 1))


@pytest.fixture
def base_paths(serving_dir):
  return {name: os.path.join(serving_dir, name)
          for name in serving_layout.SERVED_MODELS}


def test_signature_defs_are_read_without_the_init_op(serving_dir):
  defs = servables.read_signature_defs(_retrieval_dir(serving_dir))
  assert list(defs) == [serving_layout.SERVING_SIGNATURE]
  signature = defs[serving_layout.SERVING_SIGNATURE]
  assert list(signature.inputs) == [serving_layout.QUERY_INPUT]
  assert set(signature.outputs) == {serving_layout.ITEM_IDS_OUTPUT,
                                    serving_layout.SCORES_OUTPUT}


def test_paired_tower_is_found_by_fingerprint(serving_dir, base_paths):
  index = ann.load(serving_layout.index_dir(_retrieval_dir(serving_dir)))
  finder = servables.PairedTowerFinder(base_paths[serving_layout.QUERY_TOWER])
  assert finder.find(index.query_tower_fingerprint,
                     RETRIEVAL_VERSION) == serving_layout.latest_version_dir(
                         serving_dir, serving_layout.QUERY_TOWER)
  assert finder.find("fingerprint of another model", 1) is None


def test_retrieval_answers_through_its_index(serving_dir, base_paths):
  servable = _load_retrieval(serving_dir, base_paths)
  assert "index over 8 items" in servable.description
  outputs = _retrieve(servable, "led light bulb")
  assert outputs[serving_layout.ITEM_IDS_OUTPUT][0, 0] == b"103"
  np.testing.assert_allclose(outputs[serving_layout.SCORES_OUTPUT][0, 0], 1.0,
                             atol=1e-5)
  assert outputs[servables.TITLES_OUTPUT][0, 0] == b"led light bulb"
  outputs_declared = servable.signature_defs[
      serving_layout.SERVING_SIGNATURE].outputs
  assert servables.TITLES_OUTPUT in outputs_declared


def test_retrieval_without_its_query_tower_is_served_exactly(
    serving_dir, base_paths):
  del base_paths[serving_layout.QUERY_TOWER]
  servable = _load_retrieval(serving_dir, base_paths)
  assert servable.description == "SavedModel"
  outputs = _retrieve(servable, "led light bulb")
  assert set(outputs) == {serving_layout.ITEM_IDS_OUTPUT,
                          serving_layout.SCORES_OUTPUT}
  assert outputs[serving_layout.ITEM_IDS_OUTPUT][0, 0] == b"103"
  np.testing.assert_allclose(outputs[serving_layout.SCORES_OUTPUT][0, 0], 1.0,
                             atol=1e-5)


@pytest.mark.parametrize("model", serving_layout.SERVED_MODELS)
def test_session_runner_answers_as_the_loaded_signature(serving_dir, model):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = serving_layout.latest_version_dir(serving_dir, model)
  signature = tf.saved_model.load(path).signatures[
      serving_layout.SERVING_SIGNATURE]
  titles = ["cordless drill", "led light bulb", "a title no item has"]
  inputs = {features.ITEM_ID: np.array([b"0100", b"103", b"7"], dtype=object),
            features.TITLE: np.array(titles, dtype=object),
            serving_layout.QUERY_INPUT: np.array(titles, dtype=object)}
  _, specs = signature.structured_input_signature
  inputs = {name: inputs[name] for name in specs}
  expected = {name: value.numpy() for name, value in signature(**{
      name: tf.constant(value, dtype=specs[name].dtype)
      for name, value in inputs.items()}).items()}

  outputs = servables.SessionModel(path, intra_op_threads=1).runner(
      serving_layout.SERVING_SIGNATURE)(inputs)

  assert set(outputs) == set(expected)
  for name, value in expected.items():
    assert outputs[name].shape == value.shape
    if value.dtype == object:
      assert outputs[name].tolist() == value.tolist()
    else:
      np.testing.assert_allclose(outputs[name], value, atol=1e-6)


def test_a_loaded_model_stays_shared_while_a_servable_uses_it(
    serving_dir, tmp_path):
  import gc  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  # A copy no other test has loaded (servers of other tests hold theirs).
  path = str(tmp_path / "query_tower" / "1")
  shutil.copytree(serving_layout.latest_version_dir(
      serving_dir, serving_layout.QUERY_TOWER), path)
  path = os.path.realpath(path)
  loaded = servables._CACHE._loaded  # pylint: disable=protected-access
  with concurrent.futures.ThreadPoolExecutor(1) as executor:
    servable = servables.load_saved_model(serving_layout.QUERY_TOWER, 1,
                                          path, servables.RunOptions(),
                                          executor)
  gc.collect()
  assert path in loaded  # Held by the servable's runners.
  del servable
  gc.collect()
  assert path not in loaded


def test_servables_of_one_loaded_model_share_its_runners(serving_dir):
  # A new callable would hold the session's lock while the served one runs.
  path = serving_layout.latest_version_dir(serving_dir,
                                           serving_layout.QUERY_TOWER)
  model = servables.SessionModel(path, intra_op_threads=1)
  first = model.runner(serving_layout.SERVING_SIGNATURE)
  assert model.runner(serving_layout.SERVING_SIGNATURE) is first
