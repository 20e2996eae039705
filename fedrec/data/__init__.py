"""Datasets: loaders per format, splits, the synthetic generator and the registry of known datasets."""
from fedrec.data.dataset import EvalSet, InteractionLog, Split

__all__ = ["EvalSet", "InteractionLog", "Split"]
