"""Datasets: where they live, which exist (registry), text corpora, resumable batching."""

from rnnkit.data.batching import DrawnBatches, SequenceBatches, StreamBatches, by_length, pad
from rnnkit.data.paths import data_roots
from rnnkit.data.registry import DATASETS, fetch, locate, require, verify
from rnnkit.data.vocabulary import Vocabulary

__all__ = ["data_roots", "locate", "StreamBatches", "SequenceBatches", "DrawnBatches", "by_length", "pad", "DATASETS", "fetch",
           "require", "verify", "Vocabulary"]
