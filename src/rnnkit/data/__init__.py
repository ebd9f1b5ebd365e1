"""Datasets: where they live (``paths``) and resumable batching (``batching``)."""

from rnnkit.data.batching import SequenceBatches, StreamBatches, pad
from rnnkit.data.paths import data_roots, find_dataset

__all__ = ["data_roots", "find_dataset", "StreamBatches", "SequenceBatches", "pad"]
