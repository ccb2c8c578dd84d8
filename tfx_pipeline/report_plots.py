"""The report's plots (matplotlib, no display) as PNG bytes."""
import io
from typing import List, Optional

from matplotlib import figure
from matplotlib.backends import backend_agg

from tfx_pipeline import report_data

_COLOURS = {"candidate": "#1f6feb", "exact": "#8b949e", "baseline": "#d9822b",
            "ordered": "#2da44e", "clicked": "#8250df", "train": "#1f6feb",
            "validation": "#d9822b"}


def recall_plot(candidate, baseline, cutoffs) -> Optional[bytes]:
  """Recall@K of the candidate (and the baseline); None with nothing to plot."""
  lines = [("candidate, served index", "recall", candidate, "-", "candidate"),
           ("candidate, exact search", "exact_recall", candidate, "--",
            "exact"),
           ("ordered items", "recall_ordered", candidate, ":", "ordered"),
           ("clicked items", "recall_clicked", candidate, ":", "clicked"),
           ("last blessed model", "recall", baseline, "-", "baseline")]
  fig = figure.Figure(figsize=(5.6, 2.6), dpi=110)
  ax = fig.add_subplot()
  plotted = False
  for label, prefix, values, style, colour in lines:
    points = [(k, values[f"{prefix}@{k}"]) for k in cutoffs
              if f"{prefix}@{k}" in values]
    if not points:
      continue
    ks, ys = zip(*points)
    ax.plot(ks, ys, style, marker="o", markersize=3, label=label,
            color=_COLOURS[colour], linewidth=2 if prefix == "recall" else 1)
    plotted = True
    if values is candidate and prefix == "recall":
      for k, y in points:
        ax.annotate(f"{y:.3f}", (k, y), textcoords="offset points",
                    xytext=(5, -10), fontsize=7)
  if not plotted:
    return None
  ax.set_xscale("log")
  ax.set_xlim(cutoffs[0] / 1.5, cutoffs[-1] * 2)  # Room for the labels.
  ax.set_xticks(cutoffs, [str(k) for k in cutoffs])
  ax.set_xlabel("K")
  ax.set_ylabel("Recall@K")
  ax.set_ylim(0, 1.08)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  return _png(fig)


def curves_plot(curves, panels, metrics) -> bytes:
  """Losses (train against validation) and held-out metrics by epoch."""
  count = len(panels) + (1 if metrics else 0)
  columns = min(count, 2)
  rows = (count + columns - 1) // columns
  fig = figure.Figure(figsize=(5.6, 2.4 * rows), dpi=110)
  for i, (title, tag) in enumerate(panels):
    ax = _epoch_axes(fig, rows, columns, i + 1, title)
    for run_name, series in curves.items():
      if tag in series:
        ax.plot(_epochs(series[tag]), [v for _, v in series[tag]], marker="o",
                markersize=3, label=run_name, color=_COLOURS.get(run_name))
    ax.legend(fontsize=7)
  if metrics:
    ax = _epoch_axes(fig, rows, columns, count, "Held-out metrics")
    for run_name, tag in metrics:
      points = curves[run_name][tag]
      ax.plot(_epochs(points), [v for _, v in points], marker="o",
              markersize=3, label=tag.split("/")[-1])
    if count % 2 and count > 1:  # The grid's last cell is free for it.
      legend = fig.add_subplot(rows, columns, count + 1)
      legend.axis("off")
      legend.legend(*ax.get_legend_handles_labels(), loc="center",
                    fontsize=7)
    else:
      ax.legend(fontsize=6)
  fig.tight_layout()
  return _png(fig)


def _epoch_axes(fig, rows: int, columns: int, index: int, title: str):
  ax = fig.add_subplot(rows, columns, index)
  ax.set_title(title, fontsize=9)
  ax.set_xlabel("epoch", fontsize=8)
  ax.tick_params(labelsize=7)
  ax.grid(alpha=0.3)
  return ax


def _epochs(points: report_data.Curve) -> List[int]:
  """1, 2, ...: one point an epoch, whatever step it was written at."""
  return list(range(1, len(points) + 1))


def _png(fig: figure.Figure) -> bytes:
  buffer = io.BytesIO()
  backend_agg.FigureCanvasAgg(fig).print_png(buffer)
  return buffer.getvalue()
