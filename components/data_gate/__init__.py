"""DataGate: the inputs against their schemas and the served data."""
