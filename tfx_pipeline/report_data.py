"""Reads the artifacts a run report shows.

Training curves (TensorBoard events), quarantined rows, TFDV statistics and
ExampleValidator anomalies.
"""
import gzip
import json
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components.multistage_samples import spec as mining_spec
from mining import cleaning

EXAMPLES_PER_REASON = 3
# Reading a quarantine stops here even if a reason still lacks examples:
# the benchmark's quarantine holds many thousands of rows.
_MAX_QUARANTINE_LINES = 100_000

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


def _split_dirs(uri: str) -> List[Tuple[str, str]]:
  """[(split, dir)] of an artifact's Split-* folders, train first."""
  found = []
  for name in tf.io.gfile.listdir(uri):
    name = name.rstrip("/")
    if name.startswith("Split-"):
      found.append((name[len("Split-"):], os.path.join(uri, name)))
  return sorted(found, key=lambda s: (s[0] != "train", s[0]))


def load_statistics(uri: Optional[str]):
  """[(split, DatasetFeatureStatisticsList)] of a statistics artifact."""
  if not uri or not tf.io.gfile.isdir(uri):
    return []
  return [(split, tfdv.load_stats_binary(os.path.join(path, "FeatureStats.pb")))
          for split, path in _split_dirs(uri)
          if tf.io.gfile.exists(os.path.join(path, "FeatureStats.pb"))]


def statistics_rows(uri: Optional[str]) -> Optional[int]:
  splits = load_statistics(uri)
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
