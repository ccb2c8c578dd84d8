"""The one text normalisation: the Python mirror equals the Transform's TF."""
import numpy as np
import pytest
import tensorflow as tf

from contracts import text

# Pieces that stress every branch of the rule: sizes with '.' and '/',
# marks at word edges, case mappings that change length or depend on
# context, letters and numbers beyond ASCII, marks and symbols, spacing.
_PIECES = [
    "Drill", "DRILL,", "drill.", "2.5", "1/2", "1/2/3", "3..4", "5./x", ".5",
    "/5", "5/", "5.", "a.b", "x.5.y", "a5.b", "5.a", "20V-Max", "9'-6\"",
    "O'Reilly's", "3.5-in.", "(10-Pack)", "#8", "1-1/4 in.", "A/C", "w/",
    "İstanbul", "ΣΟΦΟΣ", "ΟΔΟΣ.", "Straße", "ß", "ǅ", "ﬁber", "e\u0301te",
    "x²", "½", "Ⅻ", "٣٤", "２０ｖ", "ＡＢ", "日本語", "テスト", "한국어",
    "Ünïcödé", "ØRSTED", "ĳssel", "😀", "™", "®", "°F", "±5%", "—", "…",
    "\u00a0", "\u2009", "\t", "\n", "  ", "", "_", "-", "..", "//", "x_y",
    "C++", "#", "@home", "$19.99", "€5,00", "3,5", "1.000.000", "v2.0.1",
]


def _awkward_strings(count=400, seed=3):
  rng = np.random.default_rng(seed)
  strings = list(_PIECES)
  while len(strings) < count:
    parts = rng.choice(_PIECES, size=rng.integers(1, 6))
    joiners = rng.choice([" ", "", "-", ".", "/", ", "], size=len(parts))
    strings.append("".join(p + j for p, j in zip(parts, joiners)))
  return strings


def test_python_mirror_equals_the_transform_graph():
  strings = _awkward_strings()
  in_graph = [s.decode("utf-8") for s in
              text.normalize_tensor(tf.constant(strings)).numpy()]
  mirrored = [text.normalize(s) for s in strings]
  differ = [(s, g, m) for s, g, m in zip(strings, in_graph, mirrored)
            if g != m]
  assert not differ, differ[:5]
  words_in_graph = [[w.decode("utf-8") for w in row] for row in
                    text.words_tensor(tf.constant(strings)).to_list()]
  assert words_in_graph == [text.words(s) for s in strings]


@pytest.mark.parametrize("raw, words", [
    ("Cordless DRILL 20V, 1/2 in.", ["cordless", "drill", "20v", "1/2", "in"]),
    ("a.b 2.5-gal/ x", ["a", "b", "2.5", "gal", "x"]),
    ("", []),
])
def test_words(raw, words):
  assert text.words(raw) == words


def test_canonical_makes_spellings_of_one_query_equal():
  assert text.canonical("Drill,") == text.canonical("  drill ") == "drill"
  assert text.canonical("Cordless  DRILL!") == "cordless drill"
  assert text.canonical(text.canonical("3.5-in. x 1/4")) == text.canonical(
      "3.5-in. x 1/4")
