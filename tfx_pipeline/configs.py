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
import os
from typing import Any, Dict, Tuple

from contracts import config_io
from evaluation.config import EvalConfig
from mining.config import MiningConfig
from model.config import ModelConfig
from model.config import TextConfig
from retrieval.config import IndexConfig
from validation import schemas
from validation.config import ValidationConfig

PIPELINE_NAME = "mmse"
# This checkout (or installed copy): setup.py and the packages' files.
REPOSITORY_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What `mmse run` changes for the embedded sample: too small for one epoch
# (4 chosen on its judged queries; 10 begin to remember training queries).
SAMPLE_OVERRIDES = ("model.epochs=4",)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Paths and run settings; one instance describes one pipeline run."""
  logs_pattern: str  # Glob of the search-log CSV files (gzip or not).
  catalog_path: str  # CSV with item_id, title and optional side features.
  output_dir: str  # Pipeline root, metadata, serving dir all go under here.
  # A directory with logs.pbtxt and catalog.pbtxt (as `mmse schema` writes);
  # empty for the shipped schemas (`validation/schemas`).
  schema_dir: str = ""
  mining: MiningConfig = MiningConfig()
  text: TextConfig = TextConfig()
  model: ModelConfig = ModelConfig()
  evaluation: EvalConfig = EvalConfig()
  index: IndexConfig = IndexConfig()
  validation: ValidationConfig = ValidationConfig()
  pipeline_name: str = PIPELINE_NAME
  # Beam flags for every Beam-powered component. DirectRunner on the local
  # machine by default; see runners/ for Dataflow.
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
    return os.path.join(self.output_dir, "metadata.sqlite")

  @property
  def serving_dir(self) -> str:
    return os.path.join(self.output_dir, "serving")


def dataflow_beam_pipeline_args(project: str, region: str,
                                temp_location: str,
                                setup_file: str = "") -> Tuple[str, ...]:
  """Beam flags that move every Beam-powered component onto Dataflow.

  `--setup_file` ships this repository's packages (the mining and indexing
  DoFns, the preprocessing_fn) to the workers: this checkout's `setup.py`
  unless told where it is on the machine that launches the job.
  """
  return (
      "--runner=DataflowRunner",
      f"--project={project}",
      f"--region={region}",
      f"--temp_location={temp_location}",
      f"--setup_file={setup_file or os.path.join(REPOSITORY_DIR, 'setup.py')}",
      "--experiments=use_runner_v2",
  )


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
