"""Publishes each served model as `<serving_dir>/<name>/<version>/`.

A TF Serving instance polling the directory must never load a half-copied
version, so every version goes through `serving_layout.publish` (copied
aside, then renamed into place). The same integer version is used for all
three models so a client can tell which towers belong together; it is one
more than the highest version present (`serving_layout.next_version`).
"""
import os
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.serving_pusher import spec
from contracts import serving_layout


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


def push(sources: Dict[str, str], serving_dir: str) -> int:
  """Copies every source SavedModel in as one new version; returns it."""
  for name, source in sources.items():
    if not fileio.exists(
        os.path.join(source, serving_layout.SAVED_MODEL_FILE)):
      raise FileNotFoundError(f"No SavedModel for {name} at {source}")
  version = serving_layout.next_version(serving_dir)
  for name, source in sources.items():
    final = serving_layout.publish(
        serving_dir, name, version,
        lambda staging, source=source: io_utils.copy_dir(source, staging))
    logging.info("Pushed %s version %d to %s", name, version, final)
  serving_layout.write_models_config(serving_dir)
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
    version = push(model_sources(model.uri, index.uri), serving_dir)
    self._MarkPushed(pushed_model, pushed_destination=serving_dir,
                     pushed_version=str(version))
