"""Compiles the pipeline for Kubeflow Pipelines v2 (e.g. Vertex AI Pipelines).

    mmse compile --target kubeflow --image gcr.io/PROJECT/mmse:1 \
        --out mmse_pipeline.json --logs 'gs://BUCKET/logs/*.csv.gz' \
        --catalog gs://BUCKET/catalog.csv --root gs://BUCKET/mmse \
        [--schema gs://BUCKET/schemas] \
        [--beam dataflow --beam-arg=--project=P --beam-arg=--region=R] \
        [--training-replicas 4 --vertex-project P --vertex-region R]

Compiling is offline: it writes the PipelineJob JSON of `KubeflowV2DagRunner`
and submits nothing (the KFP or Vertex AI client does). Every step runs in
the image the `Dockerfile` builds (this repository installed on
`tensorflow/tfx:1.16.0`, at `IMAGE_REPOSITORY_DIR`), so every path in the
spec is a URI the user gave or a path inside that image, never one of the
machine that compiled it.

With `--training-replicas N` the Trainer step does not train itself: it
submits a Vertex AI custom job (TFX's `google_cloud_ai_platform.Trainer`)
of N replicas of the same image, one chief and N-1 workers, and waits for
it. Vertex AI gives each replica its `TF_CONFIG`, so with N >= 2 the model
trains under `model.distribution=multi_worker`, one process per replica.
"""
import dataclasses
import os
from typing import Any, Dict, Optional

from tfx import v1 as tfx

from model import config as model_config
from tfx_pipeline import configs
from tfx_pipeline import pipeline
from tfx_pipeline.runners import flink
from validation import schemas

# Where the Dockerfile copies this repository inside the image.
IMAGE_REPOSITORY_DIR = "/mmse"
# What a remote Beam profile (Dataflow) ships to its workers.
IMAGE_SETUP_FILE = IMAGE_REPOSITORY_DIR + "/setup.py"
# Where the Dockerfile fetches the Flink cache (MMSE_FLINK_CACHE there):
# the `flink` profile's steps start Beam's job server from it.
IMAGE_FLINK_CACHE = "/opt/mmse-flink"
IMAGE_FLINK_JOB_SERVER_JAR = flink.job_server_jar(IMAGE_FLINK_CACHE)


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


@dataclasses.dataclass(frozen=True)
class VertexTraining:
  """The Trainer as a Vertex AI custom job of `replicas` machines."""
  project: str
  region: str
  replicas: int
  machine_type: str = "n1-standard-8"
  # A Vertex AI accelerator type (e.g. NVIDIA_TESLA_T4) and its count per
  # replica; none by default.
  accelerator_type: str = ""
  accelerator_count: int = 0

  def check(self) -> None:
    """Raises ValueError on a job Vertex AI would refuse."""
    if self.replicas < 1:
      raise ValueError(f"--training-replicas must be at least 1, got "
                       f"{self.replicas}")
    if not self.project or not self.region:
      raise ValueError("a Vertex AI training job needs --vertex-project and "
                       "--vertex-region")
    if bool(self.accelerator_type) != (self.accelerator_count > 0):
      raise ValueError("an accelerator needs a type and a count, e.g. "
                       "NVIDIA_TESLA_T4:1 (TYPE:COUNT)")

  def trainer_custom_config(self, image: str) -> Dict[str, Any]:
    """The custom_config keys of TFX's Vertex AI Trainer for this job."""
    machine = {"machine_type": self.machine_type}
    if self.accelerator_type:
      machine.update(accelerator_type=self.accelerator_type,
                     accelerator_count=self.accelerator_count)
    # Pool 0 is the chief; Vertex AI names the others' tasks "worker".
    pools = [{"machine_spec": machine, "replica_count": count,
              "container_spec": {"image_uri": image}}
             for count in (1, self.replicas - 1) if count]
    extension = tfx.extensions.google_cloud_ai_platform
    return {
        extension.ENABLE_VERTEX_KEY: True,
        extension.VERTEX_REGION_KEY: self.region,
        extension.TRAINING_ARGS_KEY: {
            "project": self.project,
            "job_spec": {"worker_pool_specs": pools},
        },
    }


def training_job(replicas: int, project: str = "", region: str = "",
                 machine_type: str = VertexTraining.machine_type,
                 accelerator: str = "") -> Optional[VertexTraining]:
  """The job `mmse compile`'s training flags describe; None without
  replicas (the Trainer step trains itself).

  Args:
    replicas: --training-replicas; 0 for none.
    project, region, machine_type: the job's --vertex-* and machine flags.
    accelerator: --training-accelerator, TYPE:COUNT or empty.

  Raises:
    ValueError: job flags without replicas, or an accelerator that is not
      TYPE:COUNT.
  """
  if not replicas:
    if project or region or accelerator:
      raise ValueError("--vertex-project, --vertex-region and "
                       "--training-accelerator describe the Vertex AI "
                       "training job of --training-replicas N")
    return None
  accelerator_type, _, count = accelerator.partition(":")
  if accelerator_type and not count.isdigit():
    raise ValueError("--training-accelerator is TYPE:COUNT, e.g. "
                     f"NVIDIA_TESLA_T4:1, got {accelerator!r}")
  return VertexTraining(project=project, region=region, replicas=replicas,
                        machine_type=machine_type,
                        accelerator_type=accelerator_type,
                        accelerator_count=int(count or 0))


def with_training(config: configs.PipelineConfig,
                  training: Optional[VertexTraining]) -> configs.PipelineConfig:
  """`config` with the distribution that `training`'s replicas need.

  Several replicas train under "multi_worker" (set here unless the config
  says so already); one replica, or the Trainer step itself (`training`
  None), under the config's own choice.

  Raises:
    ValueError: a bad job, or a distribution the replicas cannot run.
  """
  if training is not None:
    training.check()
  chosen = config.model.distribution
  if training is None or training.replicas == 1:
    if chosen == model_config.MULTI_WORKER:
      raise ValueError("model.distribution=multi_worker needs "
                       "--training-replicas 2 or more")
    return config
  if chosen not in (model_config.NO_DISTRIBUTION, model_config.MULTI_WORKER):
    raise ValueError(
        f"--training-replicas {training.replicas} trains under "
        f"model.distribution=multi_worker, not {chosen!r}")
  return dataclasses.replace(config, model=dataclasses.replace(
      config.model, distribution=model_config.MULTI_WORKER))


def compile_pipeline(config: configs.PipelineConfig, image: str,
                     output_path: str,
                     training: Optional[VertexTraining] = None) -> str:
  """Writes the PipelineJob JSON for `config` run in `image`; returns it.

  With `training`, the Trainer step runs as that Vertex AI job.

  Raises:
    ValueError: from `with_training`.
  """
  config = with_training(config, training)
  remote_trainer = (None if training is None else
                    training.trainer_custom_config(image))
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image),
      output_dir=os.path.dirname(os.path.abspath(output_path)),
      output_filename=os.path.basename(output_path))
  runner.run(pipeline.create_pipeline(for_the_image(config),
                                      remote_trainer=remote_trainer))
  return output_path
