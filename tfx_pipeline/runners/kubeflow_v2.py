"""Compiles the pipeline for Kubeflow Pipelines v2 (e.g. Vertex AI Pipelines).

    python -m tfx_pipeline.runners.kubeflow_v2 \
        --image gcr.io/PROJECT/mmse:latest --output mmse_pipeline.json \
        --logs 'gs://BUCKET/logs/*.csv.gz' --catalog gs://BUCKET/catalog.csv \
        --root gs://BUCKET/mmse [--dataflow-project P --dataflow-region R]

The image is this repository `pip install`ed on `tensorflow/tfx:1.16.0`
(README, "Running at scale"); submit the JSON with the KFP or Vertex AI
client.
"""
import argparse
import os

from tfx import v1 as tfx

from tfx_pipeline import configs
from tfx_pipeline import pipeline


def compile_pipeline(config: configs.PipelineConfig, image: str,
                     output_path: str) -> str:
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  runner.run(pipeline.create_pipeline(config))
  return output_path


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image", required=True)
  parser.add_argument("--output", default="mmse_pipeline.json")
  parser.add_argument("--logs", required=True)
  parser.add_argument("--catalog", required=True)
  parser.add_argument("--root", required=True, help="Pipeline root URI.")
  parser.add_argument("--dataflow-project")
  parser.add_argument("--dataflow-region")
  args = parser.parse_args(argv)
  beam_args = configs.PipelineConfig.beam_pipeline_args
  if args.dataflow_project:
    beam_args = configs.dataflow_beam_pipeline_args(
        args.dataflow_project, args.dataflow_region,
        temp_location=os.path.join(args.root, "beam-tmp"))
  config = configs.PipelineConfig(
      logs_pattern=args.logs, catalog_path=args.catalog,
      output_dir=args.root, beam_pipeline_args=tuple(beam_args))
  print(compile_pipeline(config, args.image, args.output))


if __name__ == "__main__":
  main()
