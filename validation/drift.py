"""How far a run's logs moved from those of the model that serves now.

Queries and items are compared with TFDV's L-infinity drift comparator
(the largest change of any one value's share of the rows); the click,
add-to-cart and order rates by their relative change. Both sides are the
logs' `train` split statistics, so they are measured alike.
"""
from typing import Any, Dict, List, Mapping, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from contracts import features
from validation import schemas
from validation.config import ValidationConfig

FEEDBACK_COLUMNS = (features.CLICKED, features.ADDED_TO_CART,
                    features.ORDERED)
L_INFINITY = "L-infinity"
RELATIVE_RATE_CHANGE = "relative rate change"


def _thresholds(config: ValidationConfig) -> Dict[str, float]:
  return {features.QUERY: config.max_query_drift,
          features.ITEM_ID: config.max_item_drift}


def _means(statistics: statistics_pb2.DatasetFeatureStatisticsList
          ) -> Dict[str, float]:
  return {name: f.num_stats.mean for name, f in
          schemas.column_statistics(statistics.datasets[0]).items()
          if f.HasField("num_stats")}


def measure(current: statistics_pb2.DatasetFeatureStatisticsList,
            previous: statistics_pb2.DatasetFeatureStatisticsList,
            schema: schema_pb2.Schema,
            config: ValidationConfig) -> List[Dict[str, Any]]:
  """One entry per measured column: measure, value, threshold, exceeded."""
  compared = schema_pb2.Schema()
  compared.CopyFrom(schema)
  thresholds = _thresholds(config)
  for feature in compared.feature:
    if feature.name in thresholds:
      feature.drift_comparator.infinity_norm.threshold = thresholds[
          feature.name]
  anomalies = tfdv.validate_statistics(current, compared,
                                       previous_statistics=previous)
  result = []
  for info in anomalies.drift_skew_info:
    column = info.path.step[0]
    for measurement in info.drift_measurements:
      result.append(_entry(column, L_INFINITY, measurement.value,
                           measurement.threshold))
  before, now = _means(previous), _means(current)
  for column in FEEDBACK_COLUMNS:
    if before.get(column) and column in now:
      change = abs(now[column] - before[column]) / before[column]
      result.append(_entry(column, RELATIVE_RATE_CHANGE, change,
                           config.max_feedback_rate_change,
                           was=before[column], now=now[column]))
  return sorted(result, key=lambda e: (e["column"], e["measure"]))


def _entry(column: str, measure_name: str, value: float, threshold: float,
           **extra) -> Dict[str, Any]:
  return {"column": column, "measure": measure_name, "value": value,
          "threshold": threshold, "exceeded": value > threshold, **extra}


def describe(entry: Mapping[str, Any]) -> str:
  """One drift entry as a sentence."""
  text = (f"{entry['column']} {entry['measure']} {entry['value']:.4f} "
          f"(threshold {entry['threshold']:.4f})")
  if "was" in entry:
    text += f": rate {entry['was']:.4f} -> {entry['now']:.4f}"
  return text


def exceeded(report: Optional[Mapping[str, Any]]) -> List[str]:
  """The drift entries of a data gate report over their threshold."""
  if not report:
    return []
  return [f"drift against served version {report['compared_with']}: "
          f"{describe(e)}" for e in report.get("drift", []) if e["exceeded"]]


def problems(report: Optional[Mapping[str, Any]]) -> List[str]:
  """`exceeded`, unless the run accepts the drift."""
  if report and report.get("drift_accepted"):
    return []
  return exceeded(report)
