"""Scores retrieval systems side by side and writes the benchmark's results.

One table (Markdown), the same figures as JSON for tools, and a plot of
Recall@K against K, so a system's whole ranking depth is compared, not only
the cut-offs in the table. Every figure comes from `evaluation.metrics`, the
scorer the pipeline's evaluator and `mmse evaluate` use, so the table is
comparable with what the pipeline reports.

A system is `{"rankings": query -> item ids, "train_seconds": float or
None, "seed_rankings": [rankings, ...]}`, optionally with "encode_seconds";
None means nothing was trained (a zero-shot or lexical baseline). A system
trained with several seeds gives each seed's rankings: its figures are their
mean, with the min-max beside. A subset of the queries (those with a word no
title holds) is scored apart.
"""
import json
import logging
import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from evaluation import metrics

TABLE_FILE = "quality.md"
JSON_FILE = "quality.json"
PLOT_FILE = "recall_at_k.png"

TABLE_CUTOFFS = (10, 100, 1000)
TABLE_COLUMNS = (("Recall@10", "recall@10"), ("Recall@100", "recall@100"),
                 ("Recall@1000", "recall@1000"), ("NDCG@10", "ndcg@10"),
                 ("NDCG@100", "ndcg@100"))
# The figure each query subset gets in the table.
SUBSET_KEY = "recall@100"


def curve_cutoffs(max_k: int = 1000, points: int = 40) -> list:
  """K values spread evenly on a log axis from 1 to max_k, both included."""
  return sorted({max(1, round(math.exp(i * math.log(max_k) / (points - 1))))
                 for i in range(points)})


def _mean_and_range(per_seed: Sequence[Mapping[str, float]],
                    keys: Sequence[str]) -> Dict[str, Any]:
  """{key: mean} and, with more than one seed, {"range": {key: [min, max]}}.
  """
  out = {k: float(np.mean([s[k] for s in per_seed])) for k in keys}
  if len(per_seed) > 1:
    out["range"] = {k: [float(min(s[k] for s in per_seed)),
                        float(max(s[k] for s in per_seed))] for k in keys}
  return out


def score_systems(systems: Mapping[str, Mapping[str, Any]],
                  judgments: metrics.Judgments,
                  curve_ks: Optional[Sequence[int]] = None,
                  subsets: Optional[Mapping[str, Sequence[str]]] = None
                  ) -> Dict[str, Dict[str, Any]]:
  """The table's figures and the Recall@K curve of each system.

  Args:
    systems: name -> {"rankings": ..., "train_seconds": ...,
      "seed_rankings": ...}, in table order.
    judgments: query -> {item_id: grade}.
    curve_ks: K values of the plotted curve (default: `curve_cutoffs()`).
    subsets: name -> queries, each scored apart by `SUBSET_KEY`.

  Returns:
    name -> {"recall@K"/"ndcg@K" for the table's cut-offs (the mean over
    seeds), "range" (min-max over seeds, if several), "seeds", "queries",
    "train_seconds", "encode_seconds",
    "subsets": {subset: {"queries", SUBSET_KEY, "range"}},
    "recall_curve": {"k": [...], "recall": [...]}}.
  """
  curve_ks = list(curve_ks or curve_cutoffs())
  subsets = subsets or {}
  figures = {}
  for name, system in systems.items():
    logging.info("Scoring %s", name)
    runs = system.get("seed_rankings") or [system["rankings"]]
    tables = [metrics.score(r, judgments, cutoffs=TABLE_CUTOFFS)
              for r in runs]
    keys = [key for _, key in TABLE_COLUMNS]
    curves = [metrics.score(r, judgments, cutoffs=curve_ks) for r in runs]
    row = dict(tables[0], **_mean_and_range(tables, keys))
    subset_rows = {}
    for subset, queries in subsets.items():
      subset_judgments = {q: judgments[q] for q in queries if q in judgments}
      scores = [metrics.score(r, subset_judgments, cutoffs=TABLE_CUTOFFS)
                for r in runs]
      subset_rows[subset] = dict(queries=len(subset_judgments),
                                 **_mean_and_range(scores, [SUBSET_KEY]))
    figures[name] = dict(
        row,
        seeds=len(runs),
        subsets=subset_rows,
        train_seconds=system.get("train_seconds"),
        encode_seconds=system.get("encode_seconds"),
        recall_curve={"k": curve_ks,
                      "recall": [float(np.mean([c[f"recall@{k}"]
                                                for c in curves]))
                                 for k in curve_ks]})
  return figures


def _duration(seconds, missing="none"):
  if seconds is None:
    return missing
  minutes, secs = divmod(round(seconds), 60)
  return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _cell(row: Mapping[str, Any], key: str) -> str:
  """A figure to three decimals, with its min-max over seeds if any."""
  if "range" not in row:
    return f"{row[key]:.3f}"
  low, high = row["range"][key]
  return f"{row[key]:.3f} ({low:.3f}-{high:.3f})"


def render_table(figures: Mapping[str, Mapping[str, Any]],
                 description: str = "") -> str:
  """The Markdown results table, figures to three decimals; a trained
  system of several seeds shows their mean and (min-max)."""
  lines = ["# Retrieval quality", ""]
  if description:
    lines += [description, ""]
  first = next(iter(figures.values()))
  subsets = list(first.get("subsets", {}))
  subset_titles = [f"Recall@100, {s} ({first['subsets'][s]['queries']} "
                   "queries)" for s in subsets]
  # Only systems that embed the catalogue apart from training report it.
  with_encoding = any(row.get("encode_seconds") is not None
                      for row in figures.values())
  header = (["System"] + [title for title, _ in TABLE_COLUMNS] +
            subset_titles + ["Seeds", "Training time"] +
            ["Encoding time"] * with_encoding)
  lines.append("| " + " | ".join(header) + " |")
  lines.append("| --- " * len(header) + "|")
  for name, row in figures.items():
    cells = ([name] + [_cell(row, key) for _, key in TABLE_COLUMNS] +
             [_cell(row["subsets"][s], SUBSET_KEY) for s in subsets] +
             [str(row.get("seeds", 1)), _duration(row["train_seconds"])]
             + [_duration(row.get("encode_seconds"), missing="-")]
             * with_encoding)
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Training time \"none\": nothing is fitted to the logs "
            "(lexical or zero-shot); for several seeds, their mean."]
  if with_encoding:
    lines.append("Encoding time: embedding the catalogue and the queries "
                 "with the trained encoder, where a system reports it.")
  lines.append("")
  return "\n".join(lines)


def plot_recall_curves(figures: Mapping[str, Mapping[str, Any]],
                       path: str) -> None:
  """Recall@K against K (log axis), one line per system, as a PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")  # Files only; no display on servers or in CI.
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(8.5, 4.8), dpi=120)
  # Ten colours, then the next line style: every system stays distinct.
  styles = ("-", "--", ":", "-.")
  for i, (name, row) in enumerate(figures.items()):
    curve = row["recall_curve"]
    ax.plot(curve["k"], curve["recall"], label=name, color=f"C{i % 10}",
            linestyle=styles[i // 10 % len(styles)], linewidth=1.6)
  ax.set_xscale("log")
  ax.set_xlim(1, max(max(r["recall_curve"]["k"]) for r in figures.values()))
  ax.set_ylim(0, 1)
  ax.set_xlabel("K (items retrieved, whole catalogue)")
  ax.set_ylabel("Recall@K")
  ax.set_title("Recall@K on the dev judgments")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def write_files(figures: Mapping[str, Mapping[str, Any]], out_dir: str,
                description: str = "") -> Dict[str, str]:
  """Writes the table, the JSON and the plot; returns their paths."""
  if not figures:
    raise ValueError("no systems to report")
  os.makedirs(out_dir, exist_ok=True)
  paths = {name: os.path.join(out_dir, name)
           for name in (TABLE_FILE, JSON_FILE, PLOT_FILE)}
  with open(paths[TABLE_FILE], "w", encoding="utf-8") as f:
    f.write(render_table(figures, description))
  with open(paths[JSON_FILE], "w", encoding="utf-8") as f:
    json.dump({"description": description, "systems": figures}, f, indent=1)
    f.write("\n")
  plot_recall_curves(figures, paths[PLOT_FILE])
  logging.info("Wrote %s", ", ".join(paths.values()))
  return paths


def write_report(systems: Mapping[str, Mapping[str, Any]],
                 judgments: metrics.Judgments, out_dir: str,
                 description: str = "",
                 subsets: Optional[Mapping[str, Sequence[str]]] = None
                 ) -> Dict[str, Dict[str, Any]]:
  """Scores `systems` and writes quality.md, quality.json and the plot.

  Returns:
    The figures written, as `score_systems` returns them.
  """
  figures = score_systems(systems, judgments, subsets=subsets)
  write_files(figures, out_dir, description)
  return figures
