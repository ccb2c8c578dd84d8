"""Embeds the catalogue once and builds the served retrieval model and index."""
