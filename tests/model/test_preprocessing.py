"""Transform over a handful of slates, and the serving path over the same text."""
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io
from tensorflow_transform.tf_metadata import schema_utils

from contracts import features
from contracts import text
from model import preprocessing

SLATE = 3
TEXT = {
    "max_query_tokens": 4,
    "max_title_tokens": 5,
    "max_query_trigrams": 8,
    "max_title_trigrams": 12,
    "trigram_buckets": 1000,
    "vocab_size": 100,
    "vocab_min_frequency": 2,
    "oov_buckets": 2,
    "item_id_min_frequency": 1,
}
RAW_SPEC = {
    features.QUERY: tf.io.FixedLenFeature([1], tf.string),
    features.ITEM_ID: tf.io.FixedLenFeature([SLATE], tf.string),
    features.TITLE: tf.io.FixedLenFeature([SLATE], tf.string),
    features.STAGE: tf.io.FixedLenFeature([SLATE], tf.int64),
    "brand": tf.io.FixedLenFeature([SLATE], tf.string),
    "price": tf.io.FixedLenFeature([SLATE], tf.float32),
}
SLATES = [
    {"query": [b"Cordless DRILL"], "item_id": [b"SKU-11", b"012", b"13"],
     "title": [b"Cordless Drill 20V, 1/2 in.", b"Drill bit set", b"Paint"],
     "stage": [3, 1, 0], "brand": [b"dewalt", b"", b"behr"],
     "price": [99.0, 10.0, 0.0]},
    {"query": [b"drill  bits"], "item_id": [b"012", b"SKU-11", b""],
     "title": [b"Drill bit set", b"Cordless Drill 20V, 1/2 in.", b""],
     "stage": [2, 1, -1], "brand": [b"", b"dewalt", b""],
     "price": [10.0, 99.0, 0.0]},
]


def test_word_trigrams():
  trigrams = preprocessing.word_trigrams(
      text.words_tensor(tf.constant(["Drill a"]))).to_list()
  assert trigrams == [[b"#dr", b"dri", b"ril", b"ill", b"ll#", b"#a#"]]


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  """Runs AnalyzeAndTransformDataset; returns outputs and the transform dir."""
  tmp = tmp_path_factory.mktemp("tft")
  metadata = dataset_metadata.DatasetMetadata(
      schema_utils.schema_from_feature_spec(RAW_SPEC))
  fn = functools.partial(preprocessing.preprocessing_fn,
                         custom_config={"text": TEXT})
  with tft_beam.Context(temp_dir=str(tmp / "tmp")):
    (data, _), transform_fn = (
        (SLATES, metadata) | tft_beam.AnalyzeAndTransformDataset(fn))
    _ = transform_fn | tft_beam.WriteTransformFn(str(tmp / "transform"))
  # TFX's Transform writes the raw schema beside the graph; serving reads it.
  metadata_io.write_metadata(
      metadata, str(tmp / "transform" / tft.TFTransformOutput.RAW_METADATA_DIR))
  return data, tft.TFTransformOutput(str(tmp / "transform"))


def _vocabulary(output):
  return [t.decode() for t in output.vocabulary_by_name(
      preprocessing.TOKEN_VOCABULARY)]


def test_shared_token_vocabulary_and_ids(transformed):
  data, output = transformed
  vocabulary = _vocabulary(output)
  # Frequency >= 2 over query and title tokens together: "drill" occurs in
  # both queries and four titles; "dewalt" is a brand, not text.
  assert set(vocabulary) == {"drill", "cordless", "20v", "1/2", "in", "bit",
                             "set"}
  ids = {t: i + 1 for i, t in enumerate(vocabulary)}
  oov = range(len(vocabulary) + 1, len(vocabulary) + 1 + TEXT["oov_buckets"])
  first = data[0]
  assert list(first[preprocessing.QUERY_TOKENS]) == [
      ids["cordless"], ids["drill"], 0, 0]
  title_tokens = np.asarray(first[preprocessing.TITLE_TOKENS]).reshape(
      SLATE, TEXT["max_title_tokens"])
  # Truncated to 5 tokens; the same word has the same id in query and title.
  assert list(title_tokens[0]) == [ids[t] for t in
                                   ("cordless", "drill", "20v", "1/2", "in")]
  assert title_tokens[2][0] in oov and list(title_tokens[2][1:]) == [0] * 4
  second = data[1]
  assert second[preprocessing.QUERY_TOKENS][1] in oov  # "bits"
  padding = np.asarray(second[preprocessing.TITLE_TOKENS]).reshape(SLATE, -1)
  assert not padding[2].any()


def test_trigrams_are_hashed_per_word(transformed):
  data, _ = transformed
  expected = tf.strings.to_hash_bucket_fast(
      ["#co", "cor", "ord", "rdl", "dle", "les", "ess", "ss#"],
      TEXT["trigram_buckets"]).numpy() + 1
  assert list(data[0][preprocessing.QUERY_TRIGRAMS]) == list(expected)


def test_item_and_side_features(transformed):
  data, output = transformed
  first, second = data
  assert list(first[preprocessing.STAGE]) == [3, 1, 0]
  assert list(second[preprocessing.ITEM_ID]) == [b"012", b"SKU-11", b""]
  # Equal ids, equal keys: the retrieval loss finds accidental hits by key.
  first_keys = list(first[preprocessing.ITEM_KEY])
  second_keys = list(second[preprocessing.ITEM_KEY])
  assert second_keys[:2] == [first_keys[1], first_keys[0]]
  assert len(set(first_keys)) == 3
  item_vocabulary = output.vocabulary_by_name(preprocessing.ITEM_VOCABULARY)
  # Padding slots do not enter the id vocabulary.
  assert sorted(item_vocabulary) == [b"012", b"13", b"SKU-11"]
  index = {i: n + 1 for n, i in enumerate(item_vocabulary)}
  assert list(first[preprocessing.ITEM_INDEX]) == [
      index[b"SKU-11"], index[b"012"], index[b"13"]]
  brand = preprocessing.side_feature_index("brand")
  assert first[brand][1] == 0 and first[brand][0] == second[brand][1] > 0
  log_prices = np.log1p([99.0, 10.0, 10.0, 99.0])
  z = (np.log1p(99.0) - log_prices.mean()) / log_prices.std()
  np.testing.assert_allclose(first[preprocessing.PRICE], [z, -z, 0.0],
                             rtol=1e-5, atol=1e-5)
  assert first[preprocessing.QUERY_KEY] != second[preprocessing.QUERY_KEY]


def test_serving_transform_matches_training(transformed):
  data, output = transformed
  layer = output.transform_features_layer()
  raw_spec = output.raw_feature_spec()
  queries = preprocessing.transform_queries(
      layer, raw_spec, tf.constant([s["query"][0] for s in SLATES]))
  assert set(queries) == {preprocessing.QUERY_TOKENS,
                          preprocessing.QUERY_TRIGRAMS,
                          preprocessing.QUERY_KEY}
  for name, value in queries.items():
    np.testing.assert_array_equal(value.numpy(), [d[name] for d in data])

  # Five items: not a multiple of the slate size, so one slate is padded.
  slots = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
  items = {name: tf.constant([SLATES[e][name][s] for e, s in slots])
           for name in (features.ITEM_ID, features.TITLE, "brand", "price")}
  item_features = preprocessing.transform_items(layer, raw_spec, items)
  assert preprocessing.QUERY_TOKENS not in item_features
  assert preprocessing.STAGE not in item_features
  for name, value in item_features.items():
    expected = [np.asarray(data[e][name]).reshape(SLATE, -1)[s]
                for e, s in slots]
    got = value.numpy().reshape(len(slots), -1)
    if got.dtype == object:  # The ids, passed through as text.
      np.testing.assert_array_equal(got, expected, err_msg=name)
    else:
      np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6,
                                 err_msg=name)


def test_variable_length_slates_are_rejected():
  inputs = {
      features.QUERY: tf.constant(["q"]),
      features.TITLE: tf.sparse.from_dense(tf.constant([["a", "b"]])),
      features.ITEM_ID: tf.constant([["1", "2"]]),
      features.STAGE: tf.constant([[3, 0]], tf.int64),
  }
  with pytest.raises(ValueError, match="infer_feature_shape"):
    preprocessing.preprocessing_fn(inputs)
