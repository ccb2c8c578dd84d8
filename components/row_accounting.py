"""Every row accounted for between the Beam stages, on any runner.

A runner that loses records must fail the run, never pass it: Beam 2.61's
DirectRunner with worker processes delivers fewer records than it reads, a
different share each time, and says nothing. So each Beam component checks
its own books after its pipeline has finished, against what is on disk:
ExampleGen, the rows it read from each file against the Examples it wrote;
mining, the Examples it was given against the rows it counted, those
against the rows kept and set aside, and its slates per split against the
records written. A difference stops the run with `RowsLost`, naming the
stage and both counts.
"""
import hashlib
import json
import os
from typing import Dict, Iterable

import tensorflow as tf
from tfx import types
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

# Custom property of an Examples artifact: the records its splits hold, as
# counted on disk after they were written.
RECORDS_PROPERTY = "records"


class RowsLost(RuntimeError):
  """Two counts of the same rows differ: the runner lost or made some."""


def check(stage: str, expected_what: str, expected: int, actual_what: str,
          actual: int) -> None:
  """Raises RowsLost unless `expected == actual`."""
  if expected != actual:
    raise RowsLost(
        f"{stage}: {expected_what} {expected:,} but {actual_what} "
        f"{actual:,} ({actual - expected:+,}); the Beam runner lost or "
        "duplicated records, so this run stops here rather than train on "
        "part of the data. Rerun it; on the DirectRunner, use one process "
        "(`--beam local`) or a distributed runner (`--beam flink`).")


def count_records(paths: Iterable[str]) -> int:
  """TFRecords in files (gzip when the name ends in .gz), counted by
  tf.data, so outside the runner that wrote them."""
  total = 0
  for path in paths:
    dataset = tf.data.TFRecordDataset(
        path, compression_type="GZIP" if path.endswith(".gz") else "")
    total += int(dataset.batch(4096).reduce(tf.constant(0, tf.int64),
                                            _add_batch))
  return total


@tf.autograph.experimental.do_not_convert
def _add_batch(count, batch):
  return count + tf.shape(batch, out_type=tf.int64)[0]


def split_records(examples: types.Artifact) -> Dict[str, int]:
  """The records of each split of an Examples artifact, counted on disk."""
  return {
      split: count_records(sorted(fileio.glob(os.path.join(
          artifact_utils.get_split_uri([examples], split), "*"))))
      for split in artifact_utils.decode_split_names(examples.split_names)}


def records_of(examples: types.Artifact) -> int:
  """The records of an Examples artifact: as its producer counted them, or
  counted now (an artifact written before the property existed)."""
  if examples.has_custom_property(RECORDS_PROPERTY):
    return int(examples.get_int_custom_property(RECORDS_PROPERTY))
  return sum(split_records(examples).values())


def write_count(directory: str, source: str, count: int) -> None:
  """The count of one source (an input file) as a small JSON file, from
  inside a Beam worker.

  Named by a hash of `source` and written whole under a temporary name,
  then renamed, so a retried bundle replaces its count rather than adding to
  it.
  """
  fileio.makedirs(directory)
  name = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
  path = os.path.join(directory, f"{name}.json")
  with fileio.open(path + ".tmp", "w") as f:
    f.write(json.dumps({"source": source, "count": count}))
  fileio.rename(path + ".tmp", path, overwrite=True)


def read_counts(directory: str) -> Dict[str, int]:
  """The counts `write_count` left in `directory`, by source."""
  counts = {}
  for path in sorted(fileio.glob(os.path.join(directory, "*.json"))):
    with fileio.open(path) as f:
      written = json.load(f)
    counts[written["source"]] = written["count"]
  return counts
