"""RetrievalEvaluator's executor: judgments from slates, scoring, blessing.

The held-out queries' judgments come from the same mined slates the model
trains on (the `eval` split, never trained on): per query, each item's
highest stage over its slates. Stages become grades on the benchmark's scale
so that `evaluation.metrics.score` applies unchanged:

  ORDERED -> 3.0  relevant for recall, NDCG gain 2.0
  CLICKED -> 2.5  relevant for recall (`features.RELEVANT_GRADE`), gain 1.5

Shown-unclicked and random items get no judgment: on that scale they would
gain nothing and never count for recall, exactly as an unjudged item.
Recall per stage (`recall_ordered@K`, `recall_clicked@K`: clicked but never
ordered) shows whether a model finds what buyers buy or only what they click.
"""
import collections
import json
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import json_utils
from tfx.utils import path_utils

from evaluation import embedding
from evaluation import metrics
from model import catalog as catalog_lib
from model import features
from tfx_pipeline import configs

MODEL_KEY = "model"
BASELINE_MODEL_KEY = "baseline_model"
EXAMPLES_KEY = "examples"
CATALOG_KEY = "catalog"
EVALUATION_KEY = "evaluation"
BLESSING_KEY = "blessing"
CUTOFFS_KEY = "cutoffs"
BLESSING_METRIC_KEY = "blessing_metric"
MIN_BLESSING_VALUE_KEY = "min_blessing_value"
MAX_REGRESSION_KEY = "max_regression"

EVAL_SPLIT = "eval"
METRICS_FILE = "metrics.json"
STAGE_GRADES = {
    features.Stage.ORDERED: 3.0,
    features.Stage.CLICKED: features.RELEVANT_GRADE,
}
# Names of the stages with their own recall (`recall_ordered@K`).
_STAGE_NAMES = {
    features.Stage.ORDERED: "ordered",
    features.Stage.CLICKED: "clicked",
}


def metric_names(cutoffs) -> List[str]:
  """Every metric `evaluate_model` reports per cutoff."""
  prefixes = ["recall", "ndcg"] + [f"recall_{n}" for n in _STAGE_NAMES.values()]
  return [f"{prefix}@{k}" for prefix in prefixes for k in sorted(cutoffs)]


def check_config(config: configs.EvalConfig):
  """Fails before any work when the blessing rule cannot be applied."""
  if not config.cutoffs or min(config.cutoffs) < 1:
    raise ValueError(f"cutoffs must be positive integers, got "
                     f"{config.cutoffs}")
  if config.blessing_metric not in metric_names(config.cutoffs):
    raise ValueError(
        f"blessing_metric {config.blessing_metric!r} is not one of "
        f"{metric_names(config.cutoffs)}")
  if config.max_regression < 0:
    raise ValueError(f"max_regression must be >= 0, got "
                     f"{config.max_regression}")


def slate_judgments(split_uri: str) -> metrics.Judgments:
  """Graded judgments of every query in a split of mined slates.

  Args:
    split_uri: a `Split-*` directory of gzip TFRecords of slates
      (`query`, `item_id` x L, `stage` x L).

  Returns:
    query -> {item_id: grade} for the items whose highest stage for the
    query is CLICKED or ORDERED (see the module docstring for the grades).
  """
  files = sorted(tf.io.gfile.glob(os.path.join(split_uri, "*")))
  if not files:
    raise FileNotFoundError(f"No slates under {split_uri}")
  best_stage = collections.defaultdict(dict)
  slates = 0
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    try:
      query = feature[features.QUERY].bytes_list.value[0].decode("utf-8")
      item_ids = feature[features.ITEM_ID].int64_list.value
      stages = feature[features.STAGE].int64_list.value
    except (KeyError, IndexError) as e:
      raise ValueError(f"{split_uri}: slate {slates} lacks query, item_id or "
                       f"stage") from e
    if len(item_ids) != len(stages):
      raise ValueError(f"{split_uri}: slate {slates} has {len(item_ids)} "
                       f"items but {len(stages)} stages")
    items = best_stage[query]
    for item_id, stage in zip(item_ids, stages):
      if stage > items.get(item_id, features.Stage.PADDING):
        items[item_id] = stage
    slates += 1
  judgments = {}
  for query, items in best_stage.items():
    grades = {item_id: STAGE_GRADES[stage] for item_id, stage in items.items()
              if stage in STAGE_GRADES}
    if grades:
      judgments[query] = grades
  logging.info("%s: %d slates, %d queries with a clicked or ordered item",
               split_uri, slates, len(judgments))
  return judgments


def score_by_stage(rankings, judgments: metrics.Judgments,
                   cutoffs) -> Dict[str, float]:
  """`metrics.score` plus recall of ordered and of clicked items apart."""
  result = metrics.score(rankings, judgments, cutoffs)
  for stage, name in _STAGE_NAMES.items():
    grade = STAGE_GRADES[stage]
    stage_judgments = {}
    for query, grades in judgments.items():
      items = {i: g for i, g in grades.items() if g == grade}
      if items:
        stage_judgments[query] = items
    stage_result = metrics.score(rankings, stage_judgments, cutoffs)
    for k in cutoffs:
      result[f"recall_{name}@{k}"] = stage_result[f"recall@{k}"]
    result[f"{name}_queries"] = stage_result["queries"]
  return result


def evaluate_model(model_uri: str, catalog: catalog_lib.Catalog,
                   judgments: metrics.Judgments, cutoffs) -> Dict[str, float]:
  """Scores a Trainer Model artifact's towers over the whole catalogue."""
  serving_dir = path_utils.serving_model_dir(model_uri)
  towers = {}
  for name in (configs.QUERY_TOWER, configs.ITEM_TOWER):
    tower_dir = os.path.join(serving_dir, name)
    if not tf.io.gfile.exists(tower_dir):
      raise FileNotFoundError(f"Model {model_uri} has no {name} at {tower_dir}")
    towers[name] = embedding.load_signature(tower_dir)
  rankings = embedding.rank_catalog(
      towers[configs.QUERY_TOWER], towers[configs.ITEM_TOWER], catalog,
      list(judgments), k=max(cutoffs))
  return score_by_stage(rankings, judgments, cutoffs)


def blessing_decision(config: configs.EvalConfig, candidate: Dict[str, float],
                      baseline: Optional[Dict[str, float]]
                     ) -> Tuple[bool, str]:
  """Blessed when the metric reaches its floor and does not regress.

  Returns:
    (blessed, a sentence saying why).
  """
  name = config.blessing_metric
  value = candidate[name]
  if value < config.min_blessing_value:
    return False, (f"{name} {value:.4f} is below the floor "
                   f"{config.min_blessing_value:.4f}")
  if baseline is None:
    return True, (f"{name} {value:.4f} reaches the floor "
                  f"{config.min_blessing_value:.4f}; no baseline model")
  allowed = baseline[name] - config.max_regression
  if value < allowed:
    return False, (f"{name} {value:.4f} regresses from the baseline's "
                   f"{baseline[name]:.4f} by more than "
                   f"{config.max_regression:.4f}")
  return True, (f"{name} {value:.4f} reaches the floor "
                f"{config.min_blessing_value:.4f} and the baseline's "
                f"{baseline[name]:.4f} less {config.max_regression:.4f}")


def metrics_table(candidate: Dict[str, float],
                  baseline: Optional[Dict[str, float]]) -> str:
  """The metrics side by side, one per line, for the log."""
  lines = [f"{'metric':<24}{'candidate':>11}" +
           (f"{'baseline':>11}{'delta':>10}" if baseline else "")]
  for name, value in candidate.items():
    # Query counts are ints and print as such; metrics print as 0.1234.
    number = "d" if isinstance(value, int) else ".4f"
    line = f"{name:<24}{value:>11{number}}"
    if baseline:
      line += (f"{baseline[name]:>11{number}}"
               f"{value - baseline[name]:>+10{number}}")
    lines.append(line)
  return "\n".join(lines)


def _set_metric_properties(artifact: types.Artifact, values: Dict[str, float]):
  for name, value in values.items():
    if isinstance(value, int):
      artifact.set_int_custom_property(name, value)
    else:
      artifact.set_float_custom_property(name, value)


class Executor(base_executor.BaseExecutor):
  """Evaluates the candidate (and baseline) model, writes the blessing."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Scores the towers on the eval slates' queries and blesses or not.

    Args:
      input_dict: `model`, `examples` (mined slates), `catalog` (catalogue
        Examples) and optionally `baseline_model`.
      output_dict: `evaluation` (RetrievalEvaluation) and `blessing`
        (ModelBlessing).
      exec_properties: `cutoffs` (JSON list), `blessing_metric`,
        `min_blessing_value`, `max_regression`.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    config = configs.eval_config({
        "cutoffs": json_utils.loads(exec_properties[CUTOFFS_KEY]),
        "blessing_metric": exec_properties[BLESSING_METRIC_KEY],
        "min_blessing_value": exec_properties[MIN_BLESSING_VALUE_KEY],
        "max_regression": exec_properties[MAX_REGRESSION_KEY],
    })
    check_config(config)
    model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
    baseline_models = input_dict.get(BASELINE_MODEL_KEY) or []
    baseline_model = baseline_models[0] if baseline_models else None
    examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
    catalog_artifact = artifact_utils.get_single_instance(
        input_dict[CATALOG_KEY])

    splits = artifact_utils.decode_split_names(examples.split_names)
    if EVAL_SPLIT not in splits:
      raise ValueError(f"Examples {examples.uri} have splits {splits}; the "
                       f"evaluator needs {EVAL_SPLIT!r}")
    judgments = slate_judgments(
        artifact_utils.get_split_uri([examples], EVAL_SPLIT))
    if not judgments:
      raise ValueError(f"The {EVAL_SPLIT!r} slates of {examples.uri} have no "
                       "query with a clicked or ordered item")
    catalog = catalog_lib.read_catalog_examples(catalog_artifact.uri)
    cutoffs = sorted(config.cutoffs)

    logging.info("Evaluating candidate %s on %d queries, %d items",
                 model.uri, len(judgments), len(catalog[features.ITEM_ID]))
    candidate = evaluate_model(model.uri, catalog, judgments, cutoffs)
    baseline = None
    if baseline_model is not None:
      logging.info("Evaluating baseline %s", baseline_model.uri)
      baseline = evaluate_model(baseline_model.uri, catalog, judgments,
                                cutoffs)
    blessed, reason = blessing_decision(config, candidate, baseline)
    logging.info("Retrieval metrics:\n%s", metrics_table(candidate, baseline))
    logging.info("%s: %s", "BLESSED" if blessed else "NOT BLESSED", reason)

    evaluation = artifact_utils.get_single_instance(output_dict[EVALUATION_KEY])
    report = {
        "candidate_model": model.uri,
        "baseline_model": baseline_model.uri if baseline_model else None,
        "eval_queries": len(judgments),
        "catalog_items": len(catalog[features.ITEM_ID]),
        "config": {"cutoffs": cutoffs,
                   "blessing_metric": config.blessing_metric,
                   "min_blessing_value": config.min_blessing_value,
                   "max_regression": config.max_regression},
        "candidate": candidate,
        "baseline": baseline,
        "blessed": blessed,
        "reason": reason,
    }
    io_utils.write_string_file(
        os.path.join(evaluation.uri, METRICS_FILE),
        json.dumps(report, indent=2, sort_keys=True))
    _set_metric_properties(evaluation, candidate)

    self._write_blessing(
        artifact_utils.get_single_instance(output_dict[BLESSING_KEY]),
        model, baseline_model, blessed, reason)

  def _write_blessing(self, blessing: types.Artifact, model: types.Artifact,
                      baseline_model: Optional[types.Artifact], blessed: bool,
                      reason: str):
    """Writes the blessing as TFX's Evaluator does (file and properties).

    The Pusher reads the `blessed` property; LatestBlessedModelStrategy pairs
    blessings with models by `current_model_id`.
    """
    blessing.set_string_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline_model is not None:
      blessing.set_string_custom_property(
          evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY,
          baseline_model.uri)
      blessing.set_int_custom_property(
          evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY,
          baseline_model.id)
    blessing.set_string_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, reason)
    file_name, value = (
        (evaluator_constants.BLESSED_FILE_NAME,
         evaluator_constants.BLESSED_VALUE) if blessed else
        (evaluator_constants.NOT_BLESSED_FILE_NAME,
         evaluator_constants.NOT_BLESSED_VALUE))
    io_utils.write_string_file(os.path.join(blessing.uri, file_name), "")
    blessing.set_int_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY, value)
    logging.info("Blessing %s written to %s", file_name, blessing.uri)
