"""Whole-catalogue retrieval evaluation and blessing as a TFX component."""
from components.retrieval_evaluator.component import RetrievalEvaluator
