"""Publishes each served model as `<serving_dir>/<name>/<version>/`.

A TF Serving instance polling the directory must never load a half-copied
version, and a reader must never pair towers of two runs, so the three go
through `serving_layout.publish_release`: each version is copied aside and
renamed into place, under one marker that hides the push until all three
have landed (a killed push stays hidden and is removed by the next). They
share one integer version, one more than the highest present, so a client
can tell which towers belong together.
Each version is written with its warm-up requests (`contracts.
serving_warmup`): real queries of the run and rows of its catalogue, in
batches of the sizes the server merges requests into. The query tower's
also carries the statistics of the logs it was trained on, which the next
run's DataGate measures drift against.
"""
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from absl import logging
import numpy as np
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import artifacts
from components.serving_pusher import spec
from contracts import catalog as catalog_lib
from contracts import features
from contracts import serving_layout
from contracts import serving_warmup
from retrieval import ann
from validation import schemas

# Rows of each warm-up request: lone queries and the batches that concurrent
# requests merge into.
WARMUP_BATCH_SIZES = (1, 1, 1, 2, 4, 8, 8, 16, 32, 64)
# Distinct queries and catalogue rows the warm-up requests draw from.
WARMUP_ROWS = 128


def model_sources(model_uri: str, index_uri: str) -> Dict[str, str]:
  """Where each served SavedModel lives inside the pipeline's artifacts."""
  return {
      serving_layout.QUERY_TOWER: serving_layout.trained_tower_dir(
          model_uri, serving_layout.QUERY_TOWER),
      serving_layout.ITEM_TOWER: serving_layout.trained_tower_dir(
          model_uri, serving_layout.ITEM_TOWER),
      serving_layout.RETRIEVAL: serving_layout.indexed_retrieval_dir(
          index_uri),
  }


def warmup_columns(examples_uri: str, catalog_uri: str,
                   rows: int = WARMUP_ROWS) -> Dict[str, Sequence]:
  """Queries of the mined train split and catalogue rows, by input name."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  files = fileio.glob(os.path.join(examples_uri, "Split-train", "*"))
  if not files:
    raise FileNotFoundError(f"No train split under {examples_uri}")
  queries = {}
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    example = tf.train.Example.FromString(record.numpy())
    text = example.features.feature[features.QUERY].bytes_list.value[0]
    queries.setdefault(text.decode("utf-8"), None)
    if len(queries) >= rows:
      break
  catalog = catalog_lib.read_catalog(
      os.path.join(catalog_uri, artifacts.CATALOG_FILE))
  # Rows spread over the id range, not the first few ids only.
  picked = np.linspace(0, len(catalog) - 1, min(rows, len(catalog))).astype(
      int)
  columns = {name: column[picked].tolist()
             for name, column in catalog.columns.items()}
  return {features.QUERY: list(queries), **columns}


def _write_version(source: str, staging: str, name: str,
                   columns: Optional[Mapping[str, Sequence]],
                   logs_statistics: Optional[str]) -> None:
  """One model's version: its SavedModel, warm-up requests and, for the
  query tower, the logs' statistics."""
  io_utils.copy_dir(source, staging)
  if columns is not None:
    serving_warmup.write(staging, serving_warmup.requests_for(
        staging, name, columns, WARMUP_BATCH_SIZES))
  if logs_statistics and name == serving_layout.QUERY_TOWER:
    io_utils.copy_dir(logs_statistics, serving_layout.training_statistics_dir(
        staging, schemas.LOGS))


def served_version_of(sources: Dict[str, str],
                      serving_dir: str) -> Optional[int]:
  """The newest served version if it holds exactly these models, else None.

  A rerun whose blessing changed only because it now compares the model
  with itself must not push the same towers again.
  """
  try:
    latest = {name: serving_layout.latest_version_dir(serving_dir, name)
              for name in sources}
  except FileNotFoundError:
    return None
  versions = {os.path.basename(path) for path in latest.values()}
  if len(versions) != 1 or any(
      ann.saved_model_fingerprint(latest[name]) !=
      ann.saved_model_fingerprint(source) for name, source in sources.items()):
    return None
  return int(versions.pop())


def push(sources: Dict[str, str], serving_dir: str,
         warmup: Optional[Mapping[str, Sequence]] = None,
         logs_statistics: Optional[str] = None) -> int:
  """Copies every source SavedModel in as one new version; returns it.

  If the newest served version already holds them, returns that instead.

  `warmup` (`warmup_columns`) gives each version its warm-up requests;
  `logs_statistics` (an ExampleStatistics directory) goes into the query
  tower's.
  """
  for name, source in sources.items():
    if not fileio.exists(
        os.path.join(source, serving_layout.SAVED_MODEL_FILE)):
      raise FileNotFoundError(f"No SavedModel for {name} at {source}")
  version = served_version_of(sources, serving_dir)
  if version is not None:
    logging.info("%s already serves these models as version %d; nothing "
                 "new pushed", serving_dir, version)
    return version
  version = serving_layout.publish_release(serving_dir, {
      name: lambda staging, source=source, name=name: _write_version(
          source, staging, name, warmup, logs_statistics)
      for name, source in sources.items()})
  logging.info("Pushed %s as version %d to %s", ", ".join(sources), version,
               serving_dir)
  return version


class Executor(pusher_executor.Executor):
  """Reuses the stock Pusher's blessing check and PushedModel properties."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    pushed_model = artifact_utils.get_single_instance(
        output_dict[spec.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      logging.warning("The model was not blessed; nothing is pushed.")
      self._MarkNotPushed(pushed_model)
      return
    model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    index = artifact_utils.get_single_instance(input_dict[spec.INDEX_KEY])
    serving_dir = exec_properties[spec.SERVING_DIR_KEY]
    warmup = warmup_columns(
        artifact_utils.get_single_uri(input_dict[spec.EXAMPLES_KEY]),
        artifact_utils.get_single_uri(input_dict[spec.CATALOG_KEY]))
    statistics = input_dict.get(spec.LOGS_STATISTICS_KEY) or []
    version = push(model_sources(model.uri, index.uri), serving_dir, warmup,
                   statistics[0].uri if statistics else None)
    self._MarkPushed(pushed_model, pushed_destination=serving_dir,
                     pushed_version=str(version))
