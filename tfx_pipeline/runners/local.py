"""Runs the pipeline in this process with LocalDagRunner and SQLite MLMD."""
import os

from tfx import v1 as tfx

from tfx_pipeline import configs
from tfx_pipeline import pipeline


def run(config: configs.PipelineConfig, enable_cache: bool = False) -> None:
  os.makedirs(config.output_dir, exist_ok=True)
  tfx.orchestration.LocalDagRunner().run(
      pipeline.create_pipeline(
          config,
          enable_cache=enable_cache,
          metadata_connection_config=tfx.orchestration.metadata
          .sqlite_metadata_connection_config(config.metadata_path)))
