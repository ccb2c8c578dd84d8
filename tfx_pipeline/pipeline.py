"""The MMSE pipeline: wiring only; every knob comes from `configs`.

search logs ─ ExampleGen (CSV) ─ Statistics ─ ExampleValidator ─┐  (curated
catalogue   ─ ExampleGen (CSV) ─ Statistics ─ ExampleValidator ─┤  schemas,
                                                              ▼  ImportSchemaGen)
DataGate (stops the run on inputs that fail their schema; drift vs served)
                                                              ▼
MultiStageSamples (Beam: clean, stages, random negatives, split)
  ├─ slates ─ StatisticsGen/SchemaGen ─ Transform ─ Trainer (TFRS)
  └─ cleaned catalogue ───────────────────────────────┐      │
                                                      ▼      ▼
IndexBuilder (embeds the catalogue once: retrieval model + ANN index)
  ─ RetrievalEvaluator (scores the served index path vs the latest blessed;
                        refuses while the data drifted or too much was set aside)
  ─ ServingPusher (query_tower, item_tower, retrieval: one version)
"""
import glob
import os
from typing import Any, Mapping, Optional

from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec

from components import progress
from components.data_gate import spec as gate_spec
from components.data_gate.component import DataGate
from components.csv_example_gen import executor as csv_executor
from components.index_builder.component import IndexBuilder
from components.multistage_samples import spec as mining_spec
from components.multistage_samples.component import MultiStageSamples
from components.retrieval_evaluator.component import RetrievalEvaluator
from components.serving_pusher.component import ServingPusher
from contracts import config_io
from tfx_pipeline import configs
from validation import schemas

PREPROCESSING_FN = "model.preprocessing.preprocessing_fn"
RUN_FN = "model.trainer.run_fn"


def _csv_example_gen(path_pattern: str, component_id: str):
  """ExampleGen over the CSV files matching `path_pattern` (gzip or not)."""
  directory, pattern = os.path.split(path_pattern)
  if glob.has_magic(directory):
    raise ValueError(
        f"Only the file name may hold wildcards, not the directory: "
        f"{path_pattern}")
  # CsvExampleGen's own executor cannot read a gzip header (TFX 1.16); the
  # file-based ExampleGen runs the stock CSV parsing with one that can.
  return FileBasedExampleGen(
      input_base=directory,
      input_config=tfx.proto.Input(
          splits=[tfx.proto.Input.Split(name="all", pattern=pattern)]),
      custom_executor_spec=executor_spec.BeamExecutorSpec(
          csv_executor.Executor),
  ).with_id(component_id)


def _validated(examples, name: str, schema_file: str):
  """Statistics of one input and its anomalies against its curated schema:
  the components, and their outputs under DataGate's input suffixes."""
  prefix = name.capitalize()
  schema = tfx.components.ImportSchemaGen(
      schema_file=schema_file).with_id(f"{prefix}SchemaImporter")
  # With the schema, item ids are counted as categories (drift compares
  # their shares) rather than summarised as numbers.
  statistics = progress.StatisticsGen(
      examples=examples, schema=schema.outputs["schema"]).with_id(
          f"{prefix}StatisticsGen")
  validator = tfx.components.ExampleValidator(
      statistics=statistics.outputs["statistics"],
      schema=schema.outputs["schema"]).with_id(f"{prefix}ExampleValidator")
  return [schema, statistics, validator], {
      gate_spec.STATISTICS_SUFFIX: statistics.outputs["statistics"],
      gate_spec.SCHEMA_SUFFIX: schema.outputs["schema"],
      gate_spec.ANOMALIES_SUFFIX: validator.outputs["anomalies"],
  }


def create_pipeline(config: configs.PipelineConfig,
                    metadata_connection_config: Optional[
                        metadata_store_pb2.ConnectionConfig] = None,
                    enable_cache: bool = False,
                    remote_trainer: Optional[Mapping[str, Any]] = None
                    ) -> tfx.dsl.Pipeline:
  """Returns the MMSE pipeline for `config`.

  Args:
    config: the run's configuration.
    metadata_connection_config: ML Metadata, for runners that need it here.
    enable_cache: reuse outputs of unchanged components.
    remote_trainer: custom_config keys of TFX's Vertex AI Trainer
      (`tfx.extensions.google_cloud_ai_platform.Trainer`): the Trainer step
      then submits that training job and waits for it. None: the step
      trains itself.
  """
  logs_gen = _csv_example_gen(config.logs_pattern, "LogsExampleGen")
  catalog_gen = _csv_example_gen(config.catalog_path, "CatalogExampleGen")
  checks, checked = [], {}
  for name, example_gen in ((schemas.LOGS, logs_gen),
                            (schemas.CATALOG, catalog_gen)):
    nodes, checked[name] = _validated(example_gen.outputs["examples"], name,
                                      config.schema_file(name))
    checks += nodes
  latest_blessed_model = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id("LatestBlessedModelResolver")

  gate = DataGate(
      channels={
          gate_spec.key(name, suffix): channel
          for name, channels in checked.items()
          for suffix, channel in channels.items()},
      sources={
          schemas.LOGS: {"files": config.logs_pattern,
                         "schema": config.schema_file(schemas.LOGS)},
          schemas.CATALOG: {"files": config.catalog_path,
                            "schema": config.schema_file(schemas.CATALOG)},
      },
      serving_dir=config.serving_dir,
      config=config.validation,
      latest_blessed_model=latest_blessed_model.outputs["model"])

  mining = MultiStageSamples(
      logs=logs_gen.outputs["examples"],
      catalog=catalog_gen.outputs["examples"],
      config=config.mining)
  # Mining reads the ExampleGen outputs, not the gate's: the gate only
  # decides whether it may start.
  mining.add_upstream_node(gate)
  cleaned_catalog = mining.outputs[mining_spec.CLEANED_CATALOG_KEY]
  samples_statistics = progress.StatisticsGen(
      examples=mining.outputs["examples"]).with_id("SamplesStatisticsGen")
  samples_schema = tfx.components.SchemaGen(
      statistics=samples_statistics.outputs["statistics"],
      infer_feature_shape=True).with_id("SamplesSchemaGen")

  transform = progress.Transform(
      examples=mining.outputs["examples"],
      schema=samples_schema.outputs["schema"],
      preprocessing_fn=PREPROCESSING_FN,
      custom_config={"text": config_io.to_dict(config.text)})

  trainer_class = (tfx.components.Trainer if remote_trainer is None else
                   tfx.extensions.google_cloud_ai_platform.Trainer)
  trainer = trainer_class(
      run_fn=RUN_FN,
      examples=transform.outputs["transformed_examples"],
      transform_graph=transform.outputs["transform_graph"],
      schema=samples_schema.outputs["schema"],
      train_args=tfx.proto.TrainArgs(splits=["train"]),
      eval_args=tfx.proto.EvalArgs(splits=["eval"]),
      custom_config={
          "model": config_io.to_dict(config.model),
          "text": config_io.to_dict(config.text),
          "teacher_cache_dir": config.teacher_cache_dir,
          **(remote_trainer or {}),
      })

  index_builder = IndexBuilder(
      model=trainer.outputs["model"],
      catalog=cleaned_catalog,
      config=config.index)

  evaluator = RetrievalEvaluator(
      model=trainer.outputs["model"],
      index=index_builder.outputs["index"],
      examples=mining.outputs["examples"],
      catalog=cleaned_catalog,
      baseline_model=latest_blessed_model.outputs["model"],
      data_report=gate.outputs[gate_spec.REPORT_KEY],
      mining_report=mining.outputs[mining_spec.REPORT_KEY],
      config=config.evaluation)

  pusher = ServingPusher(
      model=trainer.outputs["model"],
      index=index_builder.outputs["index"],
      model_blessing=evaluator.outputs["blessing"],
      examples=mining.outputs["examples"],
      catalog=cleaned_catalog,
      logs_statistics=checked[schemas.LOGS][gate_spec.STATISTICS_SUFFIX],
      serving_dir=config.serving_dir)

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=[
          logs_gen, catalog_gen, *checks, gate, mining,
          samples_statistics, samples_schema, transform, trainer,
          latest_blessed_model, index_builder, evaluator, pusher
      ],
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(config.beam_pipeline_args),
  )
