"""Multi-stage training data mined from search logs (a custom TFX component)."""
from components.multistage_samples.component import MultiStageSamples
