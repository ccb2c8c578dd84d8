"""run_fn on a tiny transformed dataset, then the exported SavedModels."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils
from tfx.components.trainer import fn_args_utils
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from contracts import features
from contracts import serving_layout
from model import export
from model import preprocessing
from model import trainer

SLATE = 3
TEXT = {"max_query_tokens": 4, "max_title_tokens": 6, "max_query_trigrams": 12,
        "max_title_trigrams": 20, "trigram_buckets": 200, "vocab_size": 50,
        "vocab_min_frequency": 1, "item_id_min_frequency": 1}
MODEL = {"num_heads": 3, "head_dim": 4, "token_embedding_dim": 8,
         "hidden_dim": 16, "batch_size": 8, "eval_batch_size": 8, "epochs": 2,
         "learning_rate": 0.01}
EMBEDDING_DIM = 12
ITEMS = {  # item_id: (title, brand, price)
    101: ("Cordless Drill 20V", "dewalt", 99.0),
    102: ("Drill bit set, 1/2 in.", "dewalt", 19.5),
    103: ("Interior paint, white", "behr", 35.0),
    104: ("Paint roller", "", 8.0),
    105: ("Garden hose 50 ft", "flexi", 0.0),
    106: ("Hose nozzle", "flexi", 12.0),
}
QUERIES = {"cordless drill": (101, 102), "paint": (103, 104),
           "garden hose": (105, 106)}
RAW_SPEC = {
    features.QUERY: tf.io.FixedLenFeature([1], tf.string),
    features.ITEM_ID: tf.io.FixedLenFeature([SLATE], tf.int64),
    features.TITLE: tf.io.FixedLenFeature([SLATE], tf.string),
    features.STAGE: tf.io.FixedLenFeature([SLATE], tf.int64),
    "brand": tf.io.FixedLenFeature([SLATE], tf.string),
    "price": tf.io.FixedLenFeature([SLATE], tf.float32),
}


def _slates():
  """Per query: each item as the anchor, the other unclicked, one random."""
  slates = []
  others = list(QUERIES.values())
  for n, (query, group) in enumerate(QUERIES.items()):
    for anchor, context in (group, group[::-1]):
      random_item = others[(n + 1) % len(others)][0]
      ids = [anchor, context, random_item]
      slates.append({
          features.QUERY: [query.encode()],
          features.ITEM_ID: ids,
          features.TITLE: [ITEMS[i][0].encode() for i in ids],
          features.STAGE: [3, 1, 0],
          "brand": [ITEMS[i][1].encode() for i in ids],
          "price": [ITEMS[i][2] for i in ids],
      })
  return slates


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  """A Transform output and `Split-train`/`Split-eval` transformed examples."""
  tmp = tmp_path_factory.mktemp("trainer")
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(RAW_SPEC))
  slates = _slates()

  def preprocessing_fn(inputs):
    return preprocessing.preprocessing_fn(inputs, {"text": TEXT})

  with tft_beam.Context(temp_dir=str(tmp / "tmp")):
    (data, _), transform_fn = ((slates * 2, metadata)
                               | tft_beam.AnalyzeAndTransformDataset(
                                   preprocessing_fn))
    _ = transform_fn | tft_beam.WriteTransformFn(str(tmp / "transform"))
  metadata_io.write_metadata(
      metadata, str(tmp / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
  output = tft.TFTransformOutput(str(tmp / "transform"))
  coder = tft.coders.ExampleProtoCoder(output.transformed_metadata.schema)
  for split, rows in (("train", data), ("eval", data[:len(slates)])):
    os.makedirs(tmp / "examples" / f"Split-{split}")
    with tf.io.TFRecordWriter(
        str(tmp / "examples" / f"Split-{split}" / "data.gz"),
        options="GZIP") as writer:
      for row in rows:
        writer.write(coder.encode(row))
  return tmp, output, data[:len(slates)]


@pytest.fixture(scope="module")
def trained(transformed):
  """Runs `trainer.run_fn` as the TFX Trainer would.

  Returns:
    (serving model dir, the trained model `run_fn` handed to the exporter).
  """
  tmp, _, _ = transformed
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp / "examples")
  examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
  fn_args = fn_args_utils.FnArgs(
      train_files=[str(tmp / "examples" / "Split-train" / "*")],
      eval_files=[str(tmp / "examples" / "Split-eval" / "*")],
      transform_graph_path=str(tmp / "transform"),
      serving_model_dir=str(tmp / "serving"),
      model_run_dir=str(tmp / "run"),
      custom_config={"model": MODEL, "text": TEXT},
      data_accessor=fn_args_utils.DataAccessor(
          tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
              [examples], []),
          record_batch_factory=None,
          data_view_decode_fn=None))
  exported = []
  export_towers_as_is = export.export_towers

  def export_towers(model, *args):
    exported.append(model)
    export_towers_as_is(model, *args)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(trainer.export, "export_towers", export_towers)
    trainer.run_fn(fn_args)
  return tmp / "serving", exported[0]


def _signature(path):
  return tf.saved_model.load(str(path)).signatures[
      serving_layout.SERVING_SIGNATURE]


def _item_inputs(ids):
  return {
      features.ITEM_ID: tf.constant(ids, tf.int64),
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
      "item_id": tf.int64, "title": tf.string, "brand": tf.string,
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
  ids = np.asarray(sorted(ITEMS), np.int64)
  export.export_retrieval_model(
      str(trained / serving_layout.QUERY_TOWER), ids, items.numpy(),
      str(tmp_path / "retrieval"), k=100)
  retrieval = _signature(tmp_path / "retrieval")
  queries = tf.constant(["cordless drill", "paint roller"])
  result = retrieval(query=queries)
  assert result["item_ids"].dtype == tf.int64
  assert result["item_ids"].shape == (2, len(ITEMS))  # k capped at N
  query_embeddings = _signature(trained / serving_layout.QUERY_TOWER)(
      query=queries)["embedding"].numpy()
  scores = query_embeddings @ items.numpy().T
  np.testing.assert_array_equal(result["item_ids"],
                                ids[np.argsort(-scores, axis=1)])
  np.testing.assert_allclose(result["scores"], -np.sort(-scores, axis=1),
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="another model"):
    export.export_retrieval_model(
        str(trained / serving_layout.QUERY_TOWER), ids,
        items.numpy()[:, :5], str(tmp_path / "bad"), k=3)


def test_exported_towers_reproduce_the_models_fused_score(transformed,
                                                          trained):
  _, _, data = transformed
  serving, model = trained

  batch = {k: tf.constant(np.stack([row[k] for row in data])) for k in data[0]}
  query_heads = model.query_tower(batch)
  slots = {k: tf.reshape(v, [-1] + v.shape[2:].as_list())
           for k, v in batch.items() if not k.startswith("query")}
  item_heads = model.item_tower(slots)
  expected = model.fusion(query_heads, item_heads).numpy()

  slates = _slates()
  queries = _signature(serving / serving_layout.QUERY_TOWER)(
      query=tf.constant([s[features.QUERY][0] for s in slates]))["embedding"]
  items = _signature(serving / serving_layout.ITEM_TOWER)(**_item_inputs(
      [i for s in slates for i in s[features.ITEM_ID]]))["embedding"]
  np.testing.assert_allclose(tf.matmul(queries, items, transpose_b=True),
                             expected, rtol=1e-4, atol=1e-5)
