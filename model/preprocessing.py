"""TF Transform preprocessing shared by training and both serving towers.

One text function turns queries and titles into the same features: word
tokens looked up in one shared vocabulary (a query word and a title word get
the same id, so the towers start in one text space) and hashed character
trigrams of each word (sub-word signal that survives misspellings and words
the vocabulary has never seen). Outputs are padded or truncated to fixed
lengths so the transformed examples parse as dense tensors, with id 0 kept for
padding everywhere.

Training traces `preprocessing_fn` over mined slates: `query` [B] and list
features [B, L]. Serving has only queries or only items, so
`transform_queries` and `transform_items` feed the same Transform graph with
what they have: TF Transform drops every output that depends on an input that
was not fed, and item features are folded into the [., L] slate shape the
graph was traced with.
"""
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from contracts import config_io
from contracts import features
from contracts import text
from model import config as model_config

# --- Transformed feature names. --------------------------------------------
QUERY_TOKENS = "query_tokens"  # int64 [B, max_query_tokens]
QUERY_TRIGRAMS = "query_trigrams"  # int64 [B, max_query_trigrams]
# Fingerprint of the normalised query: tells the retrieval loss which in-batch
# examples share a query (their positives are not negatives for each other).
QUERY_KEY = "query_key"  # int64 [B]
TITLE_TOKENS = "title_tokens"  # int64 [B, L, max_title_tokens]
TITLE_TRIGRAMS = "title_trigrams"  # int64 [B, L, max_title_trigrams]
ITEM_INDEX = "item_index"  # int64 [B, L], id-embedding row
ITEM_ID = features.ITEM_ID  # string [B, L], the catalogue's ids, passed through
# Fingerprint of the item id: tells the retrieval loss which in-batch slots
# hold the same item (accidental hits), with int64 compares.
ITEM_KEY = "item_key"  # int64 [B, L]
STAGE = features.STAGE  # int64 [B, L], passed through
PRICE = "log_price"  # float32 [B, L], z-scored log price, 0 when unknown


def side_feature_index(name: str) -> str:
  """Transformed name of a categorical side feature (`brand_index`, ...)."""
  return f"{name}_index"


QUERY_FEATURES = (QUERY_TOKENS, QUERY_TRIGRAMS)

# --- Vocabulary names (assets of the Transform graph). ---------------------
TOKEN_VOCABULARY = "tokens"
ITEM_VOCABULARY = "item_id"
# Out-of-vocabulary buckets of the item-id and side-feature vocabularies.
CATEGORICAL_OOV_BUCKETS = 1

_TRIGRAM_MARK = "#"  # Marks word boundaries, so "#dr" differs from "dr#".


def word_trigrams(tokens: tf.RaggedTensor) -> tf.RaggedTensor:
  """Character trigrams of each word, boundary-marked, in word order.

  Args:
    tokens: ragged words, [..., None].

  Returns:
    Ragged trigrams [..., None]: "#drill#" gives "#dr", "dri", "ril", "ill",
    "ll#"; a one-letter word still gives one trigram ("#a#").
  """
  marked = _TRIGRAM_MARK + tokens.flat_values + _TRIGRAM_MARK
  chars = tf.strings.unicode_split(marked, "UTF-8", errors="replace")
  trigrams = tf.strings.ngrams(chars, 3, separator="")
  return tokens.with_flat_values(trigrams).merge_dims(-2, -1)


def _padded(ids: tf.RaggedTensor, shape) -> tf.Tensor:
  """Ragged ids (0 is padding) as a dense tensor, truncated to `shape`."""
  return ids.to_tensor(default_value=0, shape=shape)


def _token_ids(tokens: tf.RaggedTensor, vocabulary,
               oov_buckets: int) -> tf.RaggedTensor:
  ids = tft.apply_vocabulary(
      tokens.flat_values, vocabulary, num_oov_buckets=oov_buckets)
  return tokens.with_flat_values(ids + 1)


def _trigram_ids(trigrams: tf.RaggedTensor, buckets: int) -> tf.RaggedTensor:
  return trigrams.with_flat_values(
      tf.strings.to_hash_bucket_fast(trigrams.flat_values, buckets) + 1)


def _query_column(inputs) -> tf.Tensor:
  query = inputs[features.QUERY]
  if not isinstance(query, tf.Tensor) or query.shape.rank not in (1, 2) or (
      query.shape.rank == 2 and query.shape[1] != 1):
    raise ValueError(
        f"`{features.QUERY}` must be a dense string feature with one value "
        f"per example (a fixed-shape schema), got {query!r}")
  return tf.reshape(query, [-1])


def _slate_column(inputs, name: str) -> tf.Tensor:
  value = inputs[name]
  if (not isinstance(value, tf.Tensor) or value.shape.rank != 2 or
      value.shape[1] is None):
    raise ValueError(
        f"Slate feature `{name}` must be dense [batch, L] with a fixed L; "
        f"infer the schema with fixed shapes (SchemaGen "
        f"infer_feature_shape=True). Got {value!r}")
  return value


def preprocessing_fn(inputs: Mapping[str, Any],
                     custom_config: Optional[Dict[str, Any]] = None):
  """TF Transform entry point over mined slates.

  Args:
    inputs: raw features of the mined-slates contract: `query` [B] (or
      [B, 1]); `item_id`, `title`, `stage` and optional side features [B, L].
    custom_config: {"text": dataclasses.asdict(TextConfig)}; missing keys take
      the defaults.

  Returns:
    Dense transformed features; see the names at the top of this module. Each
    item output depends on item inputs only (never on `stage` or `query`), so
    serving can transform items alone.
  """
  config = config_io.from_dict(model_config.TextConfig,
                              (custom_config or {}).get("text"))
  query = _query_column(inputs)
  title = _slate_column(inputs, features.TITLE)
  item_id = _slate_column(inputs, features.ITEM_ID)
  stage = _slate_column(inputs, features.STAGE)
  slate_size = title.shape[1]
  # Statistics come from real slots only; padding would skew them.
  real_slots = stage != features.Stage.PADDING

  query_words = text.words_tensor(query)
  title_words = text.words_tensor(title)
  token_vocabulary = tft.vocabulary(
      tf.concat([query_words.flat_values, title_words.flat_values], axis=0),
      top_k=config.vocab_size,
      frequency_threshold=config.vocab_min_frequency,
      vocab_filename=TOKEN_VOCABULARY)

  outputs = {
      QUERY_KEY: tf.strings.to_hash_bucket_fast(
          tf.strings.reduce_join(query_words, axis=-1, separator=" "),
          tf.int64.max),
      QUERY_TOKENS: _padded(
          _token_ids(query_words, token_vocabulary, config.oov_buckets),
          [None, config.max_query_tokens]),
      QUERY_TRIGRAMS: _padded(
          _trigram_ids(word_trigrams(query_words), config.trigram_buckets),
          [None, config.max_query_trigrams]),
      TITLE_TOKENS: _padded(
          _token_ids(title_words, token_vocabulary, config.oov_buckets),
          [None, slate_size, config.max_title_tokens]),
      TITLE_TRIGRAMS: _padded(
          _trigram_ids(word_trigrams(title_words), config.trigram_buckets),
          [None, slate_size, config.max_title_trigrams]),
      ITEM_ID: item_id,
      ITEM_KEY: tf.strings.to_hash_bucket_fast(item_id, tf.int64.max),
      STAGE: stage,
  }
  item_vocabulary = tft.vocabulary(
      tf.boolean_mask(item_id, real_slots),
      top_k=config.item_id_vocab_size,
      frequency_threshold=config.item_id_min_frequency,
      vocab_filename=ITEM_VOCABULARY)
  outputs[ITEM_INDEX] = tft.apply_vocabulary(
      item_id, item_vocabulary,
      num_oov_buckets=CATEGORICAL_OOV_BUCKETS) + 1

  for name, (kind, _) in features.ITEM_SIDE_FEATURES.items():
    if name not in inputs:
      continue
    value = _slate_column(inputs, name)
    if kind is float:
      outputs[PRICE] = _log_price(value, real_slots)
    else:
      outputs[side_feature_index(name)] = _categorical_ids(
          value, real_slots, name, config)
  return outputs


def _categorical_ids(value, real_slots, name, config):
  """Vocabulary ids + 1 of a side feature; 0 for an empty value."""
  vocabulary = tft.vocabulary(
      tf.boolean_mask(value, real_slots & (value != "")),
      frequency_threshold=config.vocab_min_frequency,
      vocab_filename=name)
  ids = tft.apply_vocabulary(
      value, vocabulary, num_oov_buckets=CATEGORICAL_OOV_BUCKETS) + 1
  return tf.where(value == "", tf.zeros_like(ids), ids)


def _log_price(price, real_slots):
  """z-scored log price over the known prices; 0 (the mean) when unknown."""
  known = price > 0
  log_price = tf.math.log1p(tf.maximum(price, 0.0))
  observed = tf.boolean_mask(log_price, real_slots & known)
  mean = tft.mean(observed)
  std = tf.sqrt(tft.var(observed))
  # Slates without a single known price give NaN statistics.
  mean = tf.where(tf.math.is_nan(mean), 0.0, mean)
  std = tf.where(tf.math.is_nan(std), 1.0, std)
  scaled = (log_price - mean) / tf.maximum(std, 1e-6)
  return tf.where(known, scaled, tf.zeros_like(scaled))


# --- Serving: the same graph over queries alone or items alone. ------------


def _raw_default(spec: tf.io.FixedLenFeature):
  if spec.default_value is not None:
    return tf.reshape(tf.constant(spec.default_value, spec.dtype), [-1])[0]
  return tf.constant("" if spec.dtype == tf.string else 0, spec.dtype)


def _fixed_spec(raw_feature_spec, name) -> tf.io.FixedLenFeature:
  spec = raw_feature_spec.get(name)
  if not isinstance(spec, tf.io.FixedLenFeature):
    raise ValueError(
        f"The Transform graph's raw feature `{name}` must be a FixedLenFeature,"
        f" got {spec!r}")
  return spec


def transform_queries(tft_layer, raw_feature_spec,
                      queries: tf.Tensor) -> Dict[str, tf.Tensor]:
  """Applies the Transform graph to a batch of raw queries.

  Args:
    tft_layer: `TFTransformOutput.transform_features_layer()`.
    raw_feature_spec: `TFTransformOutput.raw_feature_spec()`.
    queries: tf.string [N].

  Returns:
    The query features (`QUERY_FEATURES`, `QUERY_KEY`), [N, ...] each.
  """
  spec = _fixed_spec(raw_feature_spec, features.QUERY)
  raw = tf.reshape(tf.cast(queries, spec.dtype), [-1] + list(spec.shape))
  return tft_layer({features.QUERY: raw})


def item_raw_features(raw_feature_spec) -> Dict[str, tf.DType]:
  """Item inputs of the Transform graph: item_id, title, side features."""
  names = [features.ITEM_ID, features.TITLE] + [
      n for n in features.ITEM_SIDE_FEATURES if n in raw_feature_spec]
  return {n: _fixed_spec(raw_feature_spec, n).dtype for n in names}


def transform_items(tft_layer, raw_feature_spec,
                    items: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """Applies the Transform graph to a batch of raw items.

  The graph was traced on slates of L items, so the N items are padded to a
  multiple of L, folded into [ceil(N / L), L] slates, transformed, unfolded
  and sliced back to N. Every item output is computed slot by slot, so an
  item's features do not depend on its neighbours.

  Args:
    tft_layer: `TFTransformOutput.transform_features_layer()`.
    raw_feature_spec: `TFTransformOutput.raw_feature_spec()`.
    items: every key of `item_raw_features(raw_feature_spec)`, [N] each.

  Returns:
    The item features (titles, item ids, side features), [N, ...] each.
  """
  names = item_raw_features(raw_feature_spec)
  missing = set(names) - set(items)
  if missing:
    raise ValueError(f"Item features {sorted(missing)} are required")
  slate_size = _fixed_spec(raw_feature_spec, features.TITLE).shape[0]
  count = tf.shape(items[features.TITLE])[0]
  slates = (count + slate_size - 1) // slate_size
  padding = slates * slate_size - count
  raw = {}
  for name, dtype in names.items():
    spec = raw_feature_spec[name]
    value = tf.reshape(tf.cast(items[name], dtype), [-1])
    value = tf.concat([value, tf.fill([padding], _raw_default(spec))], 0)
    raw[name] = tf.reshape(value, [slates, slate_size])
  transformed = tft_layer(raw)
  return {
      name: tf.reshape(value, [-1] + value.shape[2:].as_list())[:count]
      for name, value in transformed.items()
  }


def id_feature_sizes(tf_transform_output, text_config) -> Dict[str, int]:
  """Distinct ids of each id feature (padding 0 included): embedding rows.

  Args:
    tf_transform_output: the `TFTransformOutput` the model trains on.
    text_config: the `TextConfig` the Transform ran with.

  Returns:
    {transformed feature name: number of ids} for the token, trigram and
    item-index features and every categorical side feature present.
  """
  transformed = tf_transform_output.transformed_feature_spec()
  tokens = (tf_transform_output.vocabulary_size_by_name(TOKEN_VOCABULARY) +
            text_config.oov_buckets + 1)
  trigrams = text_config.trigram_buckets + 1
  sizes = {
      QUERY_TOKENS: tokens, TITLE_TOKENS: tokens,
      QUERY_TRIGRAMS: trigrams, TITLE_TRIGRAMS: trigrams,
      ITEM_INDEX: (tf_transform_output.vocabulary_size_by_name(ITEM_VOCABULARY)
                   + CATEGORICAL_OOV_BUCKETS + 1),
  }
  for name in features.ITEM_SIDE_FEATURES:
    if side_feature_index(name) in transformed:
      sizes[side_feature_index(name)] = (
          tf_transform_output.vocabulary_size_by_name(name) +
          CATEGORICAL_OOV_BUCKETS + 1)
  return sizes
