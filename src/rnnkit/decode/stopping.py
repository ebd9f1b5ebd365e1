"""When a generated sequence ends: the three length-control schemes of the course.

* :class:`StopOnToken`: an end-of-sequence symbol is part of the vocabulary; the sequence
  ends when it is emitted (the symbol is not part of the output ids).
* :class:`StopOnHalt`: a separate Bernoulli "halt" output h_t = P(stop | state_t); the
  sequence ends when h_t > threshold, or, sampling, with probability h_t.
* :class:`StopAtLength`: a length tau predicted up front (e.g. from the conditioning
  vector); the sequence ends after tau tokens.

Every decoder also stops at ``max_length``. A policy maps (token just emitted, state after
it, its index) to a bool per row: finished.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class StopPolicy:
    """Base of the stop policies. ``emit_stop_token`` tells decoders to keep the token."""

    emit_stop_token = True

    def finished(self, tokens: Tensor, state: Any, index: int) -> Tensor:
        """Bool (N,): rows whose sequence ends with ``tokens`` (emitted at position ``index``)."""
        raise TypeError(f"{type(self).__name__} must implement finished()")

    def expand(self, beam_width: int) -> StopPolicy:
        """The policy for a batch whose every row is repeated ``beam_width`` times."""
        return self


class StopOnToken(StopPolicy):
    """End at the end-of-sequence symbol ``eos`` (not included in the output ids)."""

    emit_stop_token = False

    def __init__(self, eos: int) -> None:
        self.eos = int(eos)

    def finished(self, tokens, state, index):
        return tokens == self.eos


class StopOnHalt(StopPolicy):
    """End when the halt output h = halt(state) (a probability per row) says so.

    Args:
        halt: state -> (N,) probabilities of stopping after the token just emitted.
        threshold: stop when h > threshold; or ``sample=True``: stop with probability h.
        generator: for sampling, a torch.Generator (determinism).
    """

    def __init__(self, halt: Callable[[Any], Tensor], threshold: float = 0.5, sample: bool = False,
                 generator: torch.Generator | None = None) -> None:
        self.halt = halt
        self.threshold = threshold
        self.sample = sample
        self.generator = generator

    def finished(self, tokens, state, index):
        h = self.halt(state).reshape(-1)
        if not self.sample:
            return h > self.threshold
        u = torch.rand(h.shape, generator=self.generator, device="cpu").to(h.device)
        return u < h


class StopAtLength(StopPolicy):
    """End each row after its predicted length tau (tokens), given as a (B,) tensor."""

    def __init__(self, lengths: Tensor) -> None:
        if lengths.dim() != 1 or bool((lengths < 1).any()):
            raise ValueError(f"lengths must be a 1-D tensor of lengths >= 1. Received: {lengths.tolist()}")
        self.lengths = lengths

    def finished(self, tokens, state, index):
        return (index + 1 >= self.lengths).to(tokens.device)

    def expand(self, beam_width):
        return StopAtLength(self.lengths.repeat_interleave(beam_width))


def as_policy(stop: StopPolicy | int | None) -> StopPolicy | None:
    """An int is an end-of-sequence token."""
    if stop is None or isinstance(stop, StopPolicy):
        return stop
    if isinstance(stop, int):
        return StopOnToken(stop)
    raise ValueError(f"stop must be a StopPolicy, an end-of-sequence token id or None. Received: {stop!r}")
