"""Scores retrieval systems side by side and writes the benchmark's results.

One table (Markdown), the same figures as JSON for tools, and a plot of
Recall@K against K, so a system's whole ranking depth is compared, not only
the cut-offs in the table. Every figure comes from `evaluation.metrics`, the
scorer the pipeline's evaluator and `mmse evaluate` use, so the table is
comparable with what the pipeline reports.

A system is `{"rankings": query -> item ids, "train_seconds": float or
None}`; None means nothing was trained (a zero-shot or lexical baseline).
"""
import json
import logging
import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence

from evaluation import metrics

TABLE_FILE = "quality.md"
JSON_FILE = "quality.json"
PLOT_FILE = "recall_at_k.png"

TABLE_CUTOFFS = (10, 100, 1000)
TABLE_COLUMNS = (("Recall@10", "recall@10"), ("Recall@100", "recall@100"),
                 ("Recall@1000", "recall@1000"), ("NDCG@10", "ndcg@10"),
                 ("NDCG@100", "ndcg@100"))


def curve_cutoffs(max_k: int = 1000, points: int = 40) -> list:
  """K values spread evenly on a log axis from 1 to max_k, both included."""
  return sorted({max(1, round(math.exp(i * math.log(max_k) / (points - 1))))
                 for i in range(points)})


def score_systems(systems: Mapping[str, Mapping[str, Any]],
                  judgments: metrics.Judgments,
                  curve_ks: Optional[Sequence[int]] = None
                  ) -> Dict[str, Dict[str, Any]]:
  """The table's figures and the Recall@K curve of each system.

  Args:
    systems: name -> {"rankings": ..., "train_seconds": ...}, in table order.
    judgments: query -> {item_id: grade}.
    curve_ks: K values of the plotted curve (default: `curve_cutoffs()`).

  Returns:
    name -> {"recall@K"/"ndcg@K" for the table's cut-offs, "queries",
    "recall_queries", "train_seconds", "recall_curve": {"k": [...],
    "recall": [...]}}.
  """
  curve_ks = list(curve_ks or curve_cutoffs())
  figures = {}
  for name, system in systems.items():
    logging.info("Scoring %s", name)
    rankings = system["rankings"]
    table = metrics.score(rankings, judgments, cutoffs=TABLE_CUTOFFS)
    curve = metrics.score(rankings, judgments, cutoffs=curve_ks)
    figures[name] = dict(
        table,
        train_seconds=system.get("train_seconds"),
        recall_curve={"k": curve_ks,
                      "recall": [curve[f"recall@{k}"] for k in curve_ks]})
  return figures


def _training_time(seconds):
  if seconds is None:
    return "none"
  minutes, secs = divmod(round(seconds), 60)
  return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def render_table(figures: Mapping[str, Mapping[str, Any]],
                 description: str = "") -> str:
  """The Markdown results table, figures to three decimals."""
  lines = ["# Retrieval quality", ""]
  if description:
    lines += [description, ""]
  header = ["System"] + [title for title, _ in TABLE_COLUMNS] + [
      "Training time"]
  lines.append("| " + " | ".join(header) + " |")
  lines.append("| --- " * len(header) + "|")
  for name, row in figures.items():
    cells = [name] + [f"{row[key]:.3f}" for _, key in TABLE_COLUMNS] + [
        _training_time(row["train_seconds"])]
    lines.append("| " + " | ".join(cells) + " |")
  lines += ["", "Training time \"none\": nothing is fitted to the logs "
            "(lexical or zero-shot).", ""]
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
                 description: str = "") -> Dict[str, Dict[str, Any]]:
  """Scores `systems` and writes quality.md, quality.json and the plot.

  Returns:
    The figures written, as `score_systems` returns them.
  """
  figures = score_systems(systems, judgments)
  write_files(figures, out_dir, description)
  return figures
