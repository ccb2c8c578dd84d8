"""DataGate's executor: stop on inputs that fail their schema, measure drift.

A required column that is missing, of another type or mostly empty, or an
input without rows, raises `InputRejected` with one message naming the
files, the schema and every problem, so the run stops before mining and
nothing is trained or pushed. Otherwise the anomalies that only warn are
logged and kept, and the logs' statistics are compared with those pushed
with the served version (`validation.drift`); the evaluator refuses to
bless while a threshold is exceeded and the drift is not accepted, while
mining set aside more of the rows than the report's
`max_set_aside_share`, or while mining read a different number of log
rows than ExampleGen wrote (the report's `logs_examples`).
"""
import json
import os
from typing import Any, Dict, List

from absl import logging
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.data_gate import spec
from contracts import config_io
from contracts import serving_layout
from validation import anomalies as anomalies_lib
from validation import drift
from validation import schemas
from validation.config import ValidationConfig

_FILES_NAMED = 3  # Files a message lists before "and N more".


class InputRejected(ValueError):
  """An input fails its schema; the message says where and how."""


def _describe_files(pattern: str) -> str:
  files = sorted(fileio.glob(pattern))
  if not files or files == [pattern]:
    return pattern
  named = ", ".join(os.path.basename(f) for f in files[:_FILES_NAMED])
  more = (f" and {len(files) - _FILES_NAMED} more"
          if len(files) > _FILES_NAMED else "")
  count = f"{len(files)} file{'s' if len(files) > 1 else ''}"
  return f"{pattern} ({count}: {named}{more})"


def _split_file(artifact: types.Artifact, split: str, name: str) -> str:
  return os.path.join(artifact_utils.get_split_uri([artifact], split), name)


def _drift_split_statistics(statistics_dir: str) -> str:
  """The compared split's file in a StatisticsGen output directory."""
  return os.path.join(statistics_dir, f"Split-{spec.DRIFT_SPLIT}",
                      spec.STATISTICS_FILE)


def input_findings(statistics: types.Artifact, schema: types.Artifact,
                   anomalies: types.Artifact) -> anomalies_lib.Findings:
  """The findings of every split of one input, each sentence once."""
  schema_proto = schemas.load(io_utils.get_only_uri_in_dir(schema.uri))
  merged = anomalies_lib.Findings([], [])
  for split in artifact_utils.decode_split_names(anomalies.split_names):
    found = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(
        _split_file(anomalies, split, spec.ANOMALIES_FILE)))
    split_statistics = tfdv.load_stats_binary(
        _split_file(statistics, split, spec.STATISTICS_FILE)).datasets[0]
    findings = anomalies_lib.findings(found, schema_proto, split_statistics)
    for merged_list, new in zip(merged, findings):
      merged_list.extend(s for s in new if s not in merged_list)
  return merged


def examples_count(statistics: types.Artifact) -> int:
  """The examples of every split of one input, as its statistics count."""
  return sum(
      tfdv.load_stats_binary(_split_file(
          statistics, split, spec.STATISTICS_FILE)).datasets[0].num_examples
      for split in artifact_utils.decode_split_names(statistics.split_names))


def rejection_message(name: str, source: Dict[str, str],
                      blocking: List[str]) -> str:
  files = _describe_files(source["files"])
  lines = [f"The {schemas.INPUT_LABELS[name]} {files} fail the schema "
           f"{source['schema']}:"]
  lines += [f"  - {sentence}" for sentence in blocking]
  return "\n".join(lines)


def served_statistics_dir(serving_dir: str):
  """(version, logs statistics dir) of the newest release, or (None, None)."""
  try:
    release = serving_layout.latest_release_dirs(
        serving_dir, serving_layout.SERVED_MODELS)
  except FileNotFoundError:
    return None, None
  query_dir = release[serving_layout.QUERY_TOWER]
  statistics_dir = serving_layout.training_statistics_dir(query_dir,
                                                          schemas.LOGS)
  if not fileio.exists(_drift_split_statistics(statistics_dir)):
    return None, None
  return int(os.path.basename(query_dir)), statistics_dir


class Executor(base_executor.BaseExecutor):
  """Rejects inputs that fail their schema; reports drift from the served."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    config = config_io.from_parameters(ValidationConfig, exec_properties)
    sources = json.loads(exec_properties[spec.SOURCES_KEY])

    def single(name, suffix):
      return artifact_utils.get_single_instance(
          input_dict[spec.key(name, suffix)])

    reported, rejections = {}, []
    for name in schemas.INPUTS:
      findings = input_findings(single(name, spec.STATISTICS_SUFFIX),
                                single(name, spec.SCHEMA_SUFFIX),
                                single(name, spec.ANOMALIES_SUFFIX))
      if findings.blocking:
        rejections.append(rejection_message(name, sources[name],
                                            findings.blocking))
      reported[name] = findings.reported
      for sentence in findings.reported:
        logging.warning("The %s: %s (reported, not blocking)",
                        schemas.INPUT_LABELS[name], sentence)
    if rejections:
      raise InputRejected(
          "\n".join(rejections) + "\nNothing was mined, trained or pushed. "
          "Fix the files, or review the schema (`mmse schema` writes one "
          "from your files; `mmse run --schema DIR` uses it).")

    version, served_dir = served_statistics_dir(
        exec_properties[spec.SERVING_DIR_KEY])
    entries = []
    if version is None:
      logging.info("Nothing served yet with its statistics: no drift to "
                   "measure")
    else:
      current = single(schemas.LOGS, spec.STATISTICS_SUFFIX).uri
      entries = drift.measure(
          tfdv.load_stats_binary(_drift_split_statistics(current)),
          tfdv.load_stats_binary(_drift_split_statistics(served_dir)),
          schemas.load(io_utils.get_only_uri_in_dir(
              single(schemas.LOGS, spec.SCHEMA_SUFFIX).uri)),
          config)
      for entry in entries:
        logging.info("Drift against served version %d: %s%s", version,
                     drift.describe(entry),
                     " EXCEEDED" if entry["exceeded"] else "")
    drifted = any(e["exceeded"] for e in entries)
    report = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])
    io_utils.write_string_file(
        os.path.join(report.uri, spec.REPORT_FILE),
        json.dumps({"reported": reported, "compared_with": version,
                    "drift": entries, "drift_accepted": config.accept_drift,
                    "max_set_aside_share": config.max_set_aside_share,
                    spec.LOGS_EXAMPLES: examples_count(
                        single(schemas.LOGS, spec.STATISTICS_SUFFIX))},
                   indent=2))
    report.set_int_custom_property("drifted", int(drifted))
