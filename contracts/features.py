"""Names and types of every feature that crosses a module boundary.

Data flows one way: log rows -> cleaned impressions -> per-query slates of
staged items -> transformed features -> towers. Each step names its columns
from here so that a rename happens in one place.
"""
import enum


class Stage(enum.IntEnum):
  """Grade of evidence that an item suits a query (higher is stronger).

  Add-to-cart without an order counts as a click: the mission ranks four
  stages, and a cart is evidence of interest that falls short of a purchase.
  """
  PADDING = -1  # Empty slot in a fixed-length slate; ignored by every loss.
  RANDOM = 0  # Sampled from the catalogue, never shown for the query.
  UNCLICKED = 1  # Shown for the query, never clicked.
  CLICKED = 2  # Clicked (or added to cart) but never ordered.
  ORDERED = 3  # Ordered at least once after this query.


POSITIVE_STAGES = (Stage.CLICKED, Stage.ORDERED)

# --- Search logs: one row per impression. ---------------------------------
REQUEST_ID = "request_id"
EVENT_TIME = "event_time"
USER_ID = "user_id"
QUERY = "query"
ITEM_ID = "item_id"
POSITION = "position"
CLICKED = "clicked"
ADDED_TO_CART = "added_to_cart"
ORDERED = "ordered"
LOG_COLUMNS = (REQUEST_ID, EVENT_TIME, USER_ID, QUERY, ITEM_ID, POSITION,
               CLICKED, ADDED_TO_CART, ORDERED)

# --- Catalogue: item_id, title and optional side features. ----------------
TITLE = "title"
# Side features the item tower uses when the catalogue has the column, with
# their value type and the default for an item that lacks a value.
ITEM_SIDE_FEATURES = {
    "brand": (str, ""),
    "category": (str, ""),
    "price": (float, 0.0),
}
CATALOG_REQUIRED_COLUMNS = (ITEM_ID, TITLE)

# Columns read as text whatever their cells look like: an id of digits keeps
# its leading zeros, and one column never mixes numbers and strings.
TEXT_COLUMNS = (REQUEST_ID, USER_ID, QUERY, ITEM_ID, TITLE) + tuple(
    name for name, (kind, _) in ITEM_SIDE_FEATURES.items() if kind is str)

# --- Mined training examples: one query and a fixed-length slate. ---------
# `query` is a scalar; `item_id`, `title`, every present side feature and
# `stage` are lists of the slate length. Slot 0 holds the anchor positive
# (an ordered or clicked item); the other slots hold items of lower stages
# for the same query, then random catalogue items, then padding.
STAGE = "stage"

# --- Judgments for scoring: query, item_id, relevance (1..3). --------------
# An item_id is an opaque string everywhere (`contracts.catalog`).
RELEVANCE = "relevance"
RELEVANT_GRADE = 2.5  # An item counts for recall at this grade or above.

