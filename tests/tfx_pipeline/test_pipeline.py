"""Pipeline wiring and the runners that compile it for other orchestrators."""
import dataclasses
import json
import os

import pytest

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from contracts import config_io
from tfx_pipeline import cli
from tfx_pipeline import configs
from tfx_pipeline import pipeline
from tfx_pipeline.runners import kubeflow_v2
from validation import schemas


def _config(tmp_path):
  return configs.PipelineConfig(
      logs_pattern=str(tmp_path / "logs" / "*.csv.gz"),
      catalog_path=str(tmp_path / "catalog.csv"),
      output_dir=str(tmp_path / "out"))


def test_pipeline_wires_every_stage_in_order(tmp_path):
  built = pipeline.create_pipeline(_config(tmp_path))
  ids = [c.id for c in built.components]
  for expected in ("LogsExampleGen", "CatalogExampleGen", "LogsStatisticsGen",
                   "LogsSchemaImporter", "LogsExampleValidator",
                   "CatalogExampleValidator", "DataGate", "MultiStageSamples",
                   "Transform", "Trainer", "LatestBlessedModelResolver",
                   "RetrievalEvaluator", "IndexBuilder", "ServingPusher"):
    assert expected in ids
  # Components are sorted topologically: each comes after its inputs, and
  # mining after the gate that decides whether it may start.
  assert ids.index("LogsExampleValidator") < ids.index("DataGate")
  assert ids.index("CatalogExampleValidator") < ids.index("DataGate")
  assert ids.index("DataGate") < ids.index("MultiStageSamples")
  assert ids.index("MultiStageSamples") < ids.index("Transform") < ids.index(
      "Trainer") < ids.index("IndexBuilder") < ids.index(
          "RetrievalEvaluator") < ids.index("ServingPusher")


def test_knobs_reach_components_as_their_config_parameters(tmp_path):
  config = configs.with_overrides(
      _config(tmp_path), ["index.kind=faiss", "evaluation.cutoffs=[5, 50]",
                          "evaluation.blessing_metric=recall@50",
                          "mining.num_random_negatives=2", "text.vocab_size=9",
                          "validation.max_query_drift=0.2"])
  built = {c.id: c for c in pipeline.create_pipeline(config).components}
  for component_id, section in (("MultiStageSamples", config.mining),
                                ("IndexBuilder", config.index),
                                ("RetrievalEvaluator", config.evaluation),
                                ("DataGate", config.validation)):
    assert built[component_id].exec_properties == {
        **built[component_id].exec_properties,
        **config_io.to_parameters(section)}, component_id
  assert json.loads(built["Transform"].exec_properties["custom_config"]) == {
      "text": config_io.to_dict(config.text)}


def test_inputs_are_checked_against_the_shipped_or_given_schemas(tmp_path):
  def imported(config):
    built = {c.id: c for c in pipeline.create_pipeline(config).components}
    return {name: built[f"{name.capitalize()}SchemaImporter"].exec_properties[
        "schema_file"] for name in ("logs", "catalog")}

  shipped = imported(_config(tmp_path))
  assert shipped == {name: os.path.join(schemas.SHIPPED_DIR, f"{name}.pbtxt")
                     for name in ("logs", "catalog")}
  assert all(os.path.isfile(path) for path in shipped.values())
  own = dataclasses.replace(_config(tmp_path), schema_dir="/mine")
  assert imported(own) == {"logs": "/mine/logs.pbtxt",
                           "catalog": "/mine/catalog.pbtxt"}


def test_wildcards_in_the_directory_are_rejected(tmp_path):
  config = _config(tmp_path)
  config = configs.PipelineConfig(
      logs_pattern=str(tmp_path / "*" / "logs.csv"),
      catalog_path=config.catalog_path, output_dir=config.output_dir)
  with pytest.raises(ValueError, match="wildcards"):
    pipeline.create_pipeline(config)


def test_compile_for_kubeflow_names_every_component_and_no_local_path(
    tmp_path, logging_restored):
  del logging_restored
  output = tmp_path / "mmse_pipeline.json"
  flags = ["--logs", "gs://bucket/logs/*.csv.gz", "--catalog",
           "gs://bucket/catalog.csv", "--root", "gs://bucket/mmse"]
  assert cli.main(["compile", "--target", "kubeflow", "--image",
                   "gcr.io/example/mmse:1", "--out", str(output), *flags,
                   "--beam", "dataflow", "--beam-arg=--project=p",
                   "--beam-arg=--region=r",
                   "--set", "validation.max_query_drift=0.2"]) == 0
  text = output.read_text()
  spec = json_format.ParseDict(json.loads(text)["pipelineSpec"],
                               pipeline_spec_pb2.PipelineSpec())
  tasks = set(spec.root.dag.tasks)
  local = configs.PipelineConfig(logs_pattern=flags[1], catalog_path=flags[3],
                                 output_dir=flags[5])
  for component in pipeline.create_pipeline(local).components:
    # A resolver compiles to one task per channel it resolves.
    assert any(task == component.id or task.startswith(f"{component.id}-")
               for task in tasks), component.id
  executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
  images = {e["container"]["image"] for e in executors.values()
            if "container" in e}
  assert images == {"gcr.io/example/mmse:1"}
  gate = spec.root.dag.tasks["DataGate"].inputs.parameters
  assert gate["max_query_drift"].runtime_value.constant_value.double_value == (
      pytest.approx(0.2, abs=1e-9))
  schema_file = spec.root.dag.tasks["LogsSchemaImporter"].inputs.parameters[
      "schema_file"].runtime_value.constant_value.string_value
  assert schema_file == f"{kubeflow_v2.IMAGE_REPOSITORY_DIR}/validation/" \
      "schemas/logs.pbtxt"
  assert f"--setup_file={kubeflow_v2.IMAGE_SETUP_FILE}" in text
  assert "--temp_location=gs://bucket/mmse/beam-tmp" in text
  for local_path in {configs.REPOSITORY_DIR, os.getcwd(), str(tmp_path),
                     os.path.expanduser("~")}:
    assert local_path not in text, local_path



def _compile(tmp_path, *extra):
  output = tmp_path / "mmse_pipeline.json"
  code = cli.main(["compile", "--target", "kubeflow", "--image",
                   "gcr.io/example/mmse:1", "--out", str(output), "--logs",
                   "gs://bucket/logs/*.csv.gz", "--catalog",
                   "gs://bucket/catalog.csv", "--root", "gs://bucket/mmse",
                   *extra])
  assert code == 0
  return json_format.ParseDict(
      json.loads(output.read_text())["pipelineSpec"],
      pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True)


def test_compile_for_flink_starts_the_image_job_server_against_the_master(
    tmp_path, logging_restored):
  del logging_restored
  spec = _compile(tmp_path, "--beam", "flink", "--flink-master",
                  "flink-jobmanager:8081", "--parallelism", "8")
  args = json_format.MessageToJson(spec)
  assert "--runner=FlinkRunner" in args
  assert "--flink_master=flink-jobmanager:8081" in args
  assert "--parallelism=8" in args
  assert (f"--flink_job_server_jar={kubeflow_v2.IMAGE_FLINK_JOB_SERVER_JAR}"
          in args)
  assert os.path.expanduser("~") not in args
  with pytest.raises(SystemExit, match="--beam flink needs --flink-master"):
    _compile(tmp_path, "--beam", "flink")


def _trainer_custom_config(spec):
  parameters = spec.root.dag.tasks["Trainer"].inputs.parameters
  return json.loads(parameters["custom_config"].runtime_value.constant_value
                    .string_value)


def test_compile_with_training_replicas_trains_as_a_vertex_job_of_workers(
    tmp_path, logging_restored):
  del logging_restored
  spec = _compile(tmp_path, "--training-replicas", "3", "--vertex-project",
                  "p", "--vertex-region", "europe-west4",
                  "--training-machine-type", "n1-highmem-16",
                  "--training-accelerator", "NVIDIA_TESLA_T4:2",
                  "--set", "model.epochs=2")
  custom_config = _trainer_custom_config(spec)
  assert custom_config["model"]["distribution"] == "multi_worker"
  assert custom_config["model"]["epochs"] == 2
  assert custom_config["ai_platform_enable_vertex"] is True
  assert custom_config["ai_platform_vertex_region"] == "europe-west4"
  job = custom_config["ai_platform_training_args"]
  assert job["project"] == "p"
  machine = {"machine_type": "n1-highmem-16",
             "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2}
  # One chief, then the workers; every replica runs the pipeline's image.
  assert job["job_spec"]["worker_pool_specs"] == [
      {"machine_spec": machine, "replica_count": count,
       "container_spec": {"image_uri": "gcr.io/example/mmse:1"}}
      for count in (1, 2)]
  executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
  trainer_executor = executors[
      spec.root.dag.tasks["Trainer"].component_ref.name.replace(
          "Trainer", "Trainer_executor", 1)]
  assert "google_cloud_ai_platform.trainer.executor.GenericExecutor" in (
      json.dumps(trainer_executor))


def test_compile_without_training_replicas_trains_in_the_step(
    tmp_path, logging_restored):
  del logging_restored
  spec = _compile(tmp_path)
  custom_config = _trainer_custom_config(spec)
  assert custom_config["model"]["distribution"] == "none"
  assert not any(key.startswith("ai_platform") for key in custom_config)


@pytest.mark.parametrize("flags, message", [
    (["--training-replicas", "2"], "--vertex-project and --vertex-region"),
    (["--vertex-project", "p"], "of --training-replicas N"),
    (["--training-replicas", "2", "--vertex-project", "p", "--vertex-region",
      "r", "--training-accelerator", "T4"], "TYPE:COUNT"),
    (["--training-replicas", "2", "--vertex-project", "p", "--vertex-region",
      "r", "--set", "model.distribution=mirrored"],
     "multi_worker, not 'mirrored'"),
    (["--training-replicas", "1", "--vertex-project", "p", "--vertex-region",
      "r", "--set", "model.distribution=multi_worker"],
     "--training-replicas 2 or more"),
    (["--set", "model.distribution=multi_worker"],
     "--training-replicas 2 or more"),
])
def test_compile_refuses_a_training_job_it_cannot_run(tmp_path, flags,
                                                      message, capsys):
  with pytest.raises(SystemExit, match=message):
    _compile(tmp_path, *flags)
  del capsys


def test_local_runs_refuse_multi_worker_before_starting(tmp_path):
  with pytest.raises(ValueError, match="one Trainer process per worker"):
    configs.run_config(str(tmp_path), logs=str(tmp_path / "l.csv"),
                       catalog=str(tmp_path / "c.csv"),
                       overrides=["model.distribution=multi_worker"])
