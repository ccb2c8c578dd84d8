"""A pipeline run as one web page: `report.html` beside the run's outputs.

`write(output_dir)` reads the latest run from `<output_dir>/metadata.sqlite`
(through `run_report`) and the artifacts it points at, and writes one
self-contained file: inline CSS, plots as PNG data URIs, no script of its
own. The verdict and the key figures come first; then evaluation, training
and wall times, then the data (inputs, rows set aside, mining counts,
validation, statistics). TFDV's own statistics view (Facets) is embedded as TFDV renders
it; Facets loads its code from the web, so that view shows only when the
browser is online, and the page carries the same statistics as tables.
"""
import base64
import datetime
import gzip
import html
import io
import json
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from matplotlib import figure
from matplotlib.backends import backend_agg
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from components.multistage_samples import spec as mining_spec
from contracts import catalog as catalog_lib
from mining import cleaning
from tfx_pipeline import configs
from tfx_pipeline import run_report

REPORT_FILE = "report.html"

EXAMPLES_PER_REASON = 3
# Reading a quarantine stops here even if a reason still lacks examples:
# the benchmark's quarantine holds many thousands of rows.
_MAX_QUARANTINE_LINES = 100_000
# What each per-input check is called on the page, in page order.
_INPUT_TITLES = {"logs": "Search logs", "catalog": "Catalogue",
                 "samples": "Mined samples"}
_OK_STATES = ("COMPLETE", "CACHED")
# Training curves, one panel per objective the run has, as
# `model.training_callbacks` writes them ("epoch/...", at the global step).
_LOSS_PANELS = (("Retrieval loss", "epoch/retrieval_loss"),
                ("Ranking loss", "epoch/ranking_loss"))
# Evaluation table rows: (label, metrics.json key prefix before "@K").
_EVALUATION_ROWS = (
    ("Recall", "recall"),
    ("NDCG", "ndcg"),
    ("Recall, ordered items", "recall_ordered"),
    ("Recall, clicked items", "recall_clicked"),
    ("Recall, exact search", "exact_recall"),
    ("NDCG, exact search", "exact_ndcg"),
    ("Index finds of exact top K", "index_recall"),
)
_COLOURS = {"candidate": "#1f6feb", "exact": "#8b949e", "baseline": "#d9822b",
            "ordered": "#2da44e", "clicked": "#8250df", "train": "#1f6feb",
            "validation": "#d9822b"}


def write(output_dir: str) -> str:
  """Writes `<output_dir>/report.html` for the latest run; returns its path."""
  run = run_report.latest_run(os.path.join(output_dir, configs.METADATA_FILE))
  path = os.path.join(output_dir, REPORT_FILE)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(render(run))
  return path


def render(run: Mapping[str, Any]) -> str:
  """The whole page for a `run_report.latest_run` summary."""
  body = "\n".join([
      _header(run),
      _key_figures(run),
      '<div class="grid">',
      _section("Evaluation", _evaluation(run), "evaluation"),
      "<div>",
      _section("Training", _training(run), "training"),
      _section("Component wall times", _wall_times(run), "wall-times"),
      "</div></div>",
      _section("Inputs and rows set aside", _inputs(run), "inputs"),
      '<div class="grid">',
      _section("Mining", _mining(run), "mining"),
      _section("Data validation", _validation(run), "validation"),
      "</div>",
      _section("Feature statistics", _statistics_tables(run), "statistics"),
      _section("TFDV statistics view", _tfdv_views(run), "tfdv"),
  ])
  return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          f"<title>MMSE run {_e(run['run'])}</title><style>{_CSS}</style>"
          f"</head><body>\n{body}\n</body></html>\n")


# ---------------------------------------------------------------- headline


def verdict(run: Mapping[str, Any]) -> Tuple[str, str]:
  """(kind, sentence): kind is "ok", "bad" or "failed"."""
  failed = [name for name, c in run["components"].items()
            if c["state"] not in _OK_STATES]
  if failed:
    return "failed", "Run incomplete: " + ", ".join(
        f"{name} {run['components'][name]['state']}" for name in failed)
  if run.get("pushed"):
    return "ok", (f"Blessed and pushed as version {run['pushed_version']}")
  if run.get("blessed"):
    return "bad", "Blessed, but nothing was pushed"
  return "bad", "Not blessed: nothing pushed"


def _header(run) -> str:
  kind, sentence = verdict(run)
  reason = run.get("blessing_reason") or (
      run.get("evaluation") or {}).get("reason", "")
  where = (f'<div class="where">Serving dir: <code>{_e(run["serving_dir"])}'
           f"</code></div>" if run.get("pushed") else "")
  try:  # The local runner names a run by its start time.
    started = datetime.datetime.fromisoformat(run["run"]).strftime(
        "%Y-%m-%d %H:%M:%S")
  except ValueError:
    started = run["run"]
  duration = (f" · took {_duration(run['pipeline_seconds'])}"
              if "pipeline_seconds" in run else "")
  return (f'<header class="verdict {kind}">'
          f'<div class="run">MMSE pipeline run · {_e(started)}{duration}</div>'
          f'<div class="decision" id="verdict">{_e(sentence)}</div>'
          f'<div class="why" id="reason">{_e(reason)}</div>{where}</header>')


def _key_figures(run) -> str:
  tiles = []
  evaluation = run.get("evaluation") or {}
  candidate = evaluation.get("candidate") or {}
  baseline = evaluation.get("baseline") or {}
  blessing_metric = (evaluation.get("config") or {}).get("blessing_metric")
  for name in dict.fromkeys([blessing_metric, "recall@10", "ndcg@10"]):
    if name in candidate:
      note = (_signed(candidate[name] - baseline[name]) + " vs last blessed"
              if name in baseline else "no earlier blessed model")
      if name == blessing_metric:
        note = "blessing metric · " + note
      tiles.append(_tile(name, _metric(candidate[name]), note,
                         "key-" + name.replace("@", "-at-")))
  mining = run.get("mining") or {}
  if mining:
    catalog = mining.get("catalog") or {}
    catalog_aside = sum(catalog.get(r, 0)
                        for r in catalog_lib.SET_ASIDE_REASONS)
    read = mining.get("rows_read", 0)
    share = f" ({mining['rows_set_aside'] / read:.1%})" if read else ""
    tiles.append(_tile(
        "Rows set aside", _count(mining["rows_set_aside"] + catalog_aside),
        f"{_count(mining['rows_set_aside'])} of {_count(read)} log rows"
        f"{share} · {_count(catalog_aside)} catalogue rows", "key-set-aside"))
    examples = mining.get("examples") or {}
    queries = mining.get("queries") or {}
    tiles.append(_tile(
        "Training slates", _count(examples.get("train", 0)),
        f"{_count(queries.get('train', 0))} queries "
        f"(+{_count(mining.get('title_queries', 0))} title queries) · "
        f"{_count(queries.get('eval', 0))} eval queries", "key-training"))
    tiles.append(_tile("Catalogue items", _count(catalog.get("items", 0)),
                       f"{_count(catalog.get('rows_read', 0))} rows read",
                       "key-catalog"))
  return f'<div class="tiles">{"".join(tiles)}</div>'


def _tile(label: str, value: str, note: str, element_id: str) -> str:
  return (f'<div class="tile" id="{element_id}"><div class="label">{_e(label)}'
          f'</div><div class="value">{_e(value)}</div>'
          f'<div class="note">{_e(note)}</div></div>')


# -------------------------------------------------------------- evaluation


def _evaluation(run) -> str:
  evaluation = run.get("evaluation")
  if not evaluation:
    return _missing("RetrievalEvaluator")
  candidate = evaluation.get("candidate") or {}
  baseline = evaluation.get("baseline") or {}
  config = evaluation.get("config") or {}
  cutoffs = sorted(config.get("cutoffs") or _cutoffs(candidate))
  blessing_metric = config.get("blessing_metric")
  head = "".join(f"<th>@{k}</th>" for k in cutoffs)
  rows = []
  for label, prefix in _EVALUATION_ROWS:
    if not any(f"{prefix}@{k}" in candidate for k in cutoffs):
      continue
    cells = []
    for k in cutoffs:
      name = f"{prefix}@{k}"
      if name not in candidate:
        cells.append("<td></td>")
        continue
      base = ""
      if name in baseline:
        delta = candidate[name] - baseline[name]
        base = (f'<div class="base">base {_metric(baseline[name])} '
                f'<span class="{"up" if delta >= 0 else "down"}">'
                f"{_signed(delta)}</span></div>")
      chosen = ' class="chosen"' if name == blessing_metric else ""
      cells.append(f'<td{chosen} data-metric="{_e(name)}">'
                   f"{_metric(candidate[name])}{base}</td>")
    rows.append(f"<tr><th>{_e(label)}</th>{''.join(cells)}</tr>")
  table = (f'<table class="metrics"><tr><th></th>{head}</tr>'
           f"{''.join(rows)}</table>")
  facts = (f"{_count(evaluation.get('eval_queries', 0))} held-out queries "
           f"({_count(candidate.get('ordered_queries', 0))} with an order, "
           f"{_count(candidate.get('clicked_queries', 0))} with a click) over "
           f"{_count(evaluation.get('catalog_items', 0))} catalogue items, "
           f"{_e(evaluation.get('index_kind', ''))} index; searched through "
           "the index as served, unless exact. ")
  facts += ("base: the last blessed model, searched the same way." if baseline
            else "No earlier blessed model to compare.")
  return (table + f'<p class="small">{facts}</p>' +
          _image(_recall_plot(candidate, baseline, cutoffs), "Recall at K") +
          _blessing(run, evaluation))


def _cutoffs(candidate: Mapping[str, Any]) -> List[int]:
  return sorted({int(name.split("@")[1]) for name in candidate
                 if name.startswith("recall@")})


def _blessing(run, evaluation) -> str:
  config = evaluation.get("config") or {}
  blessed = run.get("blessed")
  rule = (f"Rule: {_e(config.get('blessing_metric', ''))} at least "
          f"{config.get('min_gain_over_popularity', '')} above the most "
          "popular items of the training logs, at least "
          f"{config.get('min_gain_over_initial', '')} above the same towers "
          "at their initial weights, and no more than "
          f"{config.get('max_regression', '')} below the last blessed model.")
  baseline = evaluation.get("baseline_model") or "none"
  if run.get("pushed"):
    pushed = (f"Pushed version <b>{_e(run['pushed_version'])}</b> of "
              "query_tower, item_tower and retrieval to "
              f"<code>{_e(run['serving_dir'])}</code>.")
  else:
    pushed = "Nothing pushed."
  return (f'<div class="decision-box {"ok" if blessed else "bad"}">'
          f'<b>{"Blessed" if blessed else "Not blessed"}</b>: '
          f"{_e(evaluation.get('reason', ''))}<br>{rule}<br>"
          f"Compared with: <code>{_e(baseline)}</code><br>{pushed}</div>")


def _recall_plot(candidate, baseline, cutoffs) -> Optional[bytes]:
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


# ---------------------------------------------------------------- training


Curve = List[Tuple[int, float]]  # (step, value) pairs of one summary tag.


def read_training_curves(logdir: str) -> Dict[str, Dict[str, Curve]]:
  """{run ("train", "validation"): {tag: [(step, value)]}} from event files."""
  curves = {}
  for run_dir in sorted(tf.io.gfile.listdir(logdir)):
    path = os.path.join(logdir, run_dir.rstrip("/"))
    if not tf.io.gfile.isdir(path):
      continue
    accumulator = event_accumulator.EventAccumulator(
        path, size_guidance={event_accumulator.TENSORS: 0,
                             event_accumulator.SCALARS: 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    series = {}
    for tag in tags.get(event_accumulator.SCALARS, []):
      series[tag] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
    for tag in tags.get(event_accumulator.TENSORS, []):
      values = [(e.step, tensor_util.make_ndarray(e.tensor_proto))
                for e in accumulator.Tensors(tag)]
      if all(v.size == 1 for _, v in values):  # Scalars written as tensors.
        series[tag] = [(step, float(v.item())) for step, v in values]
    curves[run_dir.rstrip("/")] = series
  return curves


def _training(run) -> str:
  logdir = run.get("tensorboard_logdir")
  if not logdir:
    return _missing("Trainer")
  if not tf.io.gfile.isdir(logdir):
    return _not_found(logdir)
  curves = read_training_curves(logdir)
  tags = {tag for series in curves.values() for tag in series}
  panels = [panel for panel in _LOSS_PANELS if panel[1] in tags]
  if not panels:
    return "<p>The Trainer logged no epoch losses.</p>"
  epochs = max(len(series[panels[0][1]]) for series in curves.values()
               if panels[0][1] in series)
  # Metrics the Trainer logged once an epoch on the held-out split.
  metrics = sorted({(run_name, tag) for run_name, series in curves.items()
                    for tag, points in series.items()
                    if re.search("recall|ndcg", tag, re.IGNORECASE)
                    and len(points) == epochs})
  text = (f"<p class=\"small\">{epochs} epochs; per epoch, training batches "
          f"(train) against the held-out split (validation). TensorBoard: "
          f"<code>tensorboard --logdir {_e(logdir)}</code>"
          + (f"; model trained in {_duration(run['train_seconds'])}"
             if "train_seconds" in run else "") + ".</p>")
  return (_image(_curves_plot(curves, panels, metrics), "Training curves")
          + text)


def _curves_plot(curves, panels, metrics) -> bytes:
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


def _epochs(points: Curve) -> List[int]:
  """1, 2, ...: one point an epoch, whatever step it was written at."""
  return list(range(1, len(points) + 1))


# -------------------------------------------------------------------- data


def read_quarantine(report_dir: str, prefix: str,
                    reasons: Iterable[str]) -> Dict[str, List[Dict[str, Any]]]:
  """Up to EXAMPLES_PER_REASON set-aside records of each of `reasons`."""
  examples: Dict[str, List[Dict[str, Any]]] = {r: [] for r in reasons}
  if not examples:
    return examples
  lines = 0
  pattern = os.path.join(report_dir, mining_spec.QUARANTINE_DIR,
                         f"{prefix}-*")
  for path in sorted(tf.io.gfile.glob(pattern)):
    with tf.io.gfile.GFile(path, "rb") as raw, gzip.GzipFile(
        fileobj=raw) as f:
      for line in f:
        lines += 1
        record = json.loads(line)
        found = examples.get(record.get(cleaning.REASON))
        if found is not None and len(found) < EXAMPLES_PER_REASON:
          found.append(record)
        if lines >= _MAX_QUARANTINE_LINES or all(
            len(v) >= EXAMPLES_PER_REASON for v in examples.values()):
          return examples
  return examples


def _inputs(run) -> str:
  mining = run.get("mining")
  statistics = run.get("statistics") or {}
  inputs = run.get("inputs") or {}
  rows = []
  for name in ("logs", "catalog"):
    read = _statistics_rows(statistics.get(name))
    rows.append(f"<tr><th>{_INPUT_TITLES[name]}</th>"
                f"<td><code>{_e(inputs.get(name) or 'not recorded')}</code>"
                "</td>"
                f"<td class=\"num\">{_count(read) if read is not None else ''}"
                f"</td></tr>")
  table = ('<table><tr><th></th><th>files</th><th>rows</th></tr>'
           f"{''.join(rows)}</table>")
  if not mining:
    return table + _missing("MultiStageSamples")
  report_dir = run.get("mining_report_dir", "")
  logs_reasons = mining.get("set_aside") or {}
  catalog_counts = mining.get("catalog") or {}
  catalog_reasons = {r: catalog_counts.get(r, 0)
                     for r in catalog_lib.SET_ASIDE_REASONS}
  parts = [table,
           f"<h3>Log rows set aside: {_count(mining['rows_set_aside'])} of "
           f"{_count(mining['rows_read'])}</h3>",
           _set_aside(logs_reasons, read_quarantine(
               report_dir, mining_spec.LOGS_QUARANTINE,
               [r for r, n in logs_reasons.items() if n])),
           f"<h3>Catalogue rows set aside: "
           f"{_count(sum(catalog_reasons.values()))} of "
           f"{_count(catalog_counts.get('rows_read', 0))}</h3>",
           _set_aside(catalog_reasons, read_quarantine(
               report_dir, mining_spec.CATALOG_QUARANTINE,
               [r for r, n in catalog_reasons.items() if n]))]
  missing_titles = catalog_counts.get(catalog_lib.MISSING_TITLE, 0)
  if missing_titles:
    parts.append(f'<p class="small">{_count(missing_titles)} catalogue rows '
                 "had no title; kept with an empty one.</p>")
  quarantine = os.path.join(report_dir, mining_spec.QUARANTINE_DIR)
  parts.append(f'<p class="small">All set-aside rows: '
               f"<code>{_e(quarantine)}</code></p>")
  return "".join(parts)


def _set_aside(counts: Mapping[str, int],
               examples: Mapping[str, List[Dict[str, Any]]]) -> str:
  rows = []
  for reason, count in sorted(counts.items(), key=lambda kv: -kv[1]):
    shown = examples.get(reason) or []
    rows.append(f'<tr class="{"" if count else "zero"}">'
                f"<th>{_e(reason.replace('_', ' '))}</th>"
                f'<td class="num">{_count(count)}</td>'
                f"<td>{_records(shown)}</td></tr>")
  return (f'<table class="set-aside"><tr><th>reason</th><th>rows</th>'
          f"<th>examples</th></tr>{''.join(rows)}</table>")


def _records(records: Sequence[Mapping[str, Any]]) -> str:
  if not records:
    return ""
  columns = [k for k in records[0] if k != cleaning.REASON]
  head = "".join(f"<th>{_e(c)}</th>" for c in columns)
  body = "".join(
      "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) +
      "</tr>" for r in records)
  return f'<table class="records"><tr>{head}</tr>{body}</table>'


def _cell(value) -> str:
  if value is None or value == "":
    return '<span class="empty">empty</span>'
  return _e(str(value))


def _mining(run) -> str:
  mining = run.get("mining")
  if not mining:
    return _missing("MultiStageSamples")
  stages = ("ORDERED", "CLICKED", "UNCLICKED", "RANDOM", "PADDING")
  query_items = mining.get("query_items") or {}
  positives = mining.get("positives") or {}
  slots = mining.get("slots") or {}
  stage_rows = "".join(
      f"<tr><th>{s.lower()}</th>" + "".join(
          f'<td class="num">{_count_or_blank(counts, s)}</td>'
          for counts in (query_items, positives, slots)) + "</tr>"
      for s in stages if s in slots or s in query_items)
  by_split = [mining.get(key) or {} for key in
              ("queries", "queries_with_examples", "examples")]
  splits = sorted(by_split[-1], key=lambda s: s != "train")
  split_rows = "".join(
      f"<tr><th>{_e(s)}</th>" + "".join(
          f'<td class="num">{_count(counts.get(s, 0))}</td>'
          for counts in by_split) + "</tr>"
      for s in splits)
  config = mining.get("mining_config") or {}
  return (
      "<h3>Evidence by stage</h3>"
      '<table><tr><th>stage</th><th>query-item pairs</th><th>positives</th>'
      f"<th>slate slots</th></tr>{stage_rows}</table>"
      "<h3>Queries and slates by split</h3>"
      "<table><tr><th>split</th><th>logged queries</th>"
      f"<th>with slates</th><th>slates</th></tr>{split_rows}</table>"
      f'<p class="small">Title pseudo-queries: '
      f"{_count(mining.get('title_queries', 0))} in training, "
      f"{_count(mining.get('title_queries_held_out', 0))} held out (their "
      f"query fell in eval). Slates of {mining.get('slate_size', '?')} items "
      f"with {config.get('num_random_negatives', '?')} random catalogue "
      "negatives each.</p>")


def _count_or_blank(counts: Mapping[str, int], key: str) -> str:
  return _count(counts[key]) if key in counts else ""


# -------------------------------------------------------------- validation


def _split_dirs(uri: str) -> List[Tuple[str, str]]:
  """[(split, dir)] of an artifact's Split-* folders, train first."""
  found = []
  for name in tf.io.gfile.listdir(uri):
    name = name.rstrip("/")
    if name.startswith("Split-"):
      found.append((name[len("Split-"):], os.path.join(uri, name)))
  return sorted(found, key=lambda s: (s[0] != "train", s[0]))


def _load_statistics(uri: Optional[str]):
  """[(split, DatasetFeatureStatisticsList)] of a statistics artifact."""
  if not uri or not tf.io.gfile.isdir(uri):
    return []
  return [(split, tfdv.load_stats_binary(os.path.join(path, "FeatureStats.pb")))
          for split, path in _split_dirs(uri)
          if tf.io.gfile.exists(os.path.join(path, "FeatureStats.pb"))]


def _statistics_rows(uri: Optional[str]) -> Optional[int]:
  splits = _load_statistics(uri)
  if not splits:
    return None
  return sum(s.datasets[0].num_examples for _, s in splits if s.datasets)


def read_anomalies(uri: str) -> Dict[str, List[str]]:
  """{split: ["feature: description", ...]} of an ExampleAnomalies artifact."""
  found = {}
  for split, path in _split_dirs(uri):
    with tf.io.gfile.GFile(os.path.join(path, "SchemaDiff.pb"), "rb") as f:
      anomalies = anomalies_pb2.Anomalies.FromString(f.read())
    lines = [f"{feature}: {info.short_description} ({info.description})"
             for feature, info in sorted(anomalies.anomaly_info.items())]
    if anomalies.HasField("dataset_anomaly_info"):
      info = anomalies.dataset_anomaly_info
      lines.append(f"dataset: {info.short_description} ({info.description})")
    found[split] = lines
  return found


def _drift(gate) -> str:
  """The drift DataGate measured against the served version, as a table."""
  if not gate:
    return ""
  if gate["compared_with"] is None:
    return ('<p class="small">Drift: nothing was served yet to compare '
            "with.</p>")
  rows = "".join(
      f"<tr><td>{_e(e['column'])}</td><td>{_e(e['measure'])}</td>"
      f"<td>{e['value']:.4f}</td><td>{e['threshold']:.4f}</td><td>"
      + ('<span class="fail">exceeded</span>' if e["exceeded"] else
         '<span class="pass">within</span>') + "</td></tr>"
      for e in gate["drift"])
  accepted = (" The drift was accepted for this run (--accept-drift)."
              if gate["drift_accepted"] else "")
  return (f"<h3>Drift against served version {gate['compared_with']}</h3>"
          '<table class="validation"><tr><th>column</th><th>measure</th>'
          "<th>value</th><th>threshold</th><th></th></tr>" + rows +
          f'</table><p class="small">Over a threshold, the model is not '
          f"blessed or pushed.{accepted}</p>")


def _validation(run) -> str:
  anomalies = run.get("anomalies") or {}
  if not anomalies:
    return _missing("ExampleValidator")
  rows = []
  for name in _INPUT_TITLES:
    if name not in anomalies:
      rows.append(f"<tr><th>{_INPUT_TITLES[name]}</th><td class=\"small\">"
                  "not validated: statistics only</td></tr>")
      continue
    if not tf.io.gfile.isdir(anomalies[name]):
      rows.append(f"<tr><th>{_INPUT_TITLES[name]}</th>"
                  f"<td>{_not_found(anomalies[name])}</td></tr>")
      continue
    by_split = read_anomalies(anomalies[name])
    problems = [f"{split}: {line}" for split, lines in by_split.items()
                for line in lines]
    verdict_html = ('<span class="pass">no anomalies</span>' if not problems
                    else '<ul class="anomalies">' + "".join(
                        f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
    rows.append(f"<tr><th>{_INPUT_TITLES[name]}</th><td>{verdict_html}</td>"
                f"</tr>")
  return ('<table class="validation">' + "".join(rows) + "</table>" +
          _drift(run.get("data_gate")) +
          '<p class="small">ExampleValidator checks each input\'s statistics '
          "against its curated schema (ImportSchemaGen); DataGate stops the "
          "run on a problem of a required column and only reports the "
          "rest.</p>")


def _statistics_tables(run) -> str:
  statistics = run.get("statistics") or {}
  parts = []
  for name in [n for n in _INPUT_TITLES if n in statistics]:
    splits = _load_statistics(statistics[name])
    if not splits or not splits[0][1].datasets:
      parts.append(f"<h3>{_INPUT_TITLES[name]}</h3>"
                   + _not_found(statistics[name]))
      continue
    split, stats = splits[0]
    dataset = stats.datasets[0]
    counts = ", ".join(f"{s}: {_count(x.datasets[0].num_examples)}"
                       for s, x in splits if x.datasets)
    rows = "".join(_feature_row(f, dataset.num_examples)
                   for f in dataset.features)
    parts.append(
        f'<details class="statistics"{" open" if name != "samples" else ""}>'
        f"<summary>{_INPUT_TITLES[name]} <span class=\"small\">rows by split: "
        f"{counts}; features of the {_e(split)} split</span></summary>"
        '<table class="features"><tr><th>feature</th><th>type</th>'
        "<th>missing</th><th>values per row</th><th>distribution</th></tr>"
        f"{rows}</table></details>")
  return "".join(parts) or _missing("StatisticsGen")


def _feature_row(feature: statistics_pb2.FeatureNameStatistics,
                 num_examples: int) -> str:
  name = ".".join(feature.path.step) or feature.name
  kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type).lower()
  which = feature.WhichOneof("stats")
  stats = getattr(feature, which) if which else None
  common = stats.common_stats if stats is not None and hasattr(
      stats, "common_stats") else None
  missing = (f"{common.num_missing / num_examples:.1%}"
             if common is not None and num_examples else "")
  per_row = (f"{common.min_num_values}–{common.max_num_values}"
             if common is not None else "")
  if which == "num_stats":
    summary = (f"min {_number(stats.min)} · mean {stats.mean:.4g} · "
               f"max {_number(stats.max)} · zeros {stats.num_zeros:,}")
  elif which == "string_stats":
    top = ", ".join(f"{v.value} ({v.frequency / max(num_examples, 1):.0%})"
                    for v in stats.top_values[:3])
    summary = f"{stats.unique:,} unique · top: {top}"
  else:
    summary = ""
  return (f"<tr><th>{_e(name)}</th><td>{kind}</td><td class=\"num\">{missing}"
          f"</td><td class=\"num\">{per_row}</td><td>{_e(summary)}</td></tr>")


def _tfdv_views(run) -> str:
  statistics = run.get("statistics") or {}
  parts = ['<p class="small">TFDV\'s own view '
           "(<code>tfdv.get_statistics_html</code>, Facets Overview), train "
           "split against eval split. Facets loads its code from the web: "
           "offline this view stays empty, and the tables above hold the "
           "statistics.</p>"]
  for name in [n for n in _INPUT_TITLES if n in statistics]:
    splits = _load_statistics(statistics[name])
    if not splits:
      continue
    (lhs_name, lhs), *rest = splits
    rhs_name, rhs = rest[0] if rest else ("", None)
    parts.append(f"<h3>{_INPUT_TITLES[name]}</h3><div class=\"facets\">"
                 + tfdv.get_statistics_html(lhs, rhs, lhs_name=lhs_name,
                                            rhs_name=rhs_name or "rhs")
                 + "</div>")
  return "".join(parts)


# -------------------------------------------------------------- wall times


def _wall_times(run) -> str:
  components = sorted(run["components"].items(),
                      key=lambda kv: kv[1].get("started", 0))
  longest = max([c.get("computed_seconds", c["seconds"])
                 for _, c in components] + [1e-9])
  rows = []
  for name, c in components:
    seconds = c["seconds"]
    state = c["state"]
    if state == "CACHED":
      shown = c.get("computed_seconds", seconds)
      label = f"cached ({_duration(shown)} when run)"
      bar_class = "bar cached"
    else:
      shown, label = seconds, _duration(seconds)
      bar_class = "bar" if state == "COMPLETE" else "bar failed"
    width = 100.0 * shown / longest
    rows.append(f"<tr><th>{_e(name)}</th><td class=\"num\">{_e(label)}</td>"
                f'<td class="bar-cell"><div class="{bar_class}" '
                f'style="width:{width:.1f}%"></div></td>'
                + ("" if state in _OK_STATES else
                   f'<td class="failed">{_e(state)}</td>') + "</tr>")
  return f'<table class="wall">{"".join(rows)}</table>'


# ----------------------------------------------------------------- helpers


def _section(title: str, content: str, element_id: str) -> str:
  return (f'<section id="{element_id}"><h2>{_e(title)}</h2>{content}'
          f"</section>")


def _missing(component: str) -> str:
  return f'<p class="missing">{_e(component)} produced nothing in this run.</p>'


def _not_found(uri: str) -> str:
  """An artifact the metadata records but the disk no longer holds."""
  return (f'<p class="missing">Not found (moved or deleted): '
          f"<code>{_e(uri)}</code></p>")


def _image(png: Optional[bytes], alt: str) -> str:
  if png is None:
    return ""
  data = base64.b64encode(png).decode("ascii")
  return (f'<img class="plot" alt="{_e(alt)}" '
          f'src="data:image/png;base64,{data}">')


def _png(fig: figure.Figure) -> bytes:
  buffer = io.BytesIO()
  backend_agg.FigureCanvasAgg(fig).print_png(buffer)
  return buffer.getvalue()


def _e(text: Any) -> str:
  return html.escape(str(text))


def _count(n: int) -> str:
  return f"{n:,}"


def _number(value: float) -> str:
  """Whole numbers in full (ids, timestamps), others to 4 digits."""
  return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"


def _metric(value: float) -> str:
  return f"{value:.3f}"


def _signed(value: float) -> str:
  return f"{value:+.3f}"


def _duration(seconds: float) -> str:
  if seconds < 60:
    return f"{seconds:.1f} s"
  minutes, rest = divmod(round(seconds), 60)
  return f"{minutes} min {rest} s"


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 margin:0;background:#f3f4f6;color:#1f2328}
header.verdict{padding:18px 28px;color:#fff}
header.ok{background:#1a7f37}header.bad{background:#b35900}
header.failed{background:#cf222e}
header .run{opacity:.85;font-size:13px}
header .decision{font-size:28px;font-weight:700;margin:2px 0}
header .why{font-size:16px}header .where{font-size:13px;opacity:.9}
header code{color:#fff}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));
 gap:12px;padding:16px 28px 0}
.tile{background:#fff;border-radius:8px;padding:10px 14px;
 box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile .label{font-size:12px;color:#57606a;text-transform:uppercase;
 letter-spacing:.03em}
.tile .value{font-size:26px;font-weight:700;white-space:nowrap}
.tile .note{font-size:12px;color:#57606a}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px;padding:16px 28px 0}
section{background:#fff;border-radius:8px;padding:12px 18px;
 box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:0}
body>section{margin:16px 28px 0}body>section:last-child{margin-bottom:28px}
.grid>div>section+section{margin-top:16px}
h2{font-size:17px;margin:0 0 8px}h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 8px;text-align:left;vertical-align:top}
tr+tr>*{border-top:1px solid #eaeef2}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.metrics td{text-align:right;font-variant-numeric:tabular-nums;
 font-size:15px}
table.metrics th{white-space:nowrap}
table.metrics td.chosen{background:#ddf4ff;font-weight:700}
.base{font-size:11px;color:#57606a;font-weight:400;white-space:nowrap}
.up{color:#1a7f37}.down{color:#cf222e}
.small{font-size:12px;color:#57606a}
.plot{width:100%;max-width:640px;display:block;margin:6px 0}
.decision-box{border-left:4px solid;padding:6px 10px;margin-top:8px;
 font-size:13px}
.decision-box.ok{border-color:#1a7f37;background:#dafbe1}
.decision-box.bad{border-color:#b35900;background:#fff1e5}
code{font-size:12px;word-break:break-all}
table.records{font-size:11px;font-family:ui-monospace,monospace}
table.records td{white-space:nowrap}
table.records th{color:#57606a;font-weight:400}
tr.zero{color:#8c959f}.empty{color:#cf222e;font-style:italic}
.pass{color:#1a7f37;font-weight:700}.fail{color:#cf222e;font-weight:700}
ul.anomalies{margin:0;padding-left:18px;color:#cf222e}
table.wall{width:100%}td.bar-cell{width:45%}
.bar{height:12px;background:#1f6feb;border-radius:2px;min-width:1px}
.bar.cached{background:#afb8c1}.bar.failed,td.failed{background:#cf222e;
 color:#fff}
details.statistics{margin:6px 0}summary{cursor:pointer;font-weight:600}
table.features td,table.features th{font-size:12px}
.facets iframe{border:0;width:100%}
.missing{color:#cf222e}
"""
