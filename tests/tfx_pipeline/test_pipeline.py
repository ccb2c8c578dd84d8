"""Pipeline wiring and the runners that compile it for other orchestrators."""
import json

import pytest

from contracts import config_io
from tfx_pipeline import configs
from tfx_pipeline import pipeline


def _config(tmp_path):
  return configs.PipelineConfig(
      logs_pattern=str(tmp_path / "logs" / "*.csv.gz"),
      catalog_path=str(tmp_path / "catalog.csv"),
      output_dir=str(tmp_path / "out"))


def test_pipeline_wires_every_stage_in_order(tmp_path):
  built = pipeline.create_pipeline(_config(tmp_path))
  ids = [c.id for c in built.components]
  for expected in ("LogsExampleGen", "CatalogExampleGen", "LogsStatisticsGen",
                   "LogsSchemaGen", "LogsExampleValidator",
                   "CatalogExampleValidator", "MultiStageSamples",
                   "Transform", "Trainer", "LatestBlessedModelResolver",
                   "RetrievalEvaluator", "IndexBuilder", "ServingPusher"):
    assert expected in ids
  # Components are sorted topologically: each comes after its inputs.
  assert ids.index("MultiStageSamples") < ids.index("Transform") < ids.index(
      "Trainer") < ids.index("IndexBuilder") < ids.index(
          "RetrievalEvaluator") < ids.index("ServingPusher")


def test_knobs_reach_components_as_their_config_parameters(tmp_path):
  config = configs.with_overrides(
      _config(tmp_path), ["index.kind=faiss", "evaluation.cutoffs=[5, 50]",
                          "evaluation.blessing_metric=recall@50",
                          "mining.num_random_negatives=2", "text.vocab_size=9"])
  built = {c.id: c for c in pipeline.create_pipeline(config).components}
  for component_id, section in (("MultiStageSamples", config.mining),
                                ("IndexBuilder", config.index),
                                ("RetrievalEvaluator", config.evaluation)):
    assert built[component_id].exec_properties == {
        **built[component_id].exec_properties,
        **config_io.to_parameters(section)}, component_id
  assert json.loads(built["Transform"].exec_properties["custom_config"]) == {
      "text": config_io.to_dict(config.text)}


def test_wildcards_in_the_directory_are_rejected(tmp_path):
  config = _config(tmp_path)
  config = configs.PipelineConfig(
      logs_pattern=str(tmp_path / "*" / "logs.csv"),
      catalog_path=config.catalog_path, output_dir=config.output_dir)
  with pytest.raises(ValueError, match="wildcards"):
    pipeline.create_pipeline(config)


def test_kubeflow_v2_runner_compiles_a_pipeline_spec(tmp_path):
  from tfx_pipeline.runners import kubeflow_v2  # pylint: disable=g-import-not-at-top
  output = str(tmp_path / "mmse_pipeline.json")
  kubeflow_v2.compile_pipeline(_config(tmp_path), "gcr.io/example/mmse:1",
                               output)
  with open(output) as f:
    spec = json.load(f)
  tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
  assert {"Trainer", "MultiStageSamples", "ServingPusher"} <= set(tasks)
