"""What a narrower served vector costs: dev scores at full and projected width.

The Trainer projects a wider ensemble's towers onto the top principal
directions of its item vectors (`model.served_width`,
`mmse.principal_directions`). This takes Trainer models exported at full
width (the default, `model.served_width=0`, e.g. `bench.quality`'s `mmse`
system), fits the same projection on the catalogue's item vectors (the
Trainer fits it on the items of the training slates, which on the Home Depot
logs are the whole catalogue) and scores the dev judgments by exact search at
each width: paired figures, the same trained towers throughout.

  python -m bench.served_width --models DIR,DIR,DIR --widths 512,768,1024
"""
import argparse
import datetime
import os
from typing import Dict, List, Sequence

import numpy as np

from bench import serving
from contracts import catalog as catalog_lib
from contracts import serving_layout
from evaluation import metrics
from model import mmse
from retrieval import embedding
from retrieval import topk

CUTOFFS = (10, 100, 1000)
COLUMNS = ("recall@10", "recall@100", "recall@1000", "ndcg@10", "ndcg@100")


def _scores(queries: Sequence[str], query_vectors: np.ndarray,
            item_vectors: np.ndarray, item_ids: np.ndarray,
            judgments: metrics.Judgments) -> Dict[str, float]:
  rows, _ = topk.exact_top_k(query_vectors, item_vectors, max(CUTOFFS))
  ranked = dict(zip(queries, item_ids[rows]))
  return metrics.score(ranked, {q: g for q, g in judgments.items()
                                if q in ranked}, CUTOFFS)


def measure(model_dirs: Sequence[str], widths: Sequence[int],
            data_dir: str) -> List[Dict[str, object]]:
  """One row per model and width (0: the full width), in that order."""
  catalog = catalog_lib.read_catalog(os.path.join(data_dir, "catalog.csv"))
  judgments_csv = os.path.join(data_dir, "dev_judgments.csv")
  judgments = metrics.read_judgments(judgments_csv)
  queries = serving.read_query_texts(judgments_csv, catalog,
                                     limit=len(judgments))
  rows = []
  for model_dir in model_dirs:
    query_tower, item_tower = (
        embedding.load_signature(serving_layout.trained_tower_dir(model_dir,
                                                                  tower))
        for tower in (serving_layout.QUERY_TOWER, serving_layout.ITEM_TOWER))
    query_vectors = embedding.embed_queries(query_tower, queries)
    item_vectors = embedding.embed_catalog(item_tower, catalog.columns)
    full_width = item_vectors.shape[1]
    for width in [0] + [w for w in widths if w < full_width]:
      projected_queries, projected_items, kept = (query_vectors, item_vectors,
                                                  1.0)
      if width:
        directions, kept = mmse.principal_directions(item_vectors, width)
        projected_queries = query_vectors @ directions
        projected_items = item_vectors @ directions
      scores = _scores(queries, projected_queries, projected_items,
                       catalog.item_ids, judgments)
      row = {"model": model_dir, "width": width or full_width,
             "variance_kept": kept, **{c: scores[c] for c in COLUMNS}}
      print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in row.items()), flush=True)
      rows.append(row)
  return rows


def report(rows: Sequence[Dict[str, object]]) -> str:
  """Markdown: each width's mean over the models, then every row."""
  widths = sorted({r["width"] for r in rows}, reverse=True)
  lines = [
      "# Served width",
      "",
      f"Measured {datetime.datetime.now():%Y-%m-%d %H:%M} by "
      "`python -m bench.served_width`: Home Depot dev judgments ranked by "
      "exact search over the whole catalogue, at the towers' full width and "
      "projected onto the top principal directions of the catalogue's item "
      "vectors (`mmse.principal_directions`, as the Trainer does for "
      "`model.served_width`). The same trained towers at every width; "
      f"{len({r['model'] for r in rows})} models.",
      "",
      "| Width | Variance kept | " + " | ".join(COLUMNS) + " |",
      "| ---: | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |",
  ]
  for width in widths:
    same = [r for r in rows if r["width"] == width]
    lines.append(f"| {width:,} | {np.mean([r['variance_kept'] for r in same]):.4f} | " +
                 " | ".join(f"{np.mean([r[c] for r in same]):.4f}"
                            for c in COLUMNS) + " |")
  lines += ["", "Each model:", "",
            "| Model | Width | " + " | ".join(COLUMNS) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " |"]
  for r in rows:
    lines.append(f"| {r['model']} | {r['width']:,} | " +
                 " | ".join(f"{r[c]:.4f}" for c in COLUMNS) + " |")
  return "\n".join(lines) + "\n"


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", required=True,
                      help="comma-separated Trainer model dirs exported at "
                      "full width")
  parser.add_argument("--widths", default="512,768,1024")
  parser.add_argument("--data-dir", default=str(serving.DEFAULT_DATA_DIR))
  parser.add_argument("--results", default=str(
      serving.DEFAULT_RESULTS_DIR / "served_width" / "paired.md"))
  args = parser.parse_args(argv)
  rows = measure(args.models.split(","),
                 [int(w) for w in args.widths.split(",")], args.data_dir)
  text = report(rows)
  with open(args.results, "w", encoding="utf-8") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  main()
