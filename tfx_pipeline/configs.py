"""The pipeline's configuration: composes each package's own knobs.

Each package owns its config dataclass (`mining.config`, `model.config`,
`retrieval.config`, `evaluation.config`, `validation.config`); a
`PipelineConfig` holds one of each plus paths and Beam flags, and
`with_overrides` applies the `section.field=value` words of `mmse run
--set`. A benchmark ablation is the same words, never a code fork.
Components receive their section through `contracts.config_io`.
"""
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Optional, Sequence, Tuple

from contracts import config_io
from evaluation.config import EvalConfig
from mining.config import MiningConfig
from model import config as model_config
from model.config import ModelConfig
from model.config import TextConfig
from retrieval.config import IndexConfig
from tfx_pipeline.runners import flink
from validation import schemas
from validation.config import ValidationConfig

PIPELINE_NAME = "mmse"
# This checkout (or installed copy): setup.py and the packages' files.
REPOSITORY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What `mmse run` changes for the embedded sample: too small for one epoch
# (4 chosen on its judged queries; 10 begin to remember training queries)
# or for the default batch (a few steps an epoch); one training keeps a
# first run, and CI's, short.
SAMPLE_OVERRIDES = ("model.epochs=4", "model.batch_size=256",
                    "model.trainings=1")
# Where a run without inputs simulates the embedded sample, under its output.
SAMPLE_SUBDIR = "sample_data"
# ML Metadata of a run's output directory (SQLite).
METADATA_FILE = "metadata.sqlite"


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Paths and run settings; one instance describes one pipeline run."""
  logs_pattern: str  # Glob of the search-log CSV files (gzip or not).
  catalog_path: str  # CSV with item_id, title and optional side features.
  output_dir: str  # Pipeline root, metadata, serving dir all go under here.
  # A directory with logs.pbtxt and catalog.pbtxt (as `mmse schema` writes);
  # empty for the shipped schemas (`validation/schemas`).
  schema_dir: str = ""
  # What runs keep between them, keyed by content (the teacher's word
  # vectors); empty for `<output_dir>/cache`. Runs may share one.
  cache_dir: str = ""
  mining: MiningConfig = MiningConfig()
  text: TextConfig = TextConfig()
  model: ModelConfig = ModelConfig()
  evaluation: EvalConfig = EvalConfig()
  index: IndexConfig = IndexConfig()
  validation: ValidationConfig = ValidationConfig()
  pipeline_name: str = PIPELINE_NAME
  # Beam flags for every Beam-powered component (`beam_pipeline_args`
  # builds them from a profile): DirectRunner in this process.
  beam_pipeline_args: Tuple[str, ...] = (
      "--direct_running_mode=in_memory",
      "--direct_num_workers=1",
  )

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline")

  def schema_file(self, input_name: str) -> str:
    """The schema an input is checked against."""
    return schemas.schema_file(self.schema_dir or schemas.SHIPPED_DIR,
                               input_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, METADATA_FILE)

  @property
  def serving_dir(self) -> str:
    return os.path.join(self.output_dir, "serving")

  @property
  def teacher_cache_dir(self) -> str:
    return os.path.join(self.cache_dir or os.path.join(self.output_dir,
                                                       "cache"), "teacher")


# Where each Beam-powered component runs, by `mmse run --beam PROFILE`.
# `{root}` is the run's output directory, `{setup_file}` this repository's
# setup.py (it ships the mining and indexing DoFns and the preprocessing_fn
# to remote workers), `{flink_job_server_jar}` the Flink cache's job server.
BEAM_PROFILES: Dict[str, Tuple[str, ...]] = {
    # DirectRunner in one process, one core: it delivers every row.
    "local": PipelineConfig.beam_pipeline_args,
    # DirectRunner, one worker process per core (0 = as many as cores).
    # Beam 2.61 sometimes loses a few percent of the rows of inputs of some
    # millions of rows this way; the row accounting then stops the run
    # (docs/running-at-scale.md, "Where Beam runs").
    "local-parallel": (
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=0",
    ),
    "dataflow": (
        "--runner=DataflowRunner",
        "--temp_location={root}/beam-tmp",
        "--setup_file={setup_file}",
        "--experiments=use_runner_v2",
    ),
    # Beam's FlinkRunner: each Beam stage starts the job server of the
    # Flink cache (`make flink`), which submits it to the session cluster at
    # --flink_master; its TaskManagers take Python SDK workers from the pool
    # beside each of them (`--environment_config`, as `sdk_worker_pool`
    # serves it) and keep them from one task of a stage to the next.
    # `mmse run --beam flink` without --flink-master starts such a cluster
    # (`runners/flink.py`) and points these flags at it.
    "flink": (
        "--runner=FlinkRunner",
        "--flink_master=localhost:8081",
        "--flink_job_server_jar={flink_job_server_jar}",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        "--environment_cache_millis=600000",
    ),
    # A portable runner with the SDK workers in the launching process.
    "spark": (
        "--runner=SparkRunner",
        "--spark_master_url=spark://localhost:7077",
        "--environment_type=LOOPBACK",
    ),
}
# Flags a profile cannot guess; `--beam-arg` must give them.
_REQUIRED_BEAM_FLAGS = {"dataflow": ("--project", "--region")}


def _flag_name(arg: str) -> str:
  return arg.partition("=")[0]


def beam_pipeline_args(profile: str, root: str, overrides=(),
                       setup_file: str = "",
                       flink_job_server_jar: str = "") -> Tuple[str, ...]:
  """The Beam flags of `profile`, with `overrides` replacing flags of the
  same name (the others are added).

  Args:
    profile: a key of BEAM_PROFILES.
    root: the run's output directory (Dataflow's temp location is under it).
    overrides: `--flag=value` words, as `mmse run --beam-arg` gives them.
    setup_file: setup.py as the Beam workers' launcher sees it; this
      checkout's by default.
    flink_job_server_jar: Beam's Flink job server as the launcher sees it;
      the Flink cache's (`make flink`) by default.

  Raises:
    ValueError: an unknown profile, a word that is not a `--flag`, or a flag
      the profile needs that `overrides` lacks.
  """
  if profile not in BEAM_PROFILES:
    raise ValueError(f"unknown Beam profile {profile!r}; one of "
                     f"{sorted(BEAM_PROFILES)}")
  for arg in overrides:
    if not arg.startswith("--"):
      raise ValueError(f"a Beam argument is a --flag[=value], got {arg!r}")
  setup_file = setup_file or os.path.join(REPOSITORY_DIR, "setup.py")
  flink_job_server_jar = flink_job_server_jar or flink.job_server_jar()
  args = {_flag_name(a): a.format(root=root.rstrip("/"), setup_file=setup_file,
                                  flink_job_server_jar=flink_job_server_jar)
          for a in BEAM_PROFILES[profile]}
  args.update((_flag_name(a), a) for a in overrides)
  missing = [f for f in _REQUIRED_BEAM_FLAGS.get(profile, ()) if f not in args]
  if missing:
    raise ValueError(
        f"the {profile} Beam profile needs "
        + " and ".join(f"--beam-arg={f}=..." for f in missing))
  return tuple(args.values())


# Knobs that moved to the package that uses them; the old words still work.
_RENAMED = {"model.retrieval_k": "index.k"}

_SECTIONS = {
    "mining": MiningConfig,
    "text": TextConfig,
    "model": ModelConfig,
    "evaluation": EvalConfig,
    "index": IndexConfig,
    "validation": ValidationConfig,
}


def with_overrides(config: PipelineConfig, assignments) -> PipelineConfig:
  """Applies `section.field=value` strings (value parsed as JSON if it can).

  Used by `mmse run --set` and by the benchmark's ablations, so an ablation is
  a config change expressed in the same words a user would type.
  """
  sections: Dict[str, Dict[str, Any]] = {}
  for assignment in assignments:
    key, sep, raw = assignment.partition("=")
    key = _RENAMED.get(key, key)
    section, dot, field = key.partition(".")
    if not sep or not dot:
      raise ValueError(f"expected section.field=value, got {assignment!r}")
    if section not in _SECTIONS:
      raise ValueError(f"unknown config section {section!r}; "
                       f"one of {sorted(_SECTIONS)}")
    try:
      value = json.loads(raw)
    except json.JSONDecodeError:
      value = raw
    sections.setdefault(section, {})[field] = value
  for section, values in sections.items():
    merged = {**dataclasses.asdict(getattr(config, section)), **values}
    config = dataclasses.replace(
        config, **{section: config_io.from_dict(_SECTIONS[section], merged)})
  return config


def embedded_sample(output_dir: str) -> Tuple[str, str, str]:
  """(logs pattern, catalogue, judgments) of the embedded sample under
  `output_dir`, simulated there first if it is not there yet.

  Written beside and renamed into place, so that a process racing this one
  (two parses of an Airflow DAG) never reads half a sample.
  """
  sample_dir = os.path.join(output_dir, SAMPLE_SUBDIR)
  if not os.path.exists(os.path.join(sample_dir, "catalog.csv")):
    from sample_data import simulator  # pylint: disable=g-import-not-at-top
    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{SAMPLE_SUBDIR}-", dir=output_dir)
    logging.info("Simulating the embedded sample into %s", sample_dir)
    simulator.simulate(staging)
    try:
      os.rename(staging, sample_dir)
    except OSError:  # Another process got there first.
      shutil.rmtree(staging, ignore_errors=True)
  return (os.path.join(sample_dir, "logs", "*.csv.gz"),
          os.path.join(sample_dir, "catalog.csv"),
          os.path.join(sample_dir, "judgments.csv"))


def run_config(output_dir: str, logs: Optional[str] = None,
               catalog: Optional[str] = None,
               judgments: Optional[str] = None, schema_dir: str = "",
               beam_pipeline_args: Tuple[str, ...] = (
                   PipelineConfig.beam_pipeline_args),
               overrides: Sequence[str] = ()) -> PipelineConfig:
  """The configuration of one run, as `mmse run` and the Airflow DAG make it.

  Without `logs` and `catalog` the run is the embedded sample
  (`embedded_sample`), blessed on its judgments unless `judgments` names
  others, with `SAMPLE_OVERRIDES` before `overrides`.

  Raises:
    ValueError: only one of `logs` and `catalog`, a bad override, or a
      distribution that needs a process per worker.
  """
  overrides = list(overrides)
  if (logs is None) != (catalog is None):
    raise ValueError("give both the logs and the catalogue, or neither for "
                     "the embedded sample")
  if logs is None:
    logs, catalog, sample_judgments = embedded_sample(output_dir)
    judgments = judgments or sample_judgments
    overrides = [*SAMPLE_OVERRIDES, *overrides]
  if judgments:
    overrides.append(
        f"evaluation.judgments_path={os.path.abspath(judgments)}")
  config = with_overrides(PipelineConfig(
      logs_pattern=os.path.abspath(logs),
      catalog_path=os.path.abspath(catalog),
      output_dir=output_dir,
      schema_dir=os.path.abspath(schema_dir) if schema_dir else "",
      beam_pipeline_args=tuple(beam_pipeline_args)), overrides)
  if config.model.distribution == model_config.MULTI_WORKER:
    raise ValueError(
        "model.distribution=multi_worker needs one Trainer process per "
        "worker, and this runner runs every component in one process; "
        "compile for Kubeflow with `mmse compile --training-replicas N`, "
        "or use 'none' or 'mirrored'")
  return config
