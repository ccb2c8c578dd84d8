"""What the latest pipeline run did, read back from ML Metadata.

`mmse run` prints this at the end: the wall time of every component (the
benchmark issue asks for it), what the mining step set aside, the evaluator's
metrics and decision, and where the pushed model and TensorBoard logs are.
`report_html` draws the same summary, with the artifacts it points at
(statistics, anomalies, the quarantine, the training logs), as a web page.
"""
import json
import os
from typing import Any, Dict, List

from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from components.data_gate import spec as gate_spec
from components.multistage_samples import spec as mining_spec
from components.retrieval_evaluator import spec as evaluator_spec
from evaluation import blessing
from validation import drift
from validation import schemas

# Contexts LocalDagRunner (and Kubeflow) record a run and its components
# with; TFX's Airflow runner still uses the older launchers, which record a
# "run" context and give each execution a `component_id` property instead.
_NODE_CONTEXT = "node"
_RUN_CONTEXTS = ("pipeline_run", "run")
_COMPONENT_ID_PROPERTY = "component_id"


def _read_json(path: str):
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  return None


def _seconds(execution) -> float:
  return round((execution.last_update_time_since_epoch -
                execution.create_time_since_epoch) / 1000.0, 1)


def _producer(store, artifact_id: int):
  """The execution that wrote an artifact (the first that completed).

  A cached component's execution takes no time and points at an earlier
  run's output; that earlier execution is the one that did the work.
  """
  events = store.get_events_by_artifact_ids([artifact_id])
  producers = store.get_executions_by_id(
      [e.execution_id for e in events
       if e.type == metadata_store.proto.Event.OUTPUT])
  complete = [e for e in producers if e.last_known_state ==
              metadata_store.proto.Execution.COMPLETE]
  return min(complete or producers, key=lambda e: e.create_time_since_epoch)


def _producer_seconds(store, artifact_id: int) -> float:
  """Wall time of the execution that wrote an artifact."""
  return _seconds(_producer(store, artifact_id))


def _input_files(example_gen_execution) -> str:
  """The file pattern(s) an ExampleGen read, from its execution properties."""
  props = example_gen_execution.custom_properties
  if "input_base" not in props or "input_config" not in props:
    return ""
  base = props["input_base"].string_value
  splits = json.loads(props["input_config"].string_value).get("splits", [])
  return ", ".join(os.path.join(base, s["pattern"]) for s in splits)


def _prefixed(node_id: str, suffix: str) -> str:
  """The input a per-input component checks: "LogsStatisticsGen" -> "logs"."""
  return node_id[:-len(suffix)].lower()


def _node_ids(store, run_executions) -> Dict[int, str]:
  """The component id of each execution of a run, by execution id."""
  ids = {}
  for node in store.get_contexts_by_type(_NODE_CONTEXT):
    for execution in store.get_executions_by_context(node.id):
      if execution.id in run_executions:
        ids[execution.id] = node.name.split(".", 1)[-1]
  for execution in run_executions.values():
    if (execution.id not in ids and
        _COMPONENT_ID_PROPERTY in execution.properties):
      ids[execution.id] = execution.properties[
          _COMPONENT_ID_PROPERTY].string_value
  return ids


def latest_run(metadata_path: str) -> Dict[str, Any]:
  """Summarises the most recent pipeline run recorded in `metadata_path`."""
  store = metadata_store.MetadataStore(
      metadata.sqlite_metadata_connection_config(metadata_path))
  runs = [run for context_type in _RUN_CONTEXTS
          for run in store.get_contexts_by_type(context_type)]
  if not runs:
    raise ValueError(f"No pipeline run recorded in {metadata_path}")
  run = max(runs, key=lambda c: c.create_time_since_epoch)
  run_executions = {e.id: e for e in store.get_executions_by_context(run.id)}
  cached = metadata_store.proto.Execution.CACHED

  components = {}
  outputs = {}
  node_ids = _node_ids(store, run_executions)
  for execution in sorted(run_executions.values(), key=lambda e: e.id):
    node_id = node_ids.get(execution.id)
    if node_id is None:
      continue
    components[node_id] = {
        "state": metadata_store.proto.Execution.State.Name(
            execution.last_known_state),
        "seconds": _seconds(execution),
        "started": execution.create_time_since_epoch / 1000.0,
    }
    events = [e for e in store.get_events_by_execution_ids([execution.id])
              if e.type == metadata_store.proto.Event.OUTPUT]
    if execution.last_known_state == cached and events:
      components[node_id]["computed_seconds"] = _producer_seconds(
          store, events[0].artifact_id)
    artifacts = {a.id: a for a in store.get_artifacts_by_id(
        [e.artifact_id for e in events])}
    for event in events:
      key = event.path.steps[0].key if event.path.steps else ""
      outputs[(node_id, key)] = artifacts[event.artifact_id]

  report: Dict[str, Any] = {"run": run.name, "components": components}
  if run_executions:
    first = min(e.create_time_since_epoch for e in run_executions.values())
    last = max(e.last_update_time_since_epoch
               for e in run_executions.values())
    report["pipeline_seconds"] = round((last - first) / 1000.0, 1)
  for (node_id, key), artifact in outputs.items():
    props = artifact.custom_properties
    if node_id.endswith("ExampleGen") and key == "examples":
      report.setdefault("inputs", {})[_prefixed(node_id, "ExampleGen")] = (
          _input_files(_producer(store, artifact.id)))
    elif node_id.endswith("StatisticsGen") and key == "statistics":
      report.setdefault("statistics", {})[
          _prefixed(node_id, "StatisticsGen")] = artifact.uri
    elif node_id.endswith("ExampleValidator") and key == "anomalies":
      report.setdefault("anomalies", {})[
          _prefixed(node_id, "ExampleValidator")] = artifact.uri
    elif (node_id, key) == ("DataGate", gate_spec.REPORT_KEY):
      report["data_gate"] = _read_json(
          os.path.join(artifact.uri, gate_spec.REPORT_FILE))
    elif (node_id, key) == ("MultiStageSamples", "report"):
      report["mining"] = _read_json(
          os.path.join(artifact.uri, mining_spec.COUNTS_FILE))
      report["mining_report_dir"] = artifact.uri
    elif (node_id, key) == ("MultiStageSamples", "examples"):
      report["examples_dir"] = artifact.uri
    elif (node_id, key) == ("RetrievalEvaluator", "blessing"):
      report["blessed"] = bool(props["blessed"].int_value) if (
          "blessed" in props) else None
      if "blessing_message" in props:
        report["blessing_reason"] = props["blessing_message"].string_value
    elif (node_id, key) == ("RetrievalEvaluator", "evaluation"):
      report["evaluation"] = _read_json(
          os.path.join(artifact.uri, "metrics.json"))
    elif (node_id, key) == ("Trainer", "model_run"):
      report["tensorboard_logdir"] = artifact.uri
    elif (node_id, key) == ("Trainer", "model"):
      report["model_dir"] = artifact.uri
      report["train_seconds"] = _producer_seconds(store, artifact.id)
    elif node_id == "ServingPusher":
      report["pushed"] = bool(props["pushed"].int_value) if (
          "pushed" in props) else False
      if report["pushed"]:
        report["serving_dir"] = props["pushed_destination"].string_value
        report["pushed_version"] = props["pushed_version"].string_value
  return report


# What the console summary shows; report.html and the JSON have the rest.
_MINING_SECTIONS = ("set_aside", "catalog", "queries", "examples")
# The candidate and what the blessing compares it with.
_SYSTEMS = (evaluator_spec.CANDIDATE, *blessing.REFERENCES)
# Reported anomalies the console shows per input before "and N more".
_REPORTED_SHOWN = 3
_HEADLINE_METRICS = ("recall@10", "recall@100", "recall@1000", "ndcg@10",
                     "exact_recall@100", "index_recall@100")


def _data_gate_lines(gate: Dict[str, Any]) -> List[str]:
  """What the data checks reported (not blocking) and the drift measured."""
  lines = ["Data checks:"]
  for name, sentences in gate["reported"].items():
    label = schemas.INPUT_LABELS[name]
    if not sentences:
      lines.append(f"  the {label}: no anomaly against the schema")
      continue
    more = len(sentences) - _REPORTED_SHOWN
    lines.append(f"  the {label}: " + "; ".join(sentences[:_REPORTED_SHOWN]) +
                 (f"; and {more} more" if more > 0 else "") +
                 " (reported, not blocking)")
  if gate["compared_with"] is None:
    lines.append("  drift: nothing served yet to compare with")
    return lines
  lines.append(f"  drift against served version {gate['compared_with']}" +
               (" (accepted for this run)" if gate["drift_accepted"] else "")
               + ":")
  lines += [f"    {drift.describe(entry)}" +
            ("  EXCEEDED" if entry["exceeded"] else "")
            for entry in gate["drift"]]
  return lines


def format_report(report: Dict[str, Any]) -> str:
  lines = ["", f"Pipeline run {report['run']}", "Component wall times:"]
  for name, info in report["components"].items():
    lines.append(f"  {name:<28} {info['seconds']:>8.1f} s  {info['state']}")
  if report.get("data_gate"):
    lines += _data_gate_lines(report["data_gate"])
  mining = report.get("mining") or {}
  if mining:
    lines.append("Mining: " + json.dumps(
        {k: v for k, v in mining.items() if not isinstance(v, dict)}))
    for key in _MINING_SECTIONS:
      if key in mining:
        lines.append(f"  {key}: {json.dumps(mining[key])}")
  evaluation = report.get("evaluation") or {}
  candidate = evaluation.get("candidate") or {}
  if candidate:
    judged_on = evaluation.get("judged_on", "eval_split").replace("_", " ")
    systems = {name: evaluation.get(name) or {} for name in _SYSTEMS}
    systems = {name: values for name, values in systems.items() if values}
    lines.append(f"Evaluation on the {judged_on}, whole catalogue (every "
                 "metric is in report.html):")
    lines.append(f"  {'':<24}" + "".join(f"{name:>12}" for name in systems))
    for key in _HEADLINE_METRICS:
      if key in candidate:
        lines.append(f"  {key:<24}" + "".join(
            f"{values[key]:>12.4f}" if key in values else f"{'':>12}"
            for values in systems.values()))
  reason = report.get("blessing_reason") or evaluation.get("reason")
  lines.append(f"Blessed: {report.get('blessed')}" +
               (f" ({reason})" if reason else ""))
  if report.get("pushed"):
    lines.append(f"Pushed version {report['pushed_version']} to "
                 f"{report['serving_dir']}")
  else:
    lines.append("Nothing pushed (the model was not blessed).")
  if report.get("tensorboard_logdir"):
    lines.append(f"TensorBoard: tensorboard --logdir "
                 f"{report['tensorboard_logdir']}")
  if "wall_seconds" in report:
    lines.append(f"Total wall time: {report['wall_seconds']:.1f} s")
  return "\n".join(lines)
