"""Datasets: where they live, which exist (registry), text corpora, resumable batching."""

from rnnkit.data.batching import SequenceBatches, StreamBatches, pad
from rnnkit.data.paths import data_roots, find_dataset
from rnnkit.data.registry import DATASETS, fetch, require, verify
from rnnkit.data.text import Vocabulary

__all__ = ["data_roots", "find_dataset", "StreamBatches", "SequenceBatches", "pad", "DATASETS", "fetch",
           "require", "verify", "Vocabulary"]
