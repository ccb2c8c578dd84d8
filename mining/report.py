"""The mining report: every count, nested, with every expected key present."""
from typing import Any, Dict, Mapping, Optional

from contracts import catalog as catalog_lib
from contracts import config_io
from contracts import features
from mining import cleaning
from mining import count_keys
from mining import splits
from mining.config import MiningConfig


def report_from_counts(counts: Mapping[str, int],
                       config: MiningConfig) -> Dict[str, Any]:
  """Nests "a/b" count keys and fills every expected key (zero if unseen)."""
  report = {
      count_keys.ROWS_READ: 0,
      count_keys.ROWS_KEPT: 0,
      "set_aside": {r: 0 for r in cleaning.SET_ASIDE_REASONS},
      "queries": {s: 0 for s in splits.SPLITS},
      "queries_with_examples": {s: 0 for s in splits.SPLITS},
      "examples": {s: 0 for s in splits.SPLITS},
      count_keys.TITLE_QUERIES: 0,
      count_keys.TITLE_QUERIES_HELD_OUT: 0,
      "positives": {s.name: 0 for s in features.POSITIVE_STAGES},
      "query_items": {s.name: 0 for s in (features.Stage.ORDERED,
                                          features.Stage.CLICKED,
                                          features.Stage.UNCLICKED)},
      "slots": {s.name: 0 for s in features.Stage},
      count_keys.CATALOG: {
          "rows_read": 0, "items": 0,
          **{r: 0 for r in catalog_lib.SET_ASIDE_REASONS},
          catalog_lib.MISSING_TITLE: 0},
  }
  for key, count in sorted(counts.items()):
    *path, name = key.split("/")
    node = report
    for part in path:
      node = node.setdefault(part, {})
    node[name] = count
  report["rows_set_aside"] = sum(report["set_aside"].values())
  report["mining_config"] = config_io.to_dict(config)
  report["slate_size"] = config.slate_size
  return report


def headline(report: Mapping[str, Any]) -> Dict[str, int]:
  """The counts worth a glance in the pipeline UI and the run log."""
  return {
      "rows_read": report[count_keys.ROWS_READ],
      "rows_kept": report[count_keys.ROWS_KEPT],
      "rows_set_aside": report["rows_set_aside"],
      "catalog_items": report[count_keys.CATALOG]["items"],
      **{f"{s}_queries": report["queries"][s] for s in splits.SPLITS},
      **{f"{s}_examples": report["examples"][s] for s in splits.SPLITS},
      count_keys.TITLE_QUERIES: report[count_keys.TITLE_QUERIES],
      count_keys.TITLE_QUERIES_HELD_OUT:
          report[count_keys.TITLE_QUERIES_HELD_OUT],
  }


def catalog_problems(report: Mapping[str, Any]) -> Dict[str, int]:
  """Catalogue rows set aside or defaulted, by reason (non-zero only)."""
  return {k: v for k, v in report[count_keys.CATALOG].items()
          if k not in ("rows_read", "items") and v}


def set_aside_problem(report: Mapping[str, Any],
                      limit: float) -> Optional[str]:
  """A sentence when more than `limit` of the log rows were set aside."""
  read = report[count_keys.ROWS_READ]
  set_aside = report["rows_set_aside"]
  if not read or set_aside / read <= limit:
    return None
  reasons = ", ".join(f"{reason} {count}" for reason, count in
                      report["set_aside"].items() if count)
  return (f"{set_aside / read:.1%} of the log rows were set aside "
          f"({set_aside} of {read}: {reasons}), more than "
          f"validation.max_set_aside_share {limit:.1%}")


def rows_read_problem(report: Mapping[str, Any],
                      logs_examples: Optional[int]) -> Optional[str]:
  """A sentence when mining read a different number of log rows than the
  `logs_examples` ExampleGen wrote (as the logs' statistics count them; None
  when not counted, as in a data gate report older than the count)."""
  read = report[count_keys.ROWS_READ]
  if logs_examples is None or read == logs_examples:
    return None
  fewer_or_more = "fewer" if read < logs_examples else "more"
  return (f"mining read {read} log rows but ExampleGen wrote "
          f"{logs_examples}: the Beam runner delivered "
          f"{abs(logs_examples - read)} {fewer_or_more} records than were "
          "written (DirectRunner's multi-processing and multi-threading "
          "modes lose records of large inputs), rerun with --beam local "
          "(the default, in one process) or a real runner "
          "(--beam dataflow|flink|spark)")
