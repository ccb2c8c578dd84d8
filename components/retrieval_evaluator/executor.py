"""RetrievalEvaluator's executor: reads the artifacts, scores, blesses.

The candidate is scored on what would be served: the judged queries,
embedded by its query tower, are searched in the ANN index IndexBuilder
built from its item tower (and, for reference, exactly over the same
embeddings). Its references go through the same search: the same towers at
their initial weights and the latest blessed model each have the catalogue
embedded by their item tower into an in-memory index of the candidate's
kind and parameters; the popularity reference answers every query with the
items clicked or ordered in the most training slates.

Queries are judged by the logged eval split and, when `judgments_path` is
set, by that file of human judgments too, which the blessing then uses.
Scoring and the blessing rule are `evaluation.blessing`'s.
"""
import json
import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import artifacts
from components.data_gate import spec as gate_spec
from components.multistage_samples import spec as mining_spec
from components.retrieval_evaluator import spec
from contracts import catalog as catalog_lib
from contracts import config_io
from contracts import features
from contracts import serving_layout
from evaluation import blessing
from evaluation import metrics
from evaluation.config import EvalConfig
from mining import report as mining_report_lib
from retrieval import ann
from retrieval import embedding
from validation import drift


def read_slates(split_uri: str) -> Iterator[blessing.Slate]:
  """(query, item ids, stages) of every slate in a split of mined slates.

  Args:
    split_uri: a `Split-*` directory of gzip TFRecords of slates
      (`query`, `item_id` x L, `stage` x L).
  """
  files = sorted(tf.io.gfile.glob(os.path.join(split_uri, "*")))
  if not files:
    raise FileNotFoundError(f"No slates under {split_uri}")
  slates = 0
  for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    try:
      query = feature[features.QUERY].bytes_list.value[0].decode("utf-8")
      item_ids = [i.decode("utf-8")
                  for i in feature[features.ITEM_ID].bytes_list.value]
      stages = list(feature[features.STAGE].int64_list.value)
    except (KeyError, IndexError) as e:
      raise ValueError(f"{split_uri}: slate {slates} lacks query, item_id or "
                       f"stage") from e
    slates += 1
    yield query, item_ids, stages
  logging.info("%s: %d slates", split_uri, slates)


def _load_tower(tower_dir: str, model_uri: str) -> embedding.Signature:
  if not tf.io.gfile.exists(tower_dir):
    raise FileNotFoundError(f"Model {model_uri} has no tower at {tower_dir}")
  return embedding.load_signature(tower_dir)


def tower_dirs(model_uri: str, initial: bool = False) -> Tuple[str, str]:
  """(query tower dir, item tower dir) of a Trainer `Model`, trained or as
  it was before training."""
  tower_dir = (serving_layout.initial_tower_dir if initial else
               serving_layout.trained_tower_dir)
  return (tower_dir(model_uri, serving_layout.QUERY_TOWER),
          tower_dir(model_uri, serving_layout.ITEM_TOWER))


def load_candidate_index(index_uri: str, model_uri: str) -> ann.LoadedIndex:
  """The index IndexBuilder wrote, checked to pair with the model."""
  loaded = ann.load(serving_layout.index_dir(
      serving_layout.indexed_retrieval_dir(index_uri)))
  query_tower_dir, _ = tower_dirs(model_uri)
  if loaded.query_tower_fingerprint != ann.saved_model_fingerprint(
      query_tower_dir):
    raise ValueError(f"The index {index_uri} was not built for the query "
                     f"tower of {model_uri}")
  return loaded


def index_like(item_tower_dir: str, model_uri: str,
               catalog: catalog_lib.Catalog, like: ann.LoadedIndex
              ) -> ann.Index:
  """The catalogue embedded by an item tower, indexed as `like`."""
  item_embeddings = embedding.embed_catalog(
      _load_tower(item_tower_dir, model_uri), catalog.columns)
  return ann.build(catalog.item_ids, item_embeddings, kind=like.index.kind,
                   k=like.k, params=like.index.params)


def score_towers(query_tower_dir: str, model_uri: str, index: ann.Index,
                 judgments: metrics.Judgments, cutoffs) -> Dict[str, float]:
  """The query tower embeds the judged queries, `index` answers."""
  queries = list(judgments)
  query_embeddings = embedding.embed_queries(
      _load_tower(query_tower_dir, model_uri), queries)
  return blessing.score_index(index, queries, query_embeddings, judgments,
                              cutoffs)


def read_judgment_sets(config: EvalConfig, eval_split_uri: str
                      ) -> Dict[str, metrics.Judgments]:
  """The logged eval split's judgments and, if configured, the file's."""
  sets = {spec.LOGGED_JUDGMENTS: blessing.judgments_from_slates(
      read_slates(eval_split_uri))}
  if not sets[spec.LOGGED_JUDGMENTS]:
    raise ValueError(f"The {spec.EVAL_SPLIT!r} slates under {eval_split_uri} "
                     "have no query with a clicked or ordered item")
  if config.judgments_path:
    judged = metrics.read_judgments(config.judgments_path)
    if not judged:
      raise ValueError(f"{config.judgments_path}: no judgments")
    sets[spec.FILE_JUDGMENTS] = judged
  return sets


# A system scored through its towers: (query tower dir, index, model uri).
TowerSystem = Tuple[str, ann.Index, str]


def score_systems(systems: Dict[str, TowerSystem], popular: List[int],
                  judgments: metrics.Judgments, cutoffs
                 ) -> Dict[str, Dict[str, float]]:
  """Metrics of every tower system and of the popularity ranking."""
  scores = {name: score_towers(query_dir, model_uri, index, judgments, cutoffs)
            for name, (query_dir, index, model_uri) in systems.items()}
  scores[blessing.POPULARITY] = blessing.score_popularity(popular, judgments,
                                                          cutoffs)
  return scores


def _read_json(input_dict, key: str, file_name: str) -> Optional[Dict]:
  artifacts_in = input_dict.get(key) or []
  if not artifacts_in:
    return None
  return json.loads(io_utils.read_string_file(
      os.path.join(artifacts_in[0].uri, file_name)))


def data_problems(input_dict: Dict[str, List[types.Artifact]]
                 ) -> Tuple[List[str], List[str]]:
  """Why the data behind the candidate cannot be trusted (empty if it can),
  and the drift this run accepts."""
  gate = _read_json(input_dict, spec.DATA_REPORT_KEY, gate_spec.REPORT_FILE)
  problems = drift.problems(gate)
  accepted = [] if problems else drift.exceeded(gate)
  counts = _read_json(input_dict, spec.MINING_REPORT_KEY,
                      mining_spec.COUNTS_FILE)
  set_aside = counts and gate and mining_report_lib.set_aside_problem(
      counts, gate["max_set_aside_share"])
  rows_read = counts and gate and mining_report_lib.rows_read_problem(
      counts, gate.get(gate_spec.LOGS_EXAMPLES))
  return problems + [problem for problem in (set_aside, rows_read)
                     if problem], accepted


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
    """Scores the model and its references on judged queries; blesses or not.

    Args:
      input_dict: `model` (with its initial towers), `index`
        (RetrievalIndex), `examples` (mined slates: `train` for popularity,
        `eval` judged), `catalog` (Catalog) and optionally `baseline_model`,
        `data_report` (DataGateReport) and `mining_report` (MiningReport).
      output_dict: `evaluation` (RetrievalEvaluation) and `blessing`
        (ModelBlessing).
      exec_properties: the `EvalConfig` fields.
    """
    self._log_startup(input_dict, output_dict, exec_properties)
    config = config_io.from_parameters(EvalConfig, exec_properties)
    blessing.check_config(config)
    model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
    baseline_models = input_dict.get(spec.BASELINE_MODEL_KEY) or []
    baseline_model = baseline_models[0] if baseline_models else None
    examples = artifact_utils.get_single_instance(
        input_dict[spec.EXAMPLES_KEY])

    splits = artifact_utils.decode_split_names(examples.split_names)
    for split in (spec.EVAL_SPLIT, spec.TRAIN_SPLIT):
      if split not in splits:
        raise ValueError(f"Examples {examples.uri} have splits {splits}; the "
                         f"evaluator needs {split!r}")
    judgment_sets = read_judgment_sets(
        config, artifact_utils.get_split_uri([examples], spec.EVAL_SPLIT))
    bless_on = (spec.FILE_JUDGMENTS if config.judgments_path else
                spec.LOGGED_JUDGMENTS)
    catalog_artifact = artifact_utils.get_single_instance(
        input_dict[spec.CATALOG_KEY])
    catalog = catalog_lib.read_catalog(
        os.path.join(catalog_artifact.uri, artifacts.CATALOG_FILE))
    index_artifact = artifact_utils.get_single_instance(
        input_dict[spec.INDEX_KEY])
    index = load_candidate_index(index_artifact.uri, model.uri)
    if not np.array_equal(index.index.item_ids, catalog.item_ids):
      raise ValueError(f"The index {index_artifact.uri} holds other items "
                       f"than the catalogue {catalog_artifact.uri}")
    cutoffs = sorted(config.cutoffs)

    logging.info("Evaluating candidate %s (%s index, %d items) on %s",
                 model.uri, index.index.kind, len(catalog), ", ".join(
                     f"{len(j)} queries of the {name}"
                     for name, j in judgment_sets.items()))
    popular = blessing.popularity_ranking(
        read_slates(artifact_utils.get_split_uri([examples],
                                                 spec.TRAIN_SPLIT)),
        k=min(cutoffs[-1], len(catalog)))
    systems: Dict[str, TowerSystem] = {
        spec.CANDIDATE: (tower_dirs(model.uri)[0], index.index, model.uri)}
    query_dir, item_dir = tower_dirs(model.uri, initial=True)
    systems[blessing.INITIAL] = (
        query_dir, index_like(item_dir, model.uri, catalog, index), model.uri)
    if baseline_model is not None:
      logging.info("Evaluating baseline %s", baseline_model.uri)
      query_dir, item_dir = tower_dirs(baseline_model.uri)
      systems[blessing.BASELINE] = (
          query_dir, index_like(item_dir, baseline_model.uri, catalog, index),
          baseline_model.uri)
    by_judgments = {
        name: score_systems(systems, popular, judgments, cutoffs)
        for name, judgments in judgment_sets.items()}
    for name, scores in by_judgments.items():
      logging.info("Retrieval metrics on the %s:\n%s", name,
                   blessing.metrics_table(scores))
    scores = by_judgments[bless_on]
    candidate = scores[spec.CANDIDATE]
    blessed, reason = blessing.blessing_decision(config, candidate, scores)
    reason = f"on the {bless_on.replace('_', ' ')}, {reason}"
    problems, accepted = data_problems(input_dict)
    if problems:
      blessed = False
      reason = f"the data: {'; '.join(problems)}; the model: {reason}"
    elif accepted:
      reason = (f"the data: accepted for this run: {'; '.join(accepted)}; "
                f"the model: {reason}")
    logging.info("%s: %s", "BLESSED" if blessed else "NOT BLESSED", reason)

    evaluation = artifact_utils.get_single_instance(
        output_dict[spec.EVALUATION_KEY])
    report = {
        "candidate_model": model.uri,
        "baseline_model": baseline_model.uri if baseline_model else None,
        "index": index_artifact.uri,
        "index_kind": index.index.kind,
        "index_params": index.index.params,
        "eval_queries": len(judgment_sets[spec.LOGGED_JUDGMENTS]),
        "catalog_items": len(catalog),
        "config": config_io.to_dict(config),
        "judged_on": bless_on,
        # The judgment set blessed on, as before a judgments file existed.
        **{system: scores.get(system)
           for system in (spec.CANDIDATE, *blessing.REFERENCES)},
        "by_judgments": by_judgments,
        "data_problems": problems,
        "blessed": blessed,
        "reason": reason,
    }
    io_utils.write_string_file(
        os.path.join(evaluation.uri, spec.METRICS_FILE),
        json.dumps(report, indent=2, sort_keys=True))
    _set_metric_properties(evaluation, candidate)

    self._write_blessing(
        artifact_utils.get_single_instance(output_dict[spec.BLESSING_KEY]),
        model, baseline_model, blessed, reason)

  def _write_blessing(self, model_blessing: types.Artifact,
                      model: types.Artifact,
                      baseline_model: Optional[types.Artifact], blessed: bool,
                      reason: str):
    """Writes the blessing as TFX's Evaluator does (file and properties).

    The Pusher reads the `blessed` property; LatestBlessedModelStrategy pairs
    blessings with models by `current_model_id`.
    """
    model_blessing.set_string_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    model_blessing.set_int_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline_model is not None:
      model_blessing.set_string_custom_property(
          evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY,
          baseline_model.uri)
      model_blessing.set_int_custom_property(
          evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY,
          baseline_model.id)
    model_blessing.set_string_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_BLESSING_MESSAGE_KEY, reason)
    file_name, value = (
        (evaluator_constants.BLESSED_FILE_NAME,
         evaluator_constants.BLESSED_VALUE) if blessed else
        (evaluator_constants.NOT_BLESSED_FILE_NAME,
         evaluator_constants.NOT_BLESSED_VALUE))
    io_utils.write_string_file(os.path.join(model_blessing.uri, file_name),
                               "")
    model_blessing.set_int_custom_property(
        evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY, value)
    logging.info("Blessing %s written to %s", file_name, model_blessing.uri)
