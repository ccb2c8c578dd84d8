"""Pushes the blessed towers and retrieval model into a TF Serving model dir."""
