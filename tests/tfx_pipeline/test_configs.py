"""Config knobs: one name and default everywhere, overrides validated."""
import pytest

from tfx_pipeline import configs
from tfx_pipeline.runners import flink


def _config():
  return configs.PipelineConfig("logs/*.csv", "catalog.csv", "/tmp/out")


def test_overrides_change_only_the_named_knobs():
  config = configs.with_overrides(
      _config(), ["model.epochs=3", "mining.popularity_exponent=0",
                  "evaluation.cutoffs=[5, 50]", "model.use_unclicked=false"])
  assert config.model.epochs == 3
  assert config.model.use_unclicked is False
  assert config.mining.popularity_exponent == 0.0
  assert isinstance(config.mining.popularity_exponent, float)
  assert config.evaluation.cutoffs == (5, 50)
  assert config.text == configs.TextConfig()


@pytest.mark.parametrize("assignment, message", [
    ("model.no_such_knob=1", "no_such_knob"),
    ("nosection.epochs=1", "unknown config section"),
    ("epochs=1", "section.field=value"),
])
def test_bad_overrides_are_clear_errors(assignment, message):
  with pytest.raises(ValueError, match=message):
    configs.with_overrides(_config(), [assignment])


def test_slate_size_counts_anchor_context_and_random_items():
  mining = configs.MiningConfig(num_context_items=3, num_random_negatives=2)
  assert mining.slate_size == 6


def test_a_moved_knob_keeps_its_old_words():
  config = configs.with_overrides(_config(), ["model.retrieval_k=50"])
  assert config.index.k == 50


def test_the_local_beam_profile_is_the_default_and_runs_in_process():
  assert configs.beam_pipeline_args("local", "/tmp/out") == (
      _config().beam_pipeline_args)
  assert "--direct_running_mode=in_memory" in _config().beam_pipeline_args
  parallel = configs.beam_pipeline_args("local-parallel", "/tmp/out")
  assert "--direct_running_mode=multi_processing" in parallel
  # Zero: as many DirectRunner workers as the machine has cores.
  assert "--direct_num_workers=0" in parallel


def test_beam_args_replace_the_profile_flag_of_the_same_name():
  args = configs.beam_pipeline_args(
      "local-parallel", "/tmp/out",
      ["--direct_num_workers=1", "--max_num_threads=4"])
  assert args == ("--direct_running_mode=multi_processing",
                  "--direct_num_workers=1", "--max_num_threads=4")


def test_the_dataflow_profile_fills_in_the_run_root_and_setup_file():
  args = configs.beam_pipeline_args(
      "dataflow", "gs://bucket/mmse/",
      ["--project=p", "--region=europe-west4"], setup_file="/mmse/setup.py")
  assert "--runner=DataflowRunner" in args
  assert "--temp_location=gs://bucket/mmse/beam-tmp" in args
  assert "--setup_file=/mmse/setup.py" in args
  assert args[-2:] == ("--project=p", "--region=europe-west4")
  default = configs.beam_pipeline_args("dataflow", "gs://b", ["--project=p",
                                                              "--region=r"])
  assert f"--setup_file={configs.REPOSITORY_DIR}/setup.py" in default


def test_the_spark_profile_names_its_runner():
  args = configs.beam_pipeline_args("spark", "/tmp/out")
  assert "--runner=SparkRunner" in args
  assert "--environment_type=LOOPBACK" in args


def test_the_flink_profile_starts_the_cached_job_server_and_a_worker_pool():
  args = configs.beam_pipeline_args(
      "flink", "/tmp/out", ["--flink_master=flink.example:8081"],
      flink_job_server_jar="/opt/mmse-flink/job-server/j.jar")
  assert "--runner=FlinkRunner" in args
  assert "--flink_job_server_jar=/opt/mmse-flink/job-server/j.jar" in args
  assert "--environment_type=EXTERNAL" in args
  assert "--flink_master=flink.example:8081" in args
  assert "--flink_master=localhost:8081" not in args
  default = configs.beam_pipeline_args("flink", "/tmp/out")
  assert f"--flink_job_server_jar={flink.job_server_jar()}" in default


@pytest.mark.parametrize("profile, overrides, message", [
    ("cloud", (), "unknown Beam profile 'cloud'"),
    ("dataflow", ("--project=p",), "--beam-arg=--region=..."),
    ("local", ("direct_num_workers=1",), "a Beam argument is a --flag"),
])
def test_bad_beam_settings_are_clear_errors(profile, overrides, message):
  with pytest.raises(ValueError, match=message):
    configs.beam_pipeline_args(profile, "/tmp/out", overrides)


def test_a_run_without_inputs_is_the_embedded_sample_simulated_once(tmp_path):
  config = configs.run_config(str(tmp_path), overrides=["model.epochs=2"])
  sample = tmp_path / configs.SAMPLE_SUBDIR
  assert config.logs_pattern == str(sample / "logs" / "*.csv.gz")
  assert config.catalog_path == str(sample / "catalog.csv")
  assert config.evaluation.judgments_path == str(sample / "judgments.csv")
  assert config.model.epochs == 2  # The run's words come after the sample's.
  written = (sample / "catalog.csv").stat().st_mtime_ns
  configs.run_config(str(tmp_path))
  assert (sample / "catalog.csv").stat().st_mtime_ns == written
  with pytest.raises(ValueError, match="both the logs and the catalogue"):
    configs.run_config(str(tmp_path), logs="a.csv")
