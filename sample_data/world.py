"""The simulated shop's world: catalogue, queries, grades and behaviour.

Samples items and queries from sample_data/templates.py, grades every
(query, item) pair, and turns grades into ranked pages, clicks, carts and
orders (the click model), spoiled with a little dirt; all numpy, no files.
"""
import dataclasses
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

from contracts import features
from contracts import text as text_rule
from sample_data.templates import EVERYDAY_NAME_SHARE
from sample_data.templates import EVERYDAY_NAMES
from sample_data.templates import PRODUCT_TYPES
from sample_data.templates import ProductType

# --- Behaviour and log constants ------------------------------------------
FIRST_ITEM_ID = 100001
LOG_START_TIME = 1767225600  # 2026-01-01 00:00:00 UTC, as the benchmark.
LOG_DAYS = 14
# Grades from attribute overlap (before rater noise): the right product type
# starts at 3 and loses this much per attribute or brand the query names and
# the item lacks; a different type of the same category is barely relevant.
MISMATCH_PENALTY = 0.6
SAME_TYPE_FLOOR = 1.6
RELATED_BASE, RELATED_PER_MATCH, RELATED_CAP = 1.3, 0.15, 1.8
NUM_RATERS, RATER_NOISE = 3, 0.35
# The ranker sees grade + per-item bias + per-request noise, then injects
# random catalogue items into some slots (ads, exploration, bad matches).
RANKER_NOISE, ITEM_BIAS_NOISE, INJECTED_SHARE = 0.6, 0.25, 0.15
POSITION_BIAS_EXPONENT = 0.9
DIRT_KINDS = ("empty_query", "unknown_item", "order_without_click", "duplicate")
# Candidates judged per held-out query: relevant, partly relevant, random.
JUDGED_RELEVANT, JUDGED_PARTIAL, JUDGED_RANDOM = 8, 4, 3

# --- Catalogue ------------------------------------------------------------


def _typed(title: str) -> str:
  """How a person types an attribute: normalised words, no leading filler."""
  return re.sub(r"^(in|with) ", "", text_rule.canonical(title))


def _parse_value(value: str) -> Tuple[str, Tuple[str, ...]]:
  """`"Title|typed|typed"` -> (title, typed forms)."""
  title, *forms = value.split("|")
  return title, tuple(forms) if forms else (_typed(title),)


@dataclasses.dataclass
class Catalog:
  """Items as parallel arrays plus the vocabularies their codes index.

  Attribute codes are shared by all product types: `attribute_keys[slot]`
  lists each value's first typed form, so relevance compares codes.
  """
  item_ids: np.ndarray  # int64 [N]
  titles: List[str]
  type_index: np.ndarray  # int [N] into PRODUCT_TYPES
  brand_index: np.ndarray  # int [N] into brands; -1 = no brand
  attributes: np.ndarray  # int [N, num slots]; -1 = attribute absent
  prices: np.ndarray  # float [N]
  categories: np.ndarray  # str [N], the product type's category
  slot_names: List[str]
  attribute_keys: List[List[str]]
  brands: List[Tuple[str, Tuple[str, ...]]]  # (title, typed forms)


def _vocabularies():
  """Slot names, per-slot value keys and brands of all the templates."""
  slot_names, keys, brands = [], [], []
  for product in PRODUCT_TYPES:
    for slot, _, slot_values in product.slots:
      if slot not in slot_names:
        slot_names.append(slot)
        keys.append([])
      known = keys[slot_names.index(slot)]
      for value in slot_values:
        key = _parse_value(value)[1][0]
        if value and key not in known:
          known.append(key)
    for brand in product.brands:
      parsed = _parse_value(brand)
      if parsed not in brands:
        brands.append(parsed)
  return slot_names, keys, brands


def _typed_forms(product: ProductType, slot: str, key: str) -> Tuple[str, ...]:
  """How people type the value of `slot` whose key is `key` for `product`."""
  values = next(values for name, _, values in product.slots if name == slot)
  return next(
      forms for _, forms in map(_parse_value, values) if forms[0] == key)


def _price(rng: np.random.Generator, low: float, high: float) -> float:
  """Log-uniform price with a shop-like ending (.97 or .00)."""
  dollars = int(np.exp(rng.uniform(np.log(low), np.log(high))))
  return float(dollars) + (0.97 if rng.random() < 0.7 else 0.0)


def build_catalog(rng: np.random.Generator, num_items: int) -> Catalog:
  """Samples `num_items` products from the templates, titles mostly distinct.

  Item ids start at FIRST_ITEM_ID with random gaps, as a real catalogue
  where products were delisted, so code never relies on dense ids.
  """
  slot_names, keys, brands = _vocabularies()
  brand_titles = [b[0] for b in brands]
  titles, type_index, brand_index, attributes, prices = [], [], [], [], []
  seen = set()
  for _ in range(num_items):
    # A few tries for a fresh title; a rare repeat is as real shops have.
    for _ in range(20):
      t = int(rng.integers(len(PRODUCT_TYPES)))
      product = PRODUCT_TYPES[t]
      brand = ""
      if product.brands and rng.random() >= product.unbranded_share:
        brand = product.brands[rng.integers(len(product.brands))]
        brand = _parse_value(brand)[0]
      codes = np.full(len(slot_names), -1)
      pre, post = [], []
      for slot, where, slot_values in product.slots:
        value = slot_values[rng.integers(len(slot_values))]
        s = slot_names.index(slot)
        if value:
          text, forms = _parse_value(value)
          codes[s] = keys[s].index(forms[0])
          (pre if where == "pre" else post).append(text)
      title = " ".join(([brand] if brand else []) + pre + [product.name] + post)
      if title not in seen:
        break
    seen.add(title)
    titles.append(title)
    type_index.append(t)
    brand_index.append(brand_titles.index(brand) if brand else -1)
    attributes.append(codes)
    prices.append(_price(rng, *product.price_range))
  gaps = rng.geometric(0.6, size=num_items) - 1
  gaps[0] = 0
  item_ids = FIRST_ITEM_ID + np.arange(num_items) + np.cumsum(gaps)
  return Catalog(item_ids.astype(np.int64), titles, np.array(type_index),
                 np.array(brand_index), np.array(attributes, dtype=np.int64),
                 np.array(prices),
                 np.array([PRODUCT_TYPES[t].category for t in type_index]),
                 slot_names, keys, brands)


# --- Queries --------------------------------------------------------------


@dataclasses.dataclass
class Query:
  """A searcher's words and what they want.

  The intent (product type, named attributes, named brand) decides every
  item's grade; the text is all the logs and the model ever see.
  """
  text: str
  type_index: int
  brand_index: int  # -1 = brand not named
  attributes: np.ndarray  # int [num slots]; -1 = attribute not named

  @property
  def specificity(self) -> int:
    return int((self.attributes >= 0).sum() + (self.brand_index >= 0))


_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _misspell(rng: np.random.Generator, text: str) -> str:
  """One typing slip in a longer word: drop, swap, double or next key."""
  words = text.split()
  candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
  if not candidates:
    return text
  i = candidates[rng.integers(len(candidates))]
  word = words[i]
  at = int(rng.integers(1, len(word) - 1))
  slip = rng.integers(4)
  if slip == 0:
    word = word[:at] + word[at + 1:]
  elif slip == 1:
    word = word[:at] + word[at + 1] + word[at] + word[at + 2:]
  elif slip == 2:
    word = word[:at] + word[at] + word[at:]
  else:
    row = next(r for r in _KEYBOARD_ROWS if word[at] in r)
    j = row.index(word[at])
    neighbours = row[max(j - 1, 0):j] + row[j + 1:j + 2]
    word = word[:at] + neighbours[rng.integers(len(neighbours))] + word[at + 1:]
  words[i] = word
  return " ".join(words)


def _pick(rng: np.random.Generator, forms: Sequence[str]) -> str:
  """A typed form, the first (most common) one half of the time."""
  if len(forms) == 1 or rng.random() < 0.5:
    return forms[0]
  return forms[rng.integers(1, len(forms))]


def _query_from_item(rng: np.random.Generator, catalog: Catalog,
                     item: int) -> Query:
  """A query someone looking for `item` might type.

  Queries start from an item so that each one has a fully relevant answer;
  they name its type and a few of its attributes (most name none or one).
  """
  product = PRODUCT_TYPES[catalog.type_index[item]]
  present = np.flatnonzero(catalog.attributes[item] >= 0)
  num_named = min(len(present), int(rng.choice(4, p=[0.25, 0.4, 0.25, 0.1])))
  named = np.sort(rng.choice(present, size=num_named, replace=False))
  attributes = np.full(len(catalog.slot_names), -1)
  before, after = [], []
  for s in named:
    attributes[s] = catalog.attributes[item, s]
    forms = _typed_forms(product, catalog.slot_names[s],
                         catalog.attribute_keys[s][attributes[s]])
    (before if rng.random() < 0.7 else after).append(_pick(rng, forms))
  brand_index = -1
  if catalog.brand_index[item] >= 0 and rng.random() < 0.3:
    brand_index = int(catalog.brand_index[item])
    brand = _pick(rng, catalog.brands[brand_index][1])
    (before.insert(0, brand) if rng.random() < 0.85 else after.append(brand))
  if rng.random() < EVERYDAY_NAME_SHARE:
    everyday = EVERYDAY_NAMES[product.name]
    noun = everyday[rng.integers(len(everyday))]
  else:
    noun_weights = 0.5**np.arange(len(product.nouns))
    noun = product.nouns[rng.choice(len(product.nouns),
                                    p=noun_weights / noun_weights.sum())]
  text = " ".join(before + [noun] + after).lower()
  if rng.random() < 0.08:
    text = _misspell(rng, text)
  return Query(" ".join(text.split()), int(catalog.type_index[item]),
               brand_index, attributes)


def build_queries(rng: np.random.Generator, catalog: Catalog,
                  count: int) -> List[Query]:
  """`count` queries with distinct texts (a text means one thing)."""
  queries, seen = [], set()
  for _ in range(200 * count):
    if len(queries) == count:
      return queries
    query = _query_from_item(rng, catalog,
                             int(rng.integers(len(catalog.titles))))
    if query.text not in seen:
      seen.add(query.text)
      queries.append(query)
  raise ValueError(f"Could not write {count} distinct queries for "
                   f"{len(catalog.titles)} items; ask for fewer queries.")


# --- Relevance ------------------------------------------------------------


def latent_grades(query: Query, catalog: Catalog) -> np.ndarray:
  """Noise-free grade (1..3) of every item for `query`, from attribute overlap.

  The right product type is fully relevant unless it contradicts what the
  query names; a sibling type of the same category (a drill for "impact
  driver") is slightly relevant, more so when it shares named attributes;
  anything else is irrelevant.
  """
  named = query.attributes >= 0
  matches = (catalog.attributes[:, named] == query.attributes[named]).sum(1)
  num_named = int(named.sum())
  if query.brand_index >= 0:
    matches = matches + (catalog.brand_index == query.brand_index)
    num_named += 1
  same_type = catalog.type_index == query.type_index
  same_category = (
      catalog.categories == PRODUCT_TYPES[query.type_index].category)
  return np.where(
      same_type,
      np.maximum(3.0 - MISMATCH_PENALTY * (num_named - matches),
                 SAME_TYPE_FLOOR),
      np.where(
          same_category,
          np.minimum(RELATED_BASE + RELATED_PER_MATCH * matches, RELATED_CAP),
          1.0))


def rated_grades(rng: np.random.Generator, latent: np.ndarray) -> np.ndarray:
  """Mean of NUM_RATERS integer votes around the latent grade, 2 decimals.

  Gives the benchmark's grade values (1.0, 1.33, ..., 3.0) and its rater
  disagreement; clicks and judgments both use these grades.
  """
  noise = rng.normal(0.0, RATER_NOISE, latent.shape + (NUM_RATERS,))
  votes = np.clip(np.rint(latent[..., None] + noise), 1, 3)
  return np.round(votes.mean(-1), 2)


def grade_matrix(rng: np.random.Generator, queries: Sequence[Query],
                 catalog: Catalog) -> np.ndarray:
  """Rated grades [num queries, num items]."""
  return np.stack(
      [rated_grades(rng, latent_grades(q, catalog)) for q in queries])


# --- Ranker and click model -----------------------------------------------


def attractiveness(grade):
  """P(click | examined): 0.05 at grade 1 rising steeply to 0.95 at grade 3."""
  return 0.05 * 19.0**((np.asarray(grade) - 1.0) / 2.0)


def click_probability(position, grade):
  """Position-based model: (1/position)^0.9 * attractiveness(grade)."""
  position = np.asarray(position, dtype=float)
  return position**-POSITION_BIAS_EXPONENT * attractiveness(grade)


def cart_probability(grade):
  """P(add to cart | click): 0.08 (grade 1) to 0.6 (grade 3)."""
  return 0.08 + 0.52 * ((np.asarray(grade) - 1.0) / 2.0)**2


def order_probability(grade):
  """P(order | add to cart): 0.15 (grade 1) to 0.8 (grade 3)."""
  return 0.15 + 0.65 * ((np.asarray(grade) - 1.0) / 2.0)**2


def rank_pages(rng: np.random.Generator, grades: np.ndarray,
               item_bias: np.ndarray, num_pages: int,
               page_size: int) -> np.ndarray:
  """Item indices [num_pages, page_size] a production ranker shows for a query.

  It orders by grade + a fixed per-item bias (popularity, promotions) +
  per-request noise, so good items tend to the top but not always, and then
  replaces a few slots with random catalogue items.
  """
  scores = grades + item_bias + rng.normal(0.0, RANKER_NOISE,
                                           (num_pages, len(grades)))
  top = np.argpartition(-scores, page_size - 1, axis=1)[:, :page_size]
  order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1, kind="stable")
  pages = np.take_along_axis(top, order, 1)
  for page in pages:
    for slot in np.flatnonzero(rng.random(page_size) < INJECTED_SHARE):
      candidate = int(rng.integers(len(grades)))
      if candidate not in page:
        page[slot] = candidate
  return pages


def _zipf_counts(rng: np.random.Generator, queries: Sequence[Query],
                 num_requests: int) -> np.ndarray:
  """Requests per query: one each, the rest Zipf-like by popularity rank.

  Short, general queries tend to be the popular ones.
  """
  key = np.array([q.specificity for q in queries]) + rng.uniform(
      0, 2, len(queries))
  rank = np.empty(len(queries), dtype=np.int64)
  rank[np.argsort(key, kind="stable")] = np.arange(1, len(queries) + 1)
  weights = 1.0 / rank
  return 1 + rng.multinomial(num_requests - len(queries),
                             weights / weights.sum())


@dataclasses.dataclass
class Impressions:
  """Log rows as parallel columns, in the order they are written.

  `query` indexes the training queries; -1 marks an empty query cell.
  """
  request: np.ndarray
  event_time: np.ndarray
  user: np.ndarray
  query: np.ndarray
  item_id: np.ndarray
  position: np.ndarray
  clicked: np.ndarray
  added_to_cart: np.ndarray
  ordered: np.ndarray

  def take(self, index: np.ndarray) -> "Impressions":
    columns = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    return Impressions(**{name: c[index] for name, c in columns.items()})


def simulate_impressions(rng: np.random.Generator, catalog: Catalog,
                         queries: Sequence[Query], grades: np.ndarray,
                         num_requests: int, page_size: int) -> Impressions:
  """Requests over LOG_DAYS, pages from the ranker, behaviour from grades.

  Rows come in time order, positions ascending within a request; request
  numbers are shuffled so that they say nothing about time, as real ids.
  """
  counts = _zipf_counts(rng, queries, num_requests)
  request_query = rng.permutation(np.repeat(np.arange(len(queries)), counts))
  item_bias = rng.normal(0.0, ITEM_BIAS_NOISE, len(catalog.titles))
  pages = np.empty((num_requests, page_size), dtype=np.int64)
  for q in range(len(queries)):
    rows = np.flatnonzero(request_query == q)
    pages[rows] = rank_pages(rng, grades[q], item_bias, len(rows), page_size)
  times = np.sort(
      rng.integers(LOG_START_TIME, LOG_START_TIME + LOG_DAYS * 86400,
                   num_requests))
  users = rng.integers(0, max(num_requests // 4, 1), num_requests)
  request_numbers = rng.permutation(num_requests)
  request = np.repeat(np.arange(num_requests), page_size)
  position = np.tile(np.arange(1, page_size + 1), num_requests)
  grade = grades[request_query[request], pages.ravel()]
  clicked = rng.random(len(grade)) < click_probability(position, grade)
  carted = clicked & (rng.random(len(grade)) < cart_probability(grade))
  ordered = carted & (rng.random(len(grade)) < order_probability(grade))
  return Impressions(request_numbers[request], times[request], users[request],
                     request_query[request],
                     catalog.item_ids[pages.ravel()], position,
                     clicked.astype(np.int64), carted.astype(np.int64),
                     ordered.astype(np.int64))


# --- Dirt -----------------------------------------------------------------


def add_dirt(rng: np.random.Generator, impressions: Impressions,
             catalog: Catalog,
             fraction: float) -> Tuple[Impressions, Dict[str, int]]:
  """Spoils about `fraction` of the rows, evenly over DIRT_KINDS.

  Each spoiled row has exactly one kind of dirt (so counts can be checked
  from the files): an empty query cell, an item id missing from the
  catalogue (a delisted product), an order without a click (lost click
  event), or an exact copy of the row right after it (a double-logged
  event).
  """
  n = len(impressions.request)
  per_kind = int(round(n * fraction / len(DIRT_KINDS)))
  dirty = impressions.take(np.arange(n))  # A copy to edit.
  unclicked = np.flatnonzero(dirty.clicked == 0)
  order_rows = rng.choice(unclicked, per_kind, replace=False)
  rest = np.setdiff1d(np.arange(n), order_rows)
  others = rng.choice(rest, 3 * per_kind, replace=False)
  empty_rows, unknown_rows, duplicate_rows = np.split(others, 3)
  dirty.query[empty_rows] = -1
  ids = catalog.item_ids
  # Gaps between ids (delisted products) and ids past the newest one.
  unknown_ids = np.setdiff1d(np.arange(ids.min(), ids.max() + per_kind + 1),
                             ids)
  dirty.item_id[unknown_rows] = rng.choice(unknown_ids, per_kind, replace=False)
  dirty.clicked[order_rows] = 0
  dirty.added_to_cart[order_rows] = 1
  dirty.ordered[order_rows] = 1
  repeats = np.ones(n, dtype=np.int64)
  repeats[duplicate_rows] = 2
  counts = dict(zip(DIRT_KINDS, [per_kind] * len(DIRT_KINDS)))
  return dirty.take(np.repeat(np.arange(n), repeats)), counts


# --- Judgments ------------------------------------------------------------


def judgment_pool(rng: np.random.Generator, grades: np.ndarray) -> np.ndarray:
  """Items to judge for one query: relevant, partly relevant and random ones.

  Like the benchmark's pools, a few of each so that recall has targets and
  NDCG sees graded misses; the pool is not exhaustive.
  """

  def sample(candidates, size):
    return rng.choice(candidates, min(size, len(candidates)), replace=False)

  relevant = np.flatnonzero(grades >= features.RELEVANT_GRADE)
  partial = np.flatnonzero((grades >= 1.5) & (grades < features.RELEVANT_GRADE))
  irrelevant = np.flatnonzero(grades < 1.5)
  return np.sort(
      np.concatenate([
          sample(relevant, JUDGED_RELEVANT),
          sample(partial, JUDGED_PARTIAL),
          sample(irrelevant, JUDGED_RANDOM)
      ]))


# --- The world ------------------------------------------------------------


@dataclasses.dataclass
class World:
  """Everything behaviour derives from: catalogue, queries and their grades.

  Training queries feed the logs; judged queries are held out of them.
  """
  catalog: Catalog
  queries: List[Query]
  grades: np.ndarray  # [len(queries), num items]
  judged_queries: List[Query]
  judged_grades: np.ndarray  # [len(judged_queries), num items]


# Independent random streams per stage, so that e.g. more requests leave
# the catalogue and the queries unchanged.
(CATALOG_STREAM, QUERY_STREAM, GRADE_STREAM, LOG_STREAM, DIRT_STREAM,
 JUDGMENT_STREAM) = range(6)


def random_stream(seed: int, stage: int) -> np.random.Generator:
  return np.random.default_rng([seed, stage])


def build_world(seed: int, num_items: int, num_queries: int,
                num_judged_queries: int) -> World:
  """The catalogue, training and held-out queries and all their grades."""
  catalog = build_catalog(random_stream(seed, CATALOG_STREAM), num_items)
  query_rng = random_stream(seed, QUERY_STREAM)
  queries = build_queries(query_rng, catalog, num_queries + num_judged_queries)
  grades = grade_matrix(random_stream(seed, GRADE_STREAM), queries, catalog)
  # A judged query needs a relevant item, or recall would leave it out.
  eligible = np.flatnonzero((grades >= features.RELEVANT_GRADE).any(1))
  if len(eligible) < num_judged_queries:
    raise ValueError(f"Only {len(eligible)} queries have a relevant item; "
                     f"ask for fewer than {num_judged_queries} judged ones.")
  judged = np.zeros(len(queries), dtype=bool)
  judged[query_rng.choice(eligible, num_judged_queries, replace=False)] = True
  return World(catalog, [q for q, j in zip(queries, judged) if not j],
               grades[~judged], [q for q, j in zip(queries, judged) if j],
               grades[judged])
