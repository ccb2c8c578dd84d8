"""Compiles the pipeline for Kubeflow Pipelines v2 (e.g. Vertex AI Pipelines).

    mmse compile --target kubeflow --image gcr.io/PROJECT/mmse:1 \
        --out mmse_pipeline.json --logs 'gs://BUCKET/logs/*.csv.gz' \
        --catalog gs://BUCKET/catalog.csv --root gs://BUCKET/mmse \
        [--schema gs://BUCKET/schemas] \
        [--beam dataflow --beam-arg=--project=P --beam-arg=--region=R]

Compiling is offline: it writes the PipelineJob JSON of `KubeflowV2DagRunner`
and submits nothing (the KFP or Vertex AI client does). Every step runs in
the image the `Dockerfile` builds (this repository installed on
`tensorflow/tfx:1.16.0`, at `IMAGE_REPOSITORY_DIR`), so every path in the
spec is a URI the user gave or a path inside that image, never one of the
machine that compiled it.
"""
import dataclasses
import os

from tfx import v1 as tfx

from tfx_pipeline import configs
from tfx_pipeline import pipeline
from validation import schemas

# Where the Dockerfile copies this repository inside the image.
IMAGE_REPOSITORY_DIR = "/mmse"
# What a remote Beam profile (Dataflow) ships to its workers.
IMAGE_SETUP_FILE = IMAGE_REPOSITORY_DIR + "/setup.py"


def for_the_image(config: configs.PipelineConfig) -> configs.PipelineConfig:
  """`config` with the packaged files it names at their place in the image.

  The shipped schemas are files of this package; in the image they are
  under `IMAGE_REPOSITORY_DIR`. A schema directory the user gave is kept.
  """
  if config.schema_dir:
    return config
  shipped = os.path.relpath(schemas.SHIPPED_DIR, configs.REPOSITORY_DIR)
  return dataclasses.replace(
      config, schema_dir=os.path.join(IMAGE_REPOSITORY_DIR, shipped))


def compile_pipeline(config: configs.PipelineConfig, image: str,
                     output_path: str) -> str:
  """Writes the PipelineJob JSON for `config` run in `image`; returns it."""
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  runner.run(pipeline.create_pipeline(for_the_image(config)))
  return output_path
