"""Embeds the catalogue once and builds the served retrieval model and index."""
from components.index_builder.component import IndexBuilder
