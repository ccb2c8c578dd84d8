"""The peer a practitioner would train instead of MMSE: all-MiniLM-L6-v2
fine-tuned on the logs' clicks the standard sentence-transformers way.

Training pairs are the distinct (query, title) pairs of clicked or ordered
impressions. The loss is sentence-transformers' MultipleNegativesRankingLoss
(an in-batch softmax over cosine similarities, scale 20), batches of 64 with
no text twice in a batch (`batches_without_duplicates`), AdamW at 2e-5 with
weight decay 0.01 off biases and LayerNorms, a linear warm-up over the first
10% of the steps and a linear decay after, gradients clipped at norm 1, one
epoch: the settings of its training examples for this loss. The fine-tuned
encoder then embeds the catalogue and the queries, ranked by cosine.

Needs the `minilm` extra (torch, sentence-transformers); the fine-tuned model
is cached under the cache directory, keyed by the pairs, the settings and the
seed.
"""
import dataclasses
import glob
import hashlib
import json
import logging
import os
import random
import shutil
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from contracts import catalog as catalog_lib
from model import minilm
from retrieval import topk

Pair = Tuple[str, str]
_LOG_COLUMNS = ("query", "item_id", "clicked", "ordered")
# Steps between two progress lines.
_LOG_EVERY = 50
# Beside a fine-tuned model: how it was trained and how long it took.
TRAINING_FILE = "mmse_fine_tuning.json"


@dataclasses.dataclass(frozen=True)
class FineTuning:
  batch_size: int = 64
  learning_rate: float = 2e-5
  weight_decay: float = 0.01
  warmup_share: float = 0.1
  scale: float = 20.0
  epochs: int = 1
  max_grad_norm: float = 1.0


@dataclasses.dataclass
class Result:
  """Rankings of the dev queries and what they cost."""
  rankings: Dict[str, List[str]]
  train_seconds: float  # Also when the fine-tuned model came from the cache.
  encode_seconds: float  # The catalogue and the queries.


def click_pairs(logs_pattern: str,
                catalog: catalog_lib.Catalog) -> List[Pair]:
  """Distinct (query, title) pairs of clicked or ordered impressions, in a
  fixed order. Rows with an empty query, an item the catalogue lacks or
  unreadable flags are left out (the data's dirt)."""
  paths = sorted(glob.glob(logs_pattern))
  if not paths:
    raise FileNotFoundError(f"{logs_pattern}: matches no file")
  titles = dict(zip(catalog.item_ids.tolist(), catalog.titles.tolist()))
  pairs = set()
  for path in paths:
    logs = pd.read_csv(path, usecols=lambda c: c in _LOG_COLUMNS,
                       dtype={"query": str, "item_id": str},
                       keep_default_na=False)
    missing = set(_LOG_COLUMNS) - set(logs.columns)
    if missing:
      raise ValueError(f"{path}: lacks the columns {sorted(missing)}")
    flag = lambda column: pd.to_numeric(logs[column], errors="coerce") == 1
    engaged = logs[flag("clicked") | flag("ordered")]
    for query, item_id in zip(engaged["query"].str.strip(), engaged.item_id):
      if query and item_id in titles:
        pairs.add((query, titles[item_id]))
  logging.info("Fine-tuning MiniLM: %d distinct (query, title) pairs from %d "
               "files", len(pairs), len(paths))
  return sorted(pairs)


def batches_without_duplicates(pairs: Sequence[Pair], batch_size: int,
                               seed: int) -> List[List[Pair]]:
  """One epoch of batches in which no text occurs twice (a duplicate would
  be a false in-batch negative), as sentence-transformers'
  NoDuplicatesDataLoader makes them: ceil(pairs / batch_size) batches,
  filled from the shuffled pairs in a cycle, passing over a pair that would
  repeat a text (it may come in a later batch, and a few pairs twice)."""
  order = list(pairs)
  rng = random.Random(seed)
  rng.shuffle(order)
  batches, pointer = [], 0
  for _ in range(-(-len(order) // batch_size)):
    batch, texts, passed_over = [], set(), 0
    # A batch stops short only when no pair left fits it.
    while len(batch) < batch_size and passed_over < len(order):
      pair = order[pointer]
      pointer += 1
      if pointer == len(order):
        pointer = 0
        rng.shuffle(order)
      if texts & set(pair):
        passed_over += 1
        continue
      batch.append(pair)
      texts.update(pair)
      passed_over = 0
    batches.append(batch)
  return batches


def _model_key(pairs: Sequence[Pair], settings: FineTuning, seed: int) -> str:
  digest = hashlib.sha256(json.dumps(
      [minilm.NAME, list(pairs),
       dataclasses.asdict(settings), seed]).encode("utf-8"))
  return digest.hexdigest()[:24]


def fine_tune(pairs: Sequence[Pair], out_dir: str, seed: int,
              settings: FineTuning = FineTuning()) -> None:
  """Fine-tunes the packaged all-MiniLM-L6-v2 on `pairs`; saves to
  `out_dir` (written whole or not at all)."""
  # pylint: disable=g-import-not-at-top
  import sentence_transformers
  import torch
  import transformers
  from sentence_transformers import losses
  # pylint: enable=g-import-not-at-top
  torch.manual_seed(seed)
  torch.set_num_threads(os.cpu_count() or 1)
  model = sentence_transformers.SentenceTransformer(
      minilm.packaged_model_dir(), device="cpu")
  loss_fn = losses.MultipleNegativesRankingLoss(model, scale=settings.scale)
  no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
  named = list(model.named_parameters())
  optimizer = torch.optim.AdamW([
      {"params": [p for n, p in named if not any(k in n for k in no_decay)],
       "weight_decay": settings.weight_decay},
      {"params": [p for n, p in named if any(k in n for k in no_decay)],
       "weight_decay": 0.0},
  ], lr=settings.learning_rate)
  epochs = [batches_without_duplicates(pairs, settings.batch_size,
                                       seed + epoch)
            for epoch in range(settings.epochs)]
  steps = sum(len(batches) for batches in epochs)
  scheduler = transformers.get_linear_schedule_with_warmup(
      optimizer, int(settings.warmup_share * steps), steps)
  model.train()
  started, step = time.time(), 0
  for batches in epochs:
    for batch in batches:
      features = [model.preprocess([q for q, _ in batch]),
                  model.preprocess([t for _, t in batch])]
      loss = loss_fn(features, None)
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(),
                                     settings.max_grad_norm)
      optimizer.step()
      scheduler.step()
      optimizer.zero_grad()
      step += 1
      if step % _LOG_EVERY == 0 or step == steps:
        logging.info("Fine-tuning MiniLM: step %d of %d, loss %.3f, %.0f s",
                     step, steps, loss.item(), time.time() - started)
  partial = f"{out_dir}.{os.getpid()}.partial"
  shutil.rmtree(partial, ignore_errors=True)
  model.save(partial)
  with open(os.path.join(partial, TRAINING_FILE), "w") as f:
    json.dump({"pairs": len(pairs), "steps": steps, "seed": seed,
               "train_seconds": round(time.time() - started, 1),
               **dataclasses.asdict(settings)}, f, indent=1)
  os.replace(partial, out_dir)


def rankings(catalog: catalog_lib.Catalog, queries: Sequence[str], k: int,
             logs_pattern: str, seed: int, cache_dir: Optional[str],
             work_dir: str, settings: FineTuning = FineTuning()) -> Result:
  """Fine-tunes (or reuses the cached fine-tuned model), then ranks the
  whole catalogue for each query by cosine similarity.

  Raises:
    ImportError: the `minilm` extra is not installed.
  """
  try:
    import sentence_transformers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("the fine-tuned MiniLM needs the minilm extra: "
                      "pip install -e '.[minilm]'") from e
  pairs = click_pairs(logs_pattern, catalog)
  models_dir = os.path.join(cache_dir or work_dir, "finetuned_minilm")
  model_dir = os.path.join(models_dir, _model_key(pairs, settings, seed))
  if not os.path.isdir(model_dir):
    os.makedirs(models_dir, exist_ok=True)
    fine_tune(pairs, model_dir, seed, settings)
  else:
    logging.info("Fine-tuned MiniLM from %s", model_dir)
  with open(os.path.join(model_dir, TRAINING_FILE)) as f:
    train_seconds = json.load(f)["train_seconds"]
  model = sentence_transformers.SentenceTransformer(model_dir, device="cpu")
  titles = catalog.titles.tolist()
  started = time.time()
  logging.info("Fine-tuned MiniLM: encoding %d titles", len(titles))
  item_embeddings = model.encode(titles, batch_size=128,
                                 normalize_embeddings=True)
  query_embeddings = model.encode(list(queries), batch_size=128,
                                  normalize_embeddings=True)
  encode_seconds = time.time() - started
  top, _ = topk.exact_top_k(np.asarray(query_embeddings, np.float32),
                            np.asarray(item_embeddings, np.float32),
                            min(k, len(titles)))
  return Result({q: catalog.item_ids[row].tolist()
                 for q, row in zip(queries, top)},
                train_seconds, encode_seconds)
