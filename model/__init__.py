"""The MMSE two-tower model: features, preprocessing, towers, fusion, tasks."""
import os

# TFRS 0.7 is written against Keras 2; TF 2.16 defaults to Keras 3.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
