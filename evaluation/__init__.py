"""Offline retrieval scoring shared by the evaluator, the CLI and benchmarks:
`metrics` (Recall@K, NDCG@K, index recall), `blessing` (judgments from
slates, scoring an index, the blessing rule), `serving_eval` (`mmse
evaluate`)."""
