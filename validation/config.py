"""Knobs of the data checks: what counts as drift from the served data."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
  """How far a run's logs may move from those of the model that serves now,
  and how much of them may be set aside.

  Drift is measured against the statistics pushed with the served version,
  so the first run into a serving directory has nothing to compare with.
  A run over a threshold completes its report but is not blessed or pushed.
  The defaults pass the two weeks of the benchmark's logs against each
  other and stop logs that lost half of their queries (README, "Data gates").
  """
  # L-infinity distance (the largest change of any one value's share of the
  # rows) of the queries searched, and of the items shown.
  max_query_drift: float = 0.05
  max_item_drift: float = 0.05
  # Largest change of the click, add-to-cart and order rates, relative to
  # the served data's (0.25: a click rate of 4% may move to 3%-5%).
  max_feedback_rate_change: float = 0.25
  # A run whose mining sets aside more than this share of the log rows
  # (malformed, unknown items, ...) is not blessed or pushed either.
  max_set_aside_share: float = 0.05
  # Blesses and pushes despite drift, for one run, on purpose (the drift is
  # still reported): `mmse run --accept-drift`.
  accept_drift: bool = False
