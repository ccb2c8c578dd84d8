"""The retrieval-quality benchmark: every system, one scorer, one table.

  python -m bench.quality [--data-dir ../shared/data/homedepot]
                          [--systems bm25,minilm,hybrid,mmse,...]
                          [--seeds 1,2,3]

ranks the whole catalogue for each judged dev query with each system (by
default README's table, `TABLE_SYSTEMS`), scores the rankings with
`evaluation.metrics` and writes `bench/results/quality.md`, `quality.json`
and `recall_at_k.png`. A trained system is trained once per seed
(`model.seed`) and reported as the mean with the min-max. The queries that
hold a word no catalogue title holds (mostly misspellings) are also scored
apart.

Systems live in a registry, `SYSTEMS`: an entry is a name, a line of
description and a function from the benchmark's `Context` to a `SystemRun`.
A trained system is an entry whose function runs the TFX pipeline with its
config change (`configs.with_overrides`, the words of `mmse run --set`) and
ranks with the towers that run trained; systems built from others (the RRF
hybrid) ask the context for their inputs, which runs each of them once.

Every trained system shares one pipeline root and ML Metadata store with
caching on, so an ablation that changes only the model reruns only the
Trainer and what follows it; one that changes the mining also reruns the
mining and the Transform. They share one cache directory, so the teacher
encodes a vocabulary once (`model.pretrained_tokens`).
"""
import argparse
import dataclasses
import importlib.util
import logging
import os
import pathlib
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bench import baselines
from evaluation import lexical
from bench import report
from contracts import catalog as catalog_lib
from contracts import serving_layout
from contracts import text
from evaluation import metrics
from retrieval import embedding
from tfx_pipeline import configs

_REPO = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = _REPO.parent / "shared" / "data" / "homedepot"
DEFAULT_RESULTS_DIR = _REPO / "bench" / "results"
DEFAULT_WORK_DIR = _REPO / "outputs" / "bench"
CATALOG_FILE = "catalog.csv"
JUDGMENTS_FILE = "dev_judgments.csv"
LOGS_GLOB = os.path.join("logs", "*.csv.gz")
# Deep enough for the largest cut-off in the table and the plot.
RANKING_DEPTH = 1000
# Under the work dir: the pipeline every trained system shares.
PIPELINE_DIR = "pipeline"
DEFAULT_SEEDS = (1, 2, 3)
# README's table, which `bench/results/quality.*` hold: what runs when
# --systems is not given. The ablations and the fine-tuned peer are asked
# for by name, each into a results folder of its own.
TABLE_SYSTEMS = ("bm25", "minilm", "hybrid", "mmse", "one_training")
UNSEEN_WORDS_SUBSET = "a word no title has"


@dataclasses.dataclass
class SystemRun:
  """What a system hands to the report: its rankings and training cost."""
  rankings: Dict[str, List[str]]
  # Wall time spent fitting to the logs (the mean over seeds); None when
  # nothing is trained.
  train_seconds: Optional[float] = None
  # A trained system's rankings, one per seed (`rankings` is the first).
  seed_rankings: List[Dict[str, List[str]]] = dataclasses.field(
      default_factory=list)
  # Wall time to embed the catalogue and the queries, where a system
  # reports it apart (the mean over seeds).
  encode_seconds: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class System:
  """A registry entry: how to get one system's rankings of the dev queries."""
  name: str
  description: str
  run: Callable[["Context"], SystemRun]
  # The optional extra of setup.py the system needs, if any, and the
  # modules that tell it is installed.
  extra: str = ""
  extra_modules: Tuple[str, ...] = ()


class Context:
  """The benchmark data, and each system's run, computed at most once.

  Attributes:
    data_dir: the benchmark folder (catalogue, logs, judgments).
    catalog_path: its catalogue CSV.
    logs_pattern: glob of its search-log files, for systems that train.
    catalog: the catalogue columns (`model.catalog`).
    judgments: query -> {item_id: grade}.
    queries: the judged queries, in file order.
    depth: how many items each ranking holds.
    work_dir: where a system may write (pipeline outputs, one folder each).
    cache_dir: where expensive, reusable intermediates go (None: no cache).
    seeds: the `model.seed` of each training of a trained system.
    run_seconds: wall time of each system's run so far, by name.
  """

  def __init__(self, data_dir: str, work_dir: str, cache_dir: Optional[str],
               registry: Dict[str, System], depth: int = RANKING_DEPTH,
               seeds: Sequence[int] = DEFAULT_SEEDS):
    self.data_dir = str(data_dir)
    self.catalog_path = os.path.join(self.data_dir, CATALOG_FILE)
    self.logs_pattern = os.path.join(self.data_dir, LOGS_GLOB)
    judgments_path = os.path.join(self.data_dir, JUDGMENTS_FILE)
    for path in (self.catalog_path, judgments_path):
      if not os.path.exists(path):
        raise FileNotFoundError(f"The benchmark data lacks {path}")
    self.catalog = catalog_lib.read_catalog(self.catalog_path)
    self.judgments = metrics.read_judgments(judgments_path)
    self.queries = list(self.judgments)
    self.depth = depth
    self.work_dir = str(work_dir)
    self.cache_dir = str(cache_dir) if cache_dir else None
    self.seeds = list(seeds)
    self._registry = registry
    self._runs: Dict[str, SystemRun] = {}
    self.run_seconds: Dict[str, float] = {}
    logging.info("Benchmark data: %d catalogue items, %d judged queries",
                 len(self.catalog), len(self.queries))

  def result(self, name: str) -> SystemRun:
    """The named system's run on the dev queries, run on first request."""
    if name not in self._runs:
      logging.info("Running %s", name)
      started = time.time()
      self._runs[name] = self._registry[name].run(self)
      self.run_seconds[name] = time.time() - started
      logging.info("%s ran in %.1f s", name, self.run_seconds[name])
    return self._runs[name]


def _bm25(ctx: Context) -> SystemRun:
  return SystemRun(lexical.bm25_rankings(ctx.catalog, ctx.queries,
                                           ctx.depth))


def _minilm(ctx: Context) -> SystemRun:
  cache = os.path.join(ctx.cache_dir, "embeddings") if ctx.cache_dir else None
  return SystemRun(baselines.minilm_rankings(ctx.catalog, ctx.queries,
                                             ctx.depth, cache_dir=cache))


def _hybrid(ctx: Context) -> SystemRun:
  return SystemRun(lexical.rrf_rankings(ctx.result("bm25").rankings,
                                          ctx.result("minilm").rankings,
                                          k=60, depth=ctx.depth))


def _finetuned_minilm(ctx: Context) -> SystemRun:
  # pylint: disable=g-import-not-at-top
  from bench import finetuned_minilm
  results = [finetuned_minilm.rankings(
      ctx.catalog, ctx.queries, ctx.depth, ctx.logs_pattern, seed,
      ctx.cache_dir, ctx.work_dir) for seed in ctx.seeds]
  mean = lambda values: sum(values) / len(values)
  return SystemRun(results[0].rankings,
                   train_seconds=mean([r.train_seconds for r in results]),
                   seed_rankings=[r.rankings for r in results],
                   encode_seconds=mean([r.encode_seconds for r in results]))


def _finetuned_hybrid(ctx: Context) -> SystemRun:
  bm25 = ctx.result("bm25").rankings
  tuned = ctx.result("finetuned_minilm")
  fused = [lexical.rrf_rankings(bm25, rankings, k=60, depth=ctx.depth)
           for rankings in tuned.seed_rankings]
  return SystemRun(fused[0], train_seconds=tuned.train_seconds,
                   seed_rankings=fused, encode_seconds=tuned.encode_seconds)


def pipeline_config(ctx: Context, overrides: Sequence[str]
                   ) -> configs.PipelineConfig:
  """The benchmark pipeline: shipped defaults and `overrides`."""
  config = configs.PipelineConfig(
      logs_pattern=ctx.logs_pattern, catalog_path=ctx.catalog_path,
      output_dir=os.path.join(ctx.work_dir, PIPELINE_DIR),
      cache_dir=ctx.cache_dir or "")
  return configs.with_overrides(config, overrides)


def _trained(overrides: Sequence[str]) -> Callable[[Context], SystemRun]:
  """A system that runs the pipeline with `overrides`, once per seed, and
  ranks with the towers each run trained."""

  def run(ctx: Context) -> SystemRun:
    # pylint: disable=g-import-not-at-top
    from tfx_pipeline import run_report
    from tfx_pipeline.runners import local
    # pylint: enable=g-import-not-at-top
    seed_rankings, seconds = [], []
    for seed in ctx.seeds:
      config = pipeline_config(ctx, [*overrides, f"model.seed={seed}"])
      local.run(config, enable_cache=True)
      run = run_report.latest_run(config.metadata_path)
      query_tower, item_tower = (
          embedding.load_signature(serving_layout.trained_tower_dir(
              run["model_dir"], name))
          for name in (serving_layout.QUERY_TOWER, serving_layout.ITEM_TOWER))
      embedded = (embedding.embed_queries(query_tower, ctx.queries),
                  embedding.embed_catalog(item_tower, ctx.catalog.columns))
      seed_rankings.append(_rank(ctx, *embedded))
      seconds.append(run["train_seconds"])
    return SystemRun(seed_rankings[0], train_seconds=sum(seconds) /
                     len(seconds), seed_rankings=seed_rankings)

  return run


def _rank(ctx: Context, query_embeddings: np.ndarray,
          item_embeddings: np.ndarray) -> Dict[str, List[str]]:
  """Each dev query's `ctx.depth` best catalogue ids by exact search."""
  rankings = embedding.rank_embedded(query_embeddings, item_embeddings,
                                     ctx.catalog.item_ids, ctx.queries,
                                     ctx.depth)
  return {q: r.tolist() for q, r in rankings.items()}


def unseen_word_queries(queries: Sequence[str],
                        titles: Sequence[str]) -> List[str]:
  """The queries holding a word (as the Transform splits words) that no
  title holds: mostly misspellings, which only sub-word signal can match."""
  title_words = set()
  for title in titles:
    title_words.update(text.words(title))
  return [q for q in queries if set(text.words(q)) - title_words]


# The TFRS tutorials' recipe on MMSE's own model (its towers, three heads,
# three trainings, the teacher's word table; not `tfrs.tasks.Retrieval`):
# every click (ordered or not) is a positive of equal weight, scored by an
# in-batch softmax alone, with no mined negatives and no bias corrections.
PLAIN_TFRS = ("mining.title_query_fraction=0", "model.ranking_weight=0",
              "model.use_unclicked=false", "model.use_random_negatives=false",
              "model.ordered_weight=1", "model.remove_accidental_hits=false",
              "model.sampling_bias_correction=false")

# MMSE as shipped and each variant: (name, description, config overrides).
_TRAINED = (
    ("mmse", "MMSE as shipped (pipeline defaults)", ()),
    ("tfrs", "the TFRS tutorials' recipe on MMSE's model: clicks as "
     "positives, in-batch softmax only", PLAIN_TFRS),
    ("no_ranking", "MMSE without the ranking loss",
     ("model.ranking_weight=0",)),
    ("ranking_weight_1", "MMSE with the ranking loss weighted as much as "
     "the retrieval loss (1 instead of 0.5)",
     ("model.ranking_weight=1",)),
    ("no_retrieval", "MMSE without the retrieval loss",
     ("model.retrieval_weight=0",)),
    ("no_unclicked", "MMSE without shown-unclicked items",
     ("model.use_unclicked=false",)),
    ("unclicked_ranking_only", "MMSE with shown-unclicked items in the "
     "ranking loss only, not negatives of the retrieval softmax",
     ("model.unclicked_in_retrieval=false",)),
    ("no_random", "MMSE without random catalogue negatives",
     ("model.use_random_negatives=false",)),
    ("no_fusion", "MMSE with one head: a single dot product, no post-fusion",
     ("model.num_heads=1",)),
    ("lexical_head", "MMSE with a fourth head, the lexical (exact word) one",
     ("model.num_heads=4",)),
    ("equal_stages", "MMSE with ordered and clicked items weighted equally",
     ("model.ordered_weight=1",)),
    ("no_title_queries", "MMSE without title pseudo-queries",
     ("mining.title_query_fraction=0",)),
    ("no_token_table", "MMSE with a random start for the token table "
     "instead of the teacher's word vectors",
     ("model.pretrained_token_table=",)),
    ("two_trainings", "MMSE with two trainings instead of three served "
     "side by side",
     ("model.trainings=2",)),
    ("one_training", "MMSE with one training instead of three served "
     "side by side", ("model.trainings=1",)),
)
SYSTEM_OVERRIDES: Dict[str, Sequence[str]] = {
    name: overrides for name, _, overrides in _TRAINED}

# Fine-tuning runs in torch, which the core install leaves out.
_MINILM_EXTRA = ("minilm", ("torch", "sentence_transformers"))

SYSTEMS: Dict[str, System] = {
    s.name: s for s in (
        System("bm25", "BM25 over titles (bm25s)", _bm25),
        System("minilm", "all-MiniLM-L6-v2, zero-shot", _minilm),
        System("hybrid", "Reciprocal-rank fusion of bm25 and minilm (k=60)",
               _hybrid),
        System("finetuned_minilm", "all-MiniLM-L6-v2 fine-tuned on the "
               "logs' clicked and ordered (query, title) pairs, "
               "sentence-transformers' in-batch softmax "
               "(`bench.finetuned_minilm`)", _finetuned_minilm,
               *_MINILM_EXTRA),
        System("finetuned_hybrid", "Reciprocal-rank fusion of bm25 and "
               "finetuned_minilm (k=60)", _finetuned_hybrid, *_MINILM_EXTRA),
        *(System(name, description, _trained(overrides))
          for name, description, overrides in _TRAINED),
    )
}


def run_benchmark(names: Sequence[str], data_dir: str, results_dir: str,
                  work_dir: str, cache_dir: Optional[str],
                  registry: Optional[Dict[str, System]] = None,
                  seeds: Sequence[int] = DEFAULT_SEEDS) -> Dict[str, dict]:
  """Runs the named systems and writes the report; returns its figures."""
  registry = SYSTEMS if registry is None else registry
  unknown = [n for n in names if n not in registry]
  if unknown:
    raise ValueError(f"Unknown systems {unknown}; known: {sorted(registry)}")
  lacking = [n for n in names
             if any(importlib.util.find_spec(m) is None
                    for m in registry[n].extra_modules)]
  if lacking:
    extras = sorted({registry[n].extra for n in lacking})
    raise ValueError(
        f"{', '.join(lacking)} need the {' and '.join(extras)} extra "
        f"(pip install -e '.[{','.join(extras)}]'), or leave them out of "
        "--systems")
  ctx = Context(data_dir, work_dir, cache_dir, registry, seeds=seeds)
  runs = {name: ctx.result(name) for name in names}
  systems = {name: dataclasses.asdict(run) for name, run in runs.items()}
  description = (
      f"Dev judgments: {len(ctx.queries):,} queries ranked against the whole "
      f"{len(ctx.catalog):,}-item catalogue; Recall@K counts items "
      "graded 2.5 or more, NDCG's gain is grade - 1 (`evaluation.metrics`). "
      "Systems: " + "; ".join(f"{n}: {registry[n].description}"
                              for n in names) + ".")
  subsets = {UNSEEN_WORDS_SUBSET: unseen_word_queries(
      ctx.queries, ctx.catalog.titles.tolist())}
  figures = report.write_report(systems, ctx.judgments, results_dir,
                                description, subsets=subsets)
  for name in names:
    row = figures[name]
    logging.info("%-10s R@10 %.3f R@100 %.3f R@1000 %.3f NDCG@10 %.3f "
                 "NDCG@100 %.3f (%.1f s)", name, row["recall@10"],
                 row["recall@100"], row["recall@1000"], row["ndcg@10"],
                 row["ndcg@100"], ctx.run_seconds[name])
  return figures


def _parse_args(argv):
  parser = argparse.ArgumentParser(
      prog="python -m bench.quality",
      description="Score retrieval systems on the Home Depot dev judgments.")
  parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR),
                      help="benchmark folder with catalog.csv, "
                      "dev_judgments.csv and logs/ (default: %(default)s)")
  parser.add_argument("--systems", default=",".join(TABLE_SYSTEMS),
                      help="comma-separated systems to score, from: "
                      + ", ".join(SYSTEMS) + " (default: README's table, "
                      "%(default)s)")
  parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)),
                      help="model.seed of each training of a trained system "
                      "(default: %(default)s)")
  parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS_DIR),
                      help="where the table, JSON and plot go")
  parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR),
                      help="scratch space: pipeline outputs and the cache")
  parser.add_argument("--no-cache", action="store_true",
                      help="recompute everything instead of reusing cached "
                      "embeddings")
  return parser.parse_args(argv)


def main(argv=None):
  logging.basicConfig(level=logging.INFO,
                      format="%(asctime)s %(levelname)s %(message)s")
  args = _parse_args(argv)
  names = [n.strip() for n in args.systems.split(",") if n.strip()]
  cache_dir = None if args.no_cache else os.path.join(args.work_dir, "cache")
  try:
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    run_benchmark(names, args.data_dir, args.results_dir, args.work_dir,
                  cache_dir, seeds=seeds)
  except (ValueError, FileNotFoundError, ImportError) as e:
    raise SystemExit(f"bench.quality: {e}") from e


if __name__ == "__main__":
  main(sys.argv[1:])
