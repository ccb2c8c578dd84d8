"""Offline retrieval scoring shared by the evaluator, the CLI and benchmarks."""
