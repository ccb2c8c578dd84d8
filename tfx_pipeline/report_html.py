"""A pipeline run as one web page: `report.html` beside the run's outputs.

`write(output_dir)` reads the latest run from `<output_dir>/metadata.sqlite`
(through `run_report`) and the artifacts it points at (`report_data`), and
writes one self-contained file: CSS from report.css inlined, plots
(`report_plots`) as PNG data URIs, no script of its own. The verdict and the
key figures come first; then evaluation, training and wall times, then the
data (inputs, rows set aside, mining counts, validation, statistics). TFDV's
own statistics view (Facets) is embedded as TFDV renders it; Facets loads its
code from the web, so that view shows only when the browser is online, and
the page carries the same statistics as tables.
"""
import base64
import datetime
import html
import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import statistics_pb2

from components.multistage_samples import spec as mining_spec
from contracts import catalog as catalog_lib
from mining import cleaning
from tfx_pipeline import configs
from tfx_pipeline import report_data
from tfx_pipeline import report_plots
from tfx_pipeline import run_report

REPORT_FILE = "report.html"
# The page's stylesheet, inlined into every report.
_CSS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "report.css")

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
          f"<title>MMSE run {_e(run['run'])}</title><style>\n{_css()}</style>"
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
          _image(report_plots.recall_plot(candidate, baseline, cutoffs),
                 "Recall at K") +
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


# ---------------------------------------------------------------- training


def _training(run) -> str:
  logdir = run.get("tensorboard_logdir")
  if not logdir:
    return _missing("Trainer")
  if not tf.io.gfile.isdir(logdir):
    return _not_found(logdir)
  curves = report_data.read_training_curves(logdir)
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
  return (_image(report_plots.curves_plot(curves, panels, metrics),
                 "Training curves") + text)


# -------------------------------------------------------------------- data


def _inputs(run) -> str:
  mining = run.get("mining")
  statistics = run.get("statistics") or {}
  inputs = run.get("inputs") or {}
  rows = []
  for name in ("logs", "catalog"):
    read = report_data.statistics_rows(statistics.get(name))
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
           _set_aside(logs_reasons, report_data.read_quarantine(
               report_dir, mining_spec.LOGS_QUARANTINE,
               [r for r, n in logs_reasons.items() if n])),
           f"<h3>Catalogue rows set aside: "
           f"{_count(sum(catalog_reasons.values()))} of "
           f"{_count(catalog_counts.get('rows_read', 0))}</h3>",
           _set_aside(catalog_reasons, report_data.read_quarantine(
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
    by_split = report_data.read_anomalies(anomalies[name])
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
    splits = report_data.load_statistics(statistics[name])
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
    splits = report_data.load_statistics(statistics[name])
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


def _css() -> str:
  with open(_CSS_FILE, encoding="utf-8") as f:
    return f.read()


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

