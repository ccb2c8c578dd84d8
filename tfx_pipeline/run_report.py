"""What the latest pipeline run did, read back from ML Metadata.

`mmse run` prints this at the end: the wall time of every component (the
benchmark issue asks for it), what the mining step set aside, the evaluator's
metrics and decision, and where the pushed model and TensorBoard logs are.
"""
import json
import os
from typing import Any, Dict

from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

from components.multistage_samples import spec as mining_spec

_NODE_CONTEXT = "node"
_RUN_CONTEXT = "pipeline_run"


def _read_json(path: str):
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  return None


def _seconds(execution) -> float:
  return round((execution.last_update_time_since_epoch -
                execution.create_time_since_epoch) / 1000.0, 1)


def _producer_seconds(store, artifact_id: int) -> float:
  """Wall time of the execution that wrote an artifact.

  A cached component's execution takes no time and points at an earlier
  run's output; the time worth reporting is that earlier execution's.
  """
  events = store.get_events_by_artifact_ids([artifact_id])
  producers = store.get_executions_by_id(
      [e.execution_id for e in events
       if e.type == metadata_store.proto.Event.OUTPUT])
  complete = [e for e in producers if e.last_known_state ==
              metadata_store.proto.Execution.COMPLETE]
  return _seconds(min(complete or producers,
                      key=lambda e: e.create_time_since_epoch))


def latest_run(metadata_path: str) -> Dict[str, Any]:
  """Summarises the most recent pipeline run recorded in `metadata_path`."""
  store = metadata_store.MetadataStore(
      metadata.sqlite_metadata_connection_config(metadata_path))
  runs = store.get_contexts_by_type(_RUN_CONTEXT)
  if not runs:
    raise ValueError(f"No pipeline run recorded in {metadata_path}")
  run = max(runs, key=lambda c: c.create_time_since_epoch)
  run_executions = {e.id: e for e in store.get_executions_by_context(run.id)}

  components = {}
  outputs = {}
  for node in store.get_contexts_by_type(_NODE_CONTEXT):
    node_id = node.name.split(".", 1)[-1]
    for execution in store.get_executions_by_context(node.id):
      if execution.id not in run_executions:
        continue
      components[node_id] = {
          "state": metadata_store.proto.Execution.State.Name(
              execution.last_known_state),
          "seconds": _seconds(execution),
      }
      events = [e for e in store.get_events_by_execution_ids([execution.id])
                if e.type == metadata_store.proto.Event.OUTPUT]
      artifacts = {a.id: a for a in store.get_artifacts_by_id(
          [e.artifact_id for e in events])}
      for event in events:
        key = event.path.steps[0].key if event.path.steps else ""
        outputs[(node_id, key)] = artifacts[event.artifact_id]

  report: Dict[str, Any] = {"run": run.name, "components": components}
  for (node_id, key), artifact in outputs.items():
    props = artifact.custom_properties
    if (node_id, key) == ("MultiStageSamples", "report"):
      report["mining"] = _read_json(os.path.join(artifact.uri, mining_spec.COUNTS_FILE))
    elif (node_id, key) == ("MultiStageSamples", "examples"):
      report["examples_dir"] = artifact.uri
    elif (node_id, key) == ("RetrievalEvaluator", "blessing"):
      report["blessed"] = bool(props["blessed"].int_value) if (
          "blessed" in props) else None
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


def format_report(report: Dict[str, Any]) -> str:
  lines = ["", f"Pipeline run {report['run']}", "Component wall times:"]
  for name, info in report["components"].items():
    lines.append(f"  {name:<28} {info['seconds']:>8.1f} s  {info['state']}")
  mining = report.get("mining") or {}
  if mining:
    lines.append("Mining: " + json.dumps(
        {k: v for k, v in mining.items() if not isinstance(v, dict)}))
    for key, value in mining.items():
      if isinstance(value, dict):
        lines.append(f"  {key}: {json.dumps(value)}")
  evaluation = report.get("evaluation") or {}
  candidate = evaluation.get("candidate") or evaluation.get("metrics") or {}
  if candidate:
    lines.append("Evaluation (eval queries, whole catalogue):")
    for key, value in candidate.items():
      lines.append(f"  {key:<24} {value:.4f}" if isinstance(value, float)
                   else f"  {key:<24} {value}")
  lines.append(f"Blessed: {report.get('blessed')}")
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
