"""ExampleValidator's anomalies in a user's words, split into those that
stop a run and those that are only reported.

Structural problems of a required column (missing, another type, mostly
empty) and an input without rows stop the run: nothing downstream could
be trusted. Values outside a domain (a flag of 2, a position of 0) are
row-level dirt that mining sets aside and counts; new columns are ordinary
(the pipeline ignores what it does not use); problems of optional columns
only weaken what they feed. Those are reported, not blocking.
"""
from typing import List, Mapping, NamedTuple, Tuple

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2

from validation import schemas

_Type = anomalies_pb2.AnomalyInfo.Type
# Row-level: mining sets the rows aside, or the pipeline ignores the column.
_REPORTED_ONLY = {
    _Type.INT_TYPE_SMALL_INT, _Type.INT_TYPE_BIG_INT,
    _Type.FLOAT_TYPE_SMALL_FLOAT, _Type.FLOAT_TYPE_BIG_FLOAT,
    _Type.SCHEMA_NEW_COLUMN, _Type.ENUM_TYPE_UNEXPECTED_STRING_VALUES,
}
_MISSING = {_Type.SCHEMA_MISSING_COLUMN, _Type.FEATURE_TYPE_NOT_PRESENT}
_EMPTY = {_Type.FEATURE_TYPE_LOW_FRACTION_PRESENT,
          _Type.FEATURE_TYPE_LOW_NUMBER_PRESENT, _Type.FEATURE_TYPE_NO_VALUES}
_TOO_FEW_ROWS = {_Type.DATASET_LOW_NUM_EXAMPLES}
_STATS_TYPES = {
    statistics_pb2.FeatureNameStatistics.INT: schema_pb2.INT,
    statistics_pb2.FeatureNameStatistics.FLOAT: schema_pb2.FLOAT,
    statistics_pb2.FeatureNameStatistics.STRING: schema_pb2.BYTES,
    statistics_pb2.FeatureNameStatistics.BYTES: schema_pb2.BYTES,
}


_NO_ROWS = "it has no rows"


class Findings(NamedTuple):
  """Sentences about one input: what stops the run, what is only reported."""
  blocking: List[str]
  reported: List[str]


def _filled_share(stats: statistics_pb2.FeatureNameStatistics,
                  rows: int) -> float:
  common = (stats.num_stats.common_stats if stats.HasField("num_stats") else
            stats.string_stats.common_stats)
  return common.num_non_missing / rows if rows else 0.0


def _sentence(name: str, reason: anomalies_pb2.AnomalyInfo.Reason,
              feature: schema_pb2.Feature,
              stats: Mapping[str, statistics_pb2.FeatureNameStatistics],
              rows: int) -> str:
  if reason.type in _TOO_FEW_ROWS:
    return _NO_ROWS
  if reason.type in _MISSING:
    present = ", ".join(sorted(stats)) or "none"
    return f"column {name!r} is missing (columns present: {present})"
  found = stats.get(name)
  if found is not None and feature is not None:
    found_type = _STATS_TYPES.get(found.type)
    if found_type is not None and found_type != feature.type:
      return (f"column {name!r} holds {schemas.type_words(found_type)} where "
              f"the schema expects {schemas.type_words(feature.type)} (a "
              "single cell of another kind changes the whole column)")
    if reason.type in _EMPTY:
      return (f"column {name!r} is filled in {_filled_share(found, rows):.1%} "
              f"of the rows; the schema asks for at least "
              f"{feature.presence.min_fraction:.0%}")
  return f"column {name!r}: {reason.description or reason.short_description}"


def findings(anomalies: anomalies_pb2.Anomalies, schema: schema_pb2.Schema,
             statistics: statistics_pb2.DatasetFeatureStatistics) -> Findings:
  """The anomalies of one split of one input as sentences."""
  features = {f.name: f for f in schema.feature}
  stats = schemas.column_statistics(statistics)
  result = Findings([], [])
  if not statistics.num_examples:  # TFDV checks nothing on no rows.
    result.blocking.append(_NO_ROWS)
    return result
  reasons: List[Tuple[str, anomalies_pb2.AnomalyInfo.Reason]] = []
  if anomalies.HasField("dataset_anomaly_info"):
    reasons += [("", r) for r in anomalies.dataset_anomaly_info.reason]
  for name, info in sorted(anomalies.anomaly_info.items()):
    reasons += [(name, r) for r in info.reason]
  for name, reason in reasons:
    feature = features.get(name)
    sentence = _sentence(name, reason, feature, stats,
                         statistics.num_examples)
    blocks = not name or (
        reason.type not in _REPORTED_ONLY and feature is not None and
        schemas.is_required(feature))
    target = result.blocking if blocks else result.reported
    if sentence not in target:
      target.append(sentence)
  return result
