"""Batches that can stop anywhere and resume exactly: token streams, item datasets, drawn batches.

What the Trainer consumes is a :class:`BatchSource`. The kinds here iterate over the rest
of the current epoch from a saved position, and their ``state_dict`` holds everything that
decides the next batch (epoch, position; random choices are drawn from generators seeded by
(seed, epoch, position), never from the global one), so a resumed run sees exactly the
batches the uninterrupted run would have seen.

A batch is a dict with the keys of :class:`Batch` (one vocabulary for every model).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from torch import Tensor


class Batch(TypedDict, total=False):
    """The keys a batch may have; each model's ``loss`` reads the ones it needs.

    input: (B, T) token ids or (B, T, F) features (an encoder's source).   lengths: (B,)
        steps of each input.
    target: (B, T) per-step targets, (B,) one per sequence, or (B, S) padded symbol
        sequences (CTC, decoders).   target_lengths: (B,) symbols of each target.
    decoder_input: (B, S) what a decoder is fed under teacher forcing (the target shifted
        right, starting with bos).
    condition: (B, F) the vector a sequence is generated from.
    new_stream: (stream chunks) this chunk starts the streams afresh: no state is carried in.
    spellings: (W, L) character ids of the batch's W distinct words; spelling_lengths: (W,);
        spelling_index: (B, T) which of them each input position is (see rnnkit.models.spelling).
    """

    input: Tensor
    lengths: Tensor
    target: Tensor
    target_lengths: Tensor
    decoder_input: Tensor
    condition: Tensor
    new_stream: bool
    spellings: Tensor
    spelling_lengths: Tensor
    spelling_index: Tensor


class BatchSource(abc.ABC):
    """What :class:`rnnkit.train.Trainer` consumes: resumable batches, one epoch per iteration.

    Attributes:
        stateful: True when consecutive batches continue the same streams, so the model's
            recurrent state is carried from one to the next (truncated BPTT); False when
            batches are independent sequences.
        epoch, position: where the source stands (what :meth:`state_dict` saves).
    """

    stateful: bool = False

    def __init__(self) -> None:
        self.epoch, self.position = 0, 0

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Batch]:
        """The rest of the current epoch; afterwards ``epoch`` is one more and ``position`` 0."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Batches per epoch."""

    def state_in(self, batch: Batch, carried: Any) -> Any:
        """The recurrent state a model starts ``batch`` from, given the state the previous batch
        ended in: None (a fresh state) for independent sequences and at a stream's start."""
        return None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class StreamBatches(BatchSource):
    """A token stream cut into B parallel streams and BPTT chunks (truncated BPTT).

    With B = 4 the stream a b c d ... x becomes four rows, each a contiguous piece of text,
    read chunk by chunk; the target is the input shifted by one::

        a b c d e f | g  h        chunk 0 (bptt 2): input  a b   target b c
        g h i j k l | m  n                          input  g h   target h i  ...
        m n o p q r | s  t        chunk 1:          input  c d   target d e
        s t u v w x |             ...

    Row b of chunk i continues row b of chunk i-1, so the model's state is carried from one
    chunk to the next (and detached: the gradient stops at the chunk boundary). Batches
    are dicts {"input" (B, t), "target" (B, t), "new_stream"}; the state starts afresh at
    each epoch's first chunk, where ``new_stream`` is True (:meth:`state_in`).

    Args:
        tokens: 1-D token ids, or (N, D) vectors of a real-valued series (then input and
            target are (B, t, D): forecasting the next vector). batch_size: B. bptt: chunk length.
        random_length: vary the chunk length as AWD-LSTM does: bptt (or bptt/2 with
            probability 0.05), plus Gaussian noise of std 5, at least 5.
        seed: for the random lengths.
    """

    stateful = True

    def __init__(self, tokens: Tensor, batch_size: int, bptt: int, random_length: bool = False, seed: int = 0) -> None:
        if tokens.dim() not in (1, 2):
            raise ValueError("tokens must be 1-D token ids, or (N, D) vectors of a real-valued series. "
                             f"Received: shape {tuple(tokens.shape)}")
        if batch_size < 1 or bptt < 1:
            raise ValueError(f"batch_size and bptt must be >= 1. Received: {batch_size}, {bptt}")
        L = (len(tokens) - 1) // batch_size
        if L < 1:
            raise ValueError(f"{len(tokens)} tokens are too few for {batch_size} streams")
        self.rows = torch.stack([tokens[b * L : b * L + L + 1] for b in range(batch_size)])  # (B, L + 1): one more for the target
        super().__init__()
        self.batch_size, self.bptt, self.random_length, self.seed = batch_size, bptt, random_length, seed
        self.length = L

    def _chunk_length(self, epoch: int, position: int) -> int:
        if not self.random_length:
            return self.bptt
        g = torch.Generator().manual_seed(hash((self.seed, epoch, position)) % (2**63))
        base = self.bptt if torch.rand((), generator=g) < 0.95 else self.bptt / 2
        return max(5, int(round(base + 5.0 * float(torch.randn((), generator=g)))))

    def __len__(self) -> int:
        """Chunks per epoch (with fixed lengths)."""
        return math.ceil(self.length / self.bptt)

    @property
    def tokens_per_epoch(self) -> int:
        return self.batch_size * self.length

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The rest of the current epoch; the position advances as batches are taken."""
        while self.position < self.length:
            start = self.position
            t = min(self._chunk_length(self.epoch, start), self.length - start)
            self.position = start + t
            yield {"input": self.rows[:, start : start + t], "target": self.rows[:, start + 1 : start + t + 1],
                   "new_stream": start == 0}
        self.epoch, self.position = self.epoch + 1, 0

    def state_in(self, batch: Batch, carried: Any) -> Any:
        """The carried state, except at the first chunk of an epoch (a fresh state)."""
        return None if batch["new_stream"] else carried


class SequenceBatches(BatchSource):
    """Batches of dataset items, reshuffled every epoch, collated into dicts of tensors.

    Args:
        items: the dataset (any sequence). batch_size: items per batch.
        collate: list of items -> batch dict.
        shuffle: a new order each epoch, from (seed, epoch).
        drop_last: skip a final smaller batch.
    """

    def __init__(self, items: Sequence[Any], batch_size: int, collate: Callable[[list[Any]], dict[str, Any]],
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1. Received: {batch_size}")
        if len(items) == 0:
            raise ValueError("items must not be empty")
        super().__init__()
        self.items, self.batch_size, self.collate = items, batch_size, collate
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last

    @classmethod
    def prebuilt(cls, batches: Sequence[dict[str, Any]], shuffle: bool = True, seed: int = 0) -> SequenceBatches:
        """Batches collated in advance (e.g. of similar lengths, :func:`by_length`), taken in a new
        order each epoch when ``shuffle``."""
        return cls(batches, 1, lambda one: one[0], shuffle=shuffle, seed=seed)

    def __len__(self) -> int:
        n = len(self.items) // self.batch_size
        return n if self.drop_last or len(self.items) % self.batch_size == 0 else n + 1

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.items)))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.items), generator=g).tolist()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        order = self._order(self.epoch)
        while self.position < len(self):
            i = self.position
            self.position += 1
            yield self.collate([self.items[j] for j in order[i * self.batch_size : (i + 1) * self.batch_size]])
        self.epoch, self.position = self.epoch + 1, 0


class DrawnBatches(BatchSource):
    """Batches drawn afresh every time (on-the-fly data and augmentation): ``draw(generator)``
    makes one batch from a generator seeded by (seed, epoch, position), so every batch differs
    and a resumed run draws exactly the batches the uninterrupted one would have.

    Args:
        draw: numpy Generator -> batch dict. batches_per_epoch: how many make an "epoch" (the
            unit of --epochs and of the learning-rate schedule's patience).
    """

    def __init__(self, draw: Callable[[np.random.Generator], dict[str, Any]], batches_per_epoch: int,
                 seed: int = 0) -> None:
        if batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1. Received: {batches_per_epoch}")
        super().__init__()
        self.draw, self.batches_per_epoch, self.seed = draw, batches_per_epoch, seed

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self.position < len(self):
            rng = np.random.default_rng((self.seed, self.epoch, self.position))
            self.position += 1
            yield self.draw(rng)
        self.epoch, self.position = self.epoch + 1, 0


def by_length(items: Sequence[Any], size: int, length: Callable[[Any], int] = len) -> list[list[Any]]:
    """Groups of ``size`` items of similar length (little padding), shortest first."""
    if size < 1:
        raise ValueError(f"size must be >= 1. Received: {size}")
    ordered = sorted(items, key=length)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def pad(sequences: Sequence[Tensor], value: int = 0) -> tuple[Tensor, Tensor]:
    """Stack 1-D (or (T, F)) tensors of different lengths: (padded (B, T_max, ...), lengths (B,))."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    out = sequences[0].new_full((len(sequences), int(lengths.max()), *sequences[0].shape[1:]), value)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out, lengths
