"""Every knob of the MMSE pipeline, in one place.

Components receive the parts they need as plain dicts (`dataclasses.asdict`)
through their parameters or `custom_config`, and rebuild the dataclass with
`from_dict`, so a knob has one name and one default everywhere. A benchmark
ablation is a `dataclasses.replace` of these, never a code fork.
"""
import dataclasses
import json
import os
from typing import Any, Dict, Optional, Tuple

PIPELINE_NAME = "mmse"
MODEL_NAME = "mmse"
# Names of the three SavedModels pushed side by side under the serving dir.
QUERY_TOWER = "query_tower"
ITEM_TOWER = "item_tower"
RETRIEVAL = "retrieval"
SERVED_MODELS = (QUERY_TOWER, ITEM_TOWER, RETRIEVAL)


@dataclasses.dataclass(frozen=True)
class MiningConfig:
  """How search logs become multi-stage training slates."""
  # Lower-stage items of the same query placed in each slate after the anchor
  # (clicked items under an ordered anchor, then shown-unclicked items).
  num_context_items: int = 6
  # Items drawn from the whole catalogue for each slate.
  num_random_negatives: int = 4
  # Random negatives are drawn with P(item) ~ (impressions + 1) ** exponent:
  # 0 samples uniformly, 1 follows exposure (as in-batch negatives do).
  popularity_exponent: float = 0.5
  # Share of distinct queries held out for evaluation, split by query hash.
  eval_fraction: float = 0.1
  # Title pseudo-queries: a few words of a catalogue title become a query
  # whose positive (as a click) is that item, in the train split only. Most
  # catalogue items are never clicked in the logs - on Home Depot, 72% of the
  # items relevant to dev queries - and these slates teach the towers every
  # title's words. Share of catalogue items that get one, and its length.
  # With the lexical head, every item (1.0) against half (0.5) moved Home
  # Depot dev NDCG@10 from 0.327 to 0.330 and Recall@10 from 0.415 to 0.426.
  title_query_fraction: float = 1.0
  title_query_min_words: int = 2
  title_query_max_words: int = 4
  seed: int = 17

  @property
  def slate_size(self) -> int:
    return 1 + self.num_context_items + self.num_random_negatives


@dataclasses.dataclass(frozen=True)
class TextConfig:
  """Text processing shared by both towers (Transform's preprocessing_fn)."""
  max_query_tokens: int = 12
  max_title_tokens: int = 32
  # Character trigrams of each word, hashed: sub-word signal for misspellings
  # and unseen words.
  max_query_trigrams: int = 48
  max_title_trigrams: int = 128
  trigram_buckets: int = 100_000
  vocab_size: int = 50_000
  vocab_min_frequency: int = 2
  oov_buckets: int = 10
  # Item ids for the optional id embedding; rarer items share OOV buckets.
  item_id_vocab_size: int = 200_000
  item_id_min_frequency: int = 2


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Towers, post-fusion and the two objectives."""
  # Each tower emits `num_heads` sub-embeddings of `head_dim`; the fused score
  # is a learned non-negative mix of their per-head dot products. Heads, in
  # order: mixed, words, trigrams, lexical (`towers.HEAD_KINDS`). On Home
  # Depot dev the lexical head raised NDCG@10 from 0.303 to 0.327 and
  # Recall@100 from 0.759 to 0.768.
  num_heads: int = 4
  # Home Depot dev, one epoch: head_dim 64 -> 256 raised Recall@100 from
  # 0.730 to 0.745 and NDCG@10 from 0.284 to 0.307.
  head_dim: int = 256
  token_embedding_dim: int = 128
  hidden_dim: int = 256
  dropout: float = 0.1
  # Share of word and trigram ids dropped from each text in training, so
  # queries are matched by parts rather than remembered whole.
  word_dropout: float = 0.25
  # Word vectors the token table starts from: a file that
  # `mmse distill-tokens` writes (all-MiniLM-L6-v2, each word alone). Empty:
  # random start.
  pretrained_token_table: str = ""
  # An id embedding remembers the items seen in training; on unseen queries
  # it lowered dev Recall@100 from 0.67 to 0.50 (Home Depot), so it is off.
  use_item_id: bool = False
  # Objectives. The retrieval loss compares each positive with in-batch and
  # random items (global); the ranking loss orders one query's slate (local).
  retrieval_weight: float = 1.0
  ranking_weight: float = 0.5
  # Softmax temperature of the retrieval loss. Sharper served unseen queries
  # better on Home Depot dev: Recall@100 0.745 at 0.05, 0.759 at 0.03, 0.755
  # at 0.02 (head_dim 256); 0.730 at 0.05 and 0.708 at 0.1 (head_dim 64).
  temperature: float = 0.03
  # Weight of a positive in the retrieval loss by its stage.
  ordered_weight: float = 2.0
  clicked_weight: float = 1.0
  # Ranking loss over each slate's pairs: "hinge" (margin per stage of
  # difference, on fused scores) or "logistic" (scaled by the temperature).
  ranking_loss: str = "hinge"
  ranking_margin: float = 0.1
  use_unclicked: bool = True
  use_random_negatives: bool = True
  remove_accidental_hits: bool = True
  # Subtract log(sampling probability) of in-batch candidates (Yi et al. 2019).
  sampling_bias_correction: bool = True
  # Training. One pass over real logs: on Home Depot, dev recall on unseen
  # queries peaked after the first epoch and fell after it as the towers
  # began to remember the training queries. (The embedded sample, 30 times
  # smaller, trains longer: `SAMPLE_OVERRIDES`.)
  batch_size: int = 256
  epochs: int = 1
  learning_rate: float = 2e-3
  eval_batch_size: int = 512
  # Items returned by the exported `retrieval` model.
  retrieval_k: int = 1000


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Offline evaluation over the whole catalogue and the blessing rule."""
  cutoffs: Tuple[int, ...] = (10, 100, 1000)
  blessing_metric: str = "recall@100"
  # Blessed when the metric reaches this absolute floor ...
  min_blessing_value: float = 0.05
  # ... and is not below the latest blessed model's by more than this.
  max_regression: float = 0.0


# What `mmse run` changes for the embedded sample: too small for one epoch.
SAMPLE_OVERRIDES = ("model.epochs=10",)


def _from_dict(cls, values: Optional[Dict[str, Any]]):
  values = dict(values or {})
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = set(values) - names
  if unknown:
    raise ValueError(f"Unknown {cls.__name__} keys: {sorted(unknown)}")
  for f in dataclasses.fields(cls):
    if f.name not in values:
      continue
    if isinstance(values[f.name], list):
      values[f.name] = tuple(values[f.name])
    elif f.type is float and isinstance(values[f.name], int):
      values[f.name] = float(values[f.name])  # JSON writes 0.0 as 0.
  return cls(**values)


def mining_config(values=None) -> MiningConfig:
  return _from_dict(MiningConfig, values)


def text_config(values=None) -> TextConfig:
  return _from_dict(TextConfig, values)


def model_config(values=None) -> ModelConfig:
  return _from_dict(ModelConfig, values)


def eval_config(values=None) -> EvalConfig:
  return _from_dict(EvalConfig, values)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Paths and run settings; one instance describes one pipeline run."""
  logs_pattern: str  # Glob of the search-log CSV files (gzip or not).
  catalog_path: str  # CSV with item_id, title and optional side features.
  output_dir: str  # Pipeline root, metadata, serving dir all go under here.
  mining: MiningConfig = MiningConfig()
  text: TextConfig = TextConfig()
  model: ModelConfig = ModelConfig()
  evaluation: EvalConfig = EvalConfig()
  pipeline_name: str = PIPELINE_NAME
  # ANN index served beside the exact `retrieval` model: scann, faiss, exact.
  index_kind: str = "scann"
  # Beam flags for every Beam-powered component. DirectRunner on the local
  # machine by default; see runners/ for Dataflow.
  beam_pipeline_args: Tuple[str, ...] = (
      "--direct_running_mode=in_memory",
      "--direct_num_workers=1",
  )

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline")

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, "metadata.sqlite")

  @property
  def serving_dir(self) -> str:
    return os.path.join(self.output_dir, "serving")


def dataflow_beam_pipeline_args(project: str, region: str,
                                temp_location: str) -> Tuple[str, ...]:
  """Beam flags that move every Beam-powered component onto Dataflow.

  `--setup_file` ships this repository's packages (the mining and indexing
  DoFns, the preprocessing_fn) to the workers.
  """
  setup_file = os.path.join(
      os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
  return (
      "--runner=DataflowRunner",
      f"--project={project}",
      f"--region={region}",
      f"--temp_location={temp_location}",
      f"--setup_file={setup_file}",
      "--experiments=use_runner_v2",
  )


_SECTIONS = {
    "mining": mining_config,
    "text": text_config,
    "model": model_config,
    "evaluation": eval_config,
}


def with_overrides(config: PipelineConfig, assignments) -> PipelineConfig:
  """Applies `section.field=value` strings (value parsed as JSON if it can).

  Used by `mmse run --set` and by the benchmark's ablations, so an ablation is
  a config change expressed in the same words a user would type.
  """
  sections: Dict[str, Dict[str, Any]] = {}
  for assignment in assignments:
    key, sep, raw = assignment.partition("=")
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
    config = dataclasses.replace(config, **{section: _SECTIONS[section](merged)})
  return config
