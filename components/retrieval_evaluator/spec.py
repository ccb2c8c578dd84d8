"""Keys and spec of RetrievalEvaluator, shared by the component and executor.

One execution parameter per `EvalConfig` field, typed as the field
(`config_io.parameter_types`; the cutoffs travel as a JSON list), so a knob
has one name from the config to the executor.
"""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components import artifacts
from contracts import config_io
from evaluation.config import EvalConfig

# Inputs: the candidate's towers and the index IndexBuilder built from them,
# the mined slates (the `eval` split's are the judgments), the cleaned
# catalogue, and the latest blessed model (absent on a first run).
MODEL_KEY = "model"
INDEX_KEY = "index"
EXAMPLES_KEY = "examples"
CATALOG_KEY = "catalog"
BASELINE_MODEL_KEY = "baseline_model"
# Optional, for the data half of the blessing: DataGate's report (drift
# from the served data, log rows written) and the MiningReport (rows read and
# set aside).
DATA_REPORT_KEY = "data_report"
MINING_REPORT_KEY = "mining_report"
# Outputs.
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"

EVAL_SPLIT = "eval"
TRAIN_SPLIT = "train"  # Where the popularity reference counts its clicks.
METRICS_FILE = "metrics.json"  # Inside the RetrievalEvaluation artifact.
# The judgment sets `metrics.json` scores under `by_judgments`: the logged
# eval split, and the judgments file of `EvalConfig.judgments_path`.
LOGGED_JUDGMENTS = "eval_split"
FILE_JUDGMENTS = "judgments_file"
CANDIDATE = "candidate"  # Beside `evaluation.blessing.REFERENCES`.

PARAMETER_TYPES = config_io.parameter_types(EvalConfig)


class RetrievalEvaluatorSpec(types.ComponentSpec):
  """Inputs, outputs and parameters of RetrievalEvaluator."""
  PARAMETERS = {
      name: ExecutionParameter(type=kind)
      for name, kind in PARAMETER_TYPES.items()
  }
  INPUTS = {
      MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
      INDEX_KEY: ChannelParameter(type=artifacts.RetrievalIndex),
      EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
      CATALOG_KEY: ChannelParameter(type=artifacts.Catalog),
      BASELINE_MODEL_KEY: ChannelParameter(
          type=standard_artifacts.Model, optional=True),
      DATA_REPORT_KEY: ChannelParameter(
          type=artifacts.DataGateReport, optional=True),
      MINING_REPORT_KEY: ChannelParameter(
          type=artifacts.MiningReport, optional=True),
  }
  OUTPUTS = {
      EVALUATION_KEY: ChannelParameter(type=artifacts.RetrievalEvaluation),
      BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
  }
