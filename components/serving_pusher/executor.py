"""Writes each served model to `<serving_dir>/<name>/<version>/` atomically.

A TF Serving instance polling the directory must never load a half-copied
version, so every version is copied into a hidden sibling (TF Serving only
loads directories named by an integer) and then renamed into place. The same
integer version is used for all three models so a client can tell which
towers belong together; it is one more than the highest version present.
"""
import os
from typing import Any, Dict, List

from absl import logging
from tfx import types
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from tfx_pipeline import configs

MODELS_CONFIG = "models.config"


def model_sources(model_uri: str, index_uri: str) -> Dict[str, str]:
  """Where each served SavedModel lives inside the pipeline's artifacts."""
  serving = os.path.join(model_uri, "Format-Serving")
  return {
      configs.QUERY_TOWER: os.path.join(serving, configs.QUERY_TOWER),
      configs.ITEM_TOWER: os.path.join(serving, configs.ITEM_TOWER),
      configs.RETRIEVAL: os.path.join(index_uri, configs.RETRIEVAL),
  }


def existing_versions(model_dir: str) -> List[int]:
  if not fileio.isdir(model_dir):
    return []
  names = (n.rstrip("/") for n in fileio.listdir(model_dir))
  return sorted(int(n) for n in names if n.isdigit())


def models_config_text(serving_dir: str) -> str:
  """TF Serving's ModelServerConfig (text proto) for the served models."""
  entries = "".join(
      f"  config {{\n    name: \"{name}\"\n"
      f"    base_path: \"{os.path.join(serving_dir, name)}\"\n"
      f"    model_platform: \"tensorflow\"\n  }}\n"
      for name in configs.SERVED_MODELS)
  return f"model_config_list {{\n{entries}}}\n"


def push(sources: Dict[str, str], serving_dir: str) -> int:
  """Copies every source SavedModel in as one new version; returns it."""
  for name, source in sources.items():
    if not fileio.exists(os.path.join(source, "saved_model.pb")):
      raise FileNotFoundError(f"No SavedModel for {name} at {source}")
  version = 1 + max(
      [0] + [v for name in sources
             for v in existing_versions(os.path.join(serving_dir, name))])
  for name, source in sources.items():
    final = os.path.join(serving_dir, name, str(version))
    staging = os.path.join(serving_dir, name, f".{version}.incomplete")
    if fileio.exists(staging):
      fileio.rmtree(staging)
    io_utils.copy_dir(source, staging)
    fileio.rename(staging, final)
    logging.info("Pushed %s version %d to %s", name, version, final)
  config_path = os.path.join(serving_dir, MODELS_CONFIG)
  io_utils.write_string_file(config_path + ".incomplete",
                             models_config_text(serving_dir))
  fileio.rename(config_path + ".incomplete", config_path, overwrite=True)
  return version


class Executor(pusher_executor.Executor):
  """Reuses the stock Pusher's blessing check and PushedModel properties."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    pushed_model = artifact_utils.get_single_instance(
        output_dict["pushed_model"])
    if not self.CheckBlessing(input_dict):
      logging.warning("The model was not blessed; nothing is pushed.")
      self._MarkNotPushed(pushed_model)
      return
    model = artifact_utils.get_single_instance(input_dict["model"])
    index = artifact_utils.get_single_instance(input_dict["index"])
    serving_dir = exec_properties["serving_dir"]
    version = push(model_sources(model.uri, index.uri), serving_dir)
    self._MarkPushed(pushed_model, pushed_destination=serving_dir,
                     pushed_version=str(version))
