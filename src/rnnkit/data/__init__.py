"""Datasets: where they live (``paths``)."""

from rnnkit.data.paths import data_roots, find_dataset

__all__ = ["data_roots", "find_dataset"]
