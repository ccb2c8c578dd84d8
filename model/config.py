"""Knobs of the model: text features (Transform) and the towers, fusion,
objectives and training (Trainer)."""
import dataclasses

# Where training runs, `ModelConfig.distribution` (`model.distribution`
# builds the strategies): one device, this machine's devices, or the
# processes TF_CONFIG names.
NO_DISTRIBUTION = "none"
MIRRORED = "mirrored"
MULTI_WORKER = "multi_worker"
DISTRIBUTIONS = (NO_DISTRIBUTION, MIRRORED, MULTI_WORKER)

# Apart from the first, `ModelConfig.trainings`' models get seeds this far
# from the run's, so that runs with neighbouring seeds share no batch order.
MEMBER_SEED_STRIDE = 1000


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
  # order: mixed, words, trigrams, lexical (`towers.HEAD_KINDS`). The
  # lexical head paid at one training, not at three side by side
  # (docs/quality.md).
  num_heads: int = 3
  head_dim: int = 256
  token_embedding_dim: int = 128
  hidden_dim: int = 256
  dropout: float = 0.1
  # Share of word and trigram ids dropped from each text in training, so
  # queries are matched by parts rather than remembered whole.
  word_dropout: float = 0.25
  # Where the token table starts: "teacher" (each vocabulary word encoded
  # alone by all-MiniLM-L6-v2, `model.pretrained_tokens`), a table file
  # (.npz of words and vectors), or empty for a random start.
  pretrained_token_table: str = "teacher"
  # An id embedding remembers the items seen in training, which does not
  # carry to unseen queries; off by default.
  use_item_id: bool = False
  # Objectives. The retrieval loss compares each positive with in-batch and
  # random items (global); the ranking loss orders one query's slate (local:
  # RankNet's pairwise logistic loss, scaled by the retrieval temperature).
  retrieval_weight: float = 1.0
  ranking_weight: float = 0.5
  # Softmax temperature of the retrieval loss (tuned on Home Depot dev).
  temperature: float = 0.03
  # Weight of a positive in the retrieval loss by its stage.
  ordered_weight: float = 2.0
  clicked_weight: float = 1.0
  use_unclicked: bool = True
  # With use_unclicked, whether shown-unclicked items are also negatives of
  # the retrieval softmax, not only the stage between clicks and random
  # items in the ranking loss (the hardest negatives the softmax sees;
  # Facebook's EBR found non-click impressions poor retrieval negatives).
  # On Home Depot dev it changed nothing (README's ablation table).
  unclicked_in_retrieval: bool = True
  use_random_negatives: bool = True
  remove_accidental_hits: bool = True
  # Subtract log(sampling probability) of in-batch candidates (Yi et al. 2019).
  sampling_bias_correction: bool = True
  # Training. One pass over real logs: more epochs begin to remember the
  # training queries at the cost of unseen ones. A large batch gives the
  # retrieval softmax more in-batch negatives (chosen on Home Depot dev).
  # (The embedded sample, much smaller, trains longer on smaller batches:
  # `tfx_pipeline.configs.SAMPLE_OVERRIDES`.)
  batch_size: int = 1024
  epochs: int = 1
  # Seeds the initial weights, dropout and the shuffle: a rerun with the same
  # seed starts from the same towers and sees the batches in the same order.
  seed: int = 1
  # Models trained one after another, each with its own seed for dropout
  # and the batch order (the k-th, from 0, with seed + MEMBER_SEED_STRIDE *
  # k; their initial weights are drawn one after another from `seed`),
  # served side by side (`mmse.Ensemble`): each tower's vectors
  # concatenated, so the score is the sum of the models' scores, still one
  # dot product, at `trainings` times the width and training time. Their
  # errors differ enough that three beat one on dev Recall@10, @100 and
  # NDCG@10 at every seed (bench/results/quality.md). (One for the
  # embedded sample.)
  trainings: int = 3
  learning_rate: float = 2e-3
  eval_batch_size: int = 512
  # One of DISTRIBUTIONS; batch_size is the global batch under all three.
  distribution: str = NO_DISTRIBUTION
