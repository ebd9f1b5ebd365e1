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
    """Base of the stop policies. ``emit_stop_token`` tells decoders to keep the token;
    ``needs_state``: :meth:`finished` reads the state (else decoders may pass None)."""

    emit_stop_token = True
    needs_state = True

    def finished(self, tokens: Tensor, state: Any, index: int) -> Tensor:
        """Bool (N,): rows whose sequence ends with ``tokens`` (emitted at position ``index``)."""
        raise TypeError(f"{type(self).__name__} must implement finished()")

    def expand(self, beam_width: int) -> StopPolicy:
        """The policy for a batch whose every row is repeated ``beam_width`` times."""
        return self

    def check_classes(self, classes: int) -> None:
        """Raise a ValueError if the policy cannot work with a step of ``classes`` outputs."""


class StopOnToken(StopPolicy):
    """End at the end-of-sequence symbol ``eos`` (not included in the output ids)."""

    emit_stop_token = False
    needs_state = False

    def __init__(self, eos: int) -> None:
        if not isinstance(eos, int) or isinstance(eos, bool) or eos < 0:
            raise ValueError(f"eos must be a token id >= 0. Received: {eos!r}")
        self.eos = eos

    def finished(self, tokens, state, index):
        return tokens == self.eos

    def check_classes(self, classes: int) -> None:
        if self.eos >= classes:
            raise ValueError(f"StopOnToken({self.eos}): the step gives {classes} classes, so the end token "
                             f"{self.eos} can never be emitted")


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

    needs_state = False

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


def check_step_output(log_probs: Any, step_index: int, policy: StopPolicy | None) -> None:
    """What a decoder checks of ``step``'s output: (N, C) float log-probabilities without NaN.
    On the first step (once per call) also that each row is normalised (logsumexp = 0, so not
    probabilities and not logits) and that the stop policy fits C classes."""
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 2 or not log_probs.dtype.is_floating_point:
        got = f"{log_probs.dtype} of shape {tuple(log_probs.shape)}" if isinstance(log_probs, Tensor) else type(log_probs).__name__
        raise ValueError(f"step must return (log_probs (N, C) float, state). Received: {got}")
    if bool(torch.isnan(log_probs).any()):
        rows = torch.nonzero(torch.isnan(log_probs).any(1)).flatten().tolist()
        raise ValueError(f"step returned NaN log-probabilities at step {step_index}, rows {rows[:10]}")
    if step_index == 0:
        total = torch.logsumexp(log_probs.double(), dim=1)
        if bool(((total.abs() > 1e-3) & torch.isfinite(total)).any()) or bool(torch.isneginf(total).any()):
            worst = float(total[torch.argmax(total.abs())])
            raise ValueError("step must return log-probabilities (each row's logsumexp = 0; apply log_softmax to "
                             f"logits, log to probabilities). Received: a row with logsumexp {worst:.4g}")
        if policy is not None:
            policy.check_classes(log_probs.shape[1])
