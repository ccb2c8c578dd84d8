"""What the drift thresholds see: pairs of logs that should pass and pairs
that should not, measured as DataGate measures them.

  python -m bench.drift [--data-dir ../shared/data/homedepot]

writes `bench/results/drift.md`: per pair, the L-infinity distance of the
queries and of the items and the largest relative change of the click,
add-to-cart and order rates (`validation.drift.measure` on statistics
computed with the shipped logs schema), and whether the default
`ValidationConfig` passes it. Pairs on the benchmark logs (when
`--data-dir` has them): its second week against its first, the logs of
half of its queries (by hash) against all, and the logs with half of the
clicks lost (a logging fault) against all. On the embedded sample: its
second week against its first and the search spike of the end-to-end test
(the most searched query's requests six times).
"""
import argparse
import collections
import glob
import hashlib
import os
import pathlib
import tempfile

import pandas as pd

from contracts import features
from sample_data import simulator
from validation import drift
from validation import schemas
from validation.config import ValidationConfig

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "drift.md"
DAY_SECONDS = 86_400


def read_logs(pattern: str) -> pd.DataFrame:
  return schemas.read_csv_cells(sorted(glob.glob(pattern)))


def _weeks(logs):
  day = (logs[features.EVENT_TIME].astype(int) -
         logs[features.EVENT_TIME].astype(int).min()) // DAY_SECONDS
  return logs[day >= 7], logs[day < 7]


def _half_of_the_queries(logs):
  keep = logs[features.QUERY].map(
      lambda q: hashlib.md5(q.encode()).digest()[0] % 2 == 0)
  return logs[keep], logs


def _half_of_the_clicks_lost(logs):
  lost = logs.copy()
  clicked = lost.index[lost[features.CLICKED] == "1"]
  lost.loc[clicked[::2], features.CLICKED] = "0"
  return lost, logs


def _search_spike(logs):
  counts = collections.Counter(logs[features.QUERY])
  head = max(counts, key=lambda q: (counts[q], q))
  rows = logs[logs[features.QUERY] == head]
  copies = [rows.assign(**{features.REQUEST_ID: rows[features.REQUEST_ID] +
                           f"-{copy}"}) for copy in range(5)]
  return pd.concat([logs, *copies], ignore_index=True), logs


def measure(now, before, config=ValidationConfig()):
  schema = schemas.shipped(schemas.LOGS)
  return drift.measure(schemas.frame_statistics(now, schema),
                       schemas.frame_statistics(before, schema), schema,
                       config)


def _row(name, entries):
  by = {(e["column"], e["measure"]): e for e in entries}
  rates = [e for e in entries if e["measure"] == drift.RELATIVE_RATE_CHANGE]
  worst = max(rates, key=lambda e: e["value"])
  verdict = ("drift" if any(e["exceeded"] for e in entries) else "passes")
  return (f"| {name} | {by[(features.QUERY, drift.L_INFINITY)]['value']:.4f}"
          f" | {by[(features.ITEM_ID, drift.L_INFINITY)]['value']:.4f} | "
          f"{worst['value']:.3f} ({worst['column']}) | {verdict} |")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data-dir", default=os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
      "shared", "data", "homedepot"))
  args = parser.parse_args(argv)
  config = ValidationConfig()
  rows = []
  logs_pattern = os.path.join(args.data_dir, "logs", "*.csv.gz")
  if glob.glob(logs_pattern):
    logs = read_logs(logs_pattern)
    for name, pair in (
        ("benchmark: week 2 against week 1", _weeks(logs)),
        ("benchmark: half of the queries against all",
         _half_of_the_queries(logs)),
        ("benchmark: half of the clicks lost against all",
         _half_of_the_clicks_lost(logs))):
      rows.append(_row(name, measure(*pair, config)))
      print(rows[-1], flush=True)
  with tempfile.TemporaryDirectory() as scratch:
    simulator.simulate(scratch)
    sample = read_logs(os.path.join(scratch, "logs", "*.csv.gz"))
  for name, pair in (("sample: week 2 against week 1", _weeks(sample)),
                     ("sample: a search spike against all",
                      _search_spike(sample))):
    rows.append(_row(name, measure(*pair, config)))
    print(rows[-1], flush=True)
  RESULTS.write_text("\n".join([
      "# Drift between pairs of logs, as DataGate measures it",
      "",
      "`python -m bench.drift` (see its docstring for the pairs). Thresholds "
      f"(`ValidationConfig` defaults): queries {config.max_query_drift}, "
      f"items {config.max_item_drift} (L-infinity: the largest change of one "
      "value's share of the rows), rates "
      f"{config.max_feedback_rate_change} (relative change).",
      "",
      "| pair | queries L-inf | items L-inf | largest rate change | default |",
      "| --- | --- | --- | --- | --- |",
      *rows, ""]), encoding="utf-8")
  print(f"Wrote {RESULTS}")


if __name__ == "__main__":
  main()
