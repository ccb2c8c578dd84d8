"""Mining: search-log impressions to multi-stage training slates.

Plain Python and NumPy, unit-tested without Beam; the MultiStageSamples
component's executor only wires these steps into a Beam graph.
"""
