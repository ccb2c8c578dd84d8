"""The one text normalisation, in TensorFlow and in Python.

The Transform graph runs the TensorFlow form (`normalize_tensor`), so
training and both served towers see the same words; mining, the simulator
and the baselines run the Python mirror (`normalize`), which a test proves
equal to it on awkward strings. A query is grouped, split into train or eval
and fingerprinted by its `canonical` form, so "Drill," and "drill" are one
query everywhere.

The rule: lower-case; keep letters, digits, and '.' or '/' only between
digits ("2.5", "1/2"), where they carry a size; everything else separates
words. Letter-digit runs such as "20v" stay one word.
"""
import re
import unicodedata
from typing import List

# The rule as three RE2 rewrites (TensorFlow's regex_replace).
_KEEP_RE2 = r"[^\pL\pN./]+"
_LEADING_MARKS_RE2 = r"(^|[^\pN])[./]+"
_TRAILING_MARKS_RE2 = r"[./]+([^\pN]|$)"

# Python's `re` has no \pN, so the mirror runs the same patterns over a
# shadow string in which every number character is "0" and every letter "a".
_LEADING_MARKS = re.compile(r"(^|[^0])[./]+")
_TRAILING_MARKS = re.compile(r"[./]+([^0]|$)")


def _kind(char: str) -> str:
  category = unicodedata.category(char)[0]
  if category == "N":
    return "0"
  if category == "L":
    return "a"
  return char if char in "./" else " "


def _rewrite(text: str, pattern: re.Pattern, leading: bool) -> str:
  """Applies one marks rewrite to `text`, matching on its shadow."""
  shadow = "".join(_kind(c) for c in text)
  pieces, last = [], 0
  for match in pattern.finditer(shadow):
    kept = text[match.start(1):match.end(1)]
    pieces.append(text[last:match.start()])
    pieces.append(kept + " " if leading else " " + kept)
    last = match.end()
  pieces.append(text[last:])
  return "".join(pieces)


def normalize(text: str) -> str:
  """The Python mirror of `normalize_tensor` for one string."""
  text = text.lower()
  text = "".join(_kind(c) if _kind(c) == " " else c for c in text)
  text = re.sub(" +", " ", text)
  text = _rewrite(text, _LEADING_MARKS, leading=True)
  return _rewrite(text, _TRAILING_MARKS, leading=False)


def words(text: str) -> List[str]:
  """Word tokens of `text` after normalisation."""
  return normalize(text).split()


def canonical(text: str) -> str:
  """The normalised words joined by single spaces: one query's identity."""
  return " ".join(words(text))


def normalize_tensor(text):
  """Normalises a tf.string tensor of any shape (same shape back)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  text = tf.strings.lower(text, encoding="utf-8")
  text = tf.strings.regex_replace(text, _KEEP_RE2, " ")
  text = tf.strings.regex_replace(text, _LEADING_MARKS_RE2, r"\1 ")
  return tf.strings.regex_replace(text, _TRAILING_MARKS_RE2, r" \1")


def words_tensor(text):
  """Word tokens of a tf.string tensor: its shape plus a ragged axis."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.strings.split(normalize_tensor(text))
