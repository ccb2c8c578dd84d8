"""Names of the counts mining keeps; a key "a/b" nests as report[a][b].

The library steps tally under these names and `mining.report` lays them
out, so a count has one spelling from where it is made to the report.
"""
ROWS_READ = "rows_read"  # Log rows read.
ROWS_KEPT = "rows_kept"  # Log rows that fed mining (not set aside).
TITLE_QUERIES = "title_queries"  # Title pseudo-queries trained on.
# Items whose every title pseudo-query draw falls in the eval split: not
# trained on, and not evaluated on either (the eval split holds logged
# behaviour only).
TITLE_QUERIES_HELD_OUT = "title_queries_held_out"
CATALOG = "catalog"


def set_aside(reason: str) -> str:
  return f"set_aside/{reason}"


def queries(split: str) -> str:
  return f"queries/{split}"


def queries_with_examples(split: str) -> str:
  return f"queries_with_examples/{split}"


def examples(split: str) -> str:
  return f"examples/{split}"


def positives(stage_name: str) -> str:
  return f"positives/{stage_name}"


def query_items(stage_name: str) -> str:
  return f"query_items/{stage_name}"


def slots(stage_name: str) -> str:
  return f"slots/{stage_name}"


def catalog(name: str) -> str:
  return f"{CATALOG}/{name}"
