"""Contracts every layer shares: the bottom of the import graph.

Feature and stage names (`features`), the one text normalisation (`text`),
the one catalogue reader and its duplicate policy (`catalog`), the serving
layout (`serving_layout`) and how a config dataclass travels as component
parameters (`config_io`). Nothing here imports another package of this
project, so every package may import it.
"""
