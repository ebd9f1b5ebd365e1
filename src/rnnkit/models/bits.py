"""Binary vector outputs on the answer steps: y_t = sigma(V h_t + c), one independent bit per unit.

The algorithmic tasks (copy, recall) read an input sequence, then answer in its last S steps:
a batch holds ``input`` (B, T, F) and ``target`` (B, S, D) bits, the desired outputs of the
last S steps, and

    DIV = mean over b, the last S steps t and units d of BCE(target_{b,t,d}, y_{b,t,d}).

:class:`BitOutputs` gives any model whose ``forward(x)`` returns logits (B, T, D) that loss and
the count of wrong bits; :class:`RecurrentBits` is the plain recurrent net with it (the
baseline the neural Turing machine is compared with).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.checks import require
from rnnkit.data.batching import Batch
from rnnkit.models.base import Loss, Model, build_recurrent

__all__ = ["BitOutputs", "RecurrentBits", "RecurrentBitsConfig"]


class BitOutputs:
    """The loss and predictions of a model of bit outputs (see the module docstring)."""

    def answer_logits(self, batch: Batch) -> Tensor:
        """The logits of the answer steps, (B, S, D), checked against the target's shape."""
        x, target = batch["input"], batch["target"]
        require(target.dim() == 3 and target.shape[0] == x.shape[0] and target.shape[1] <= x.shape[1],
                "target", f"(batch {x.shape[0]}, answer steps <= {x.shape[1]}, bits)", tuple(target.shape))
        logits = self(x)
        require(target.shape[2] == logits.shape[2], "target", f"{logits.shape[2]} bits per step",
                target.shape[2])
        return logits[:, x.shape[1] - target.shape[1]:]

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        logits, target = self.answer_logits(batch), batch["target"]
        value = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        correct = float(((logits > 0) == (target > 0.5)).sum())
        return Loss(value, target.numel(), None, {"correct": correct})

    @torch.no_grad()
    def bits_wrong(self, batch: Batch) -> Tensor:
        """(B,): how many answer bits each sequence gets wrong (outputs thresholded at 1/2)."""
        return ((self.answer_logits(batch) > 0) != (batch["target"] > 0.5)).flatten(1).sum(1)


@dataclass
class RecurrentBitsConfig:
    """input_size, output_size: bits in and out per step. rnn: the recurrent stack (unidirectional)."""

    input_size: int
    output_size: int
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 128})


class RecurrentBits(BitOutputs, Model):
    """y_t = sigma(V h_t + c) over a recurrent stack."""

    Config = RecurrentBitsConfig

    def __init__(self, config: RecurrentBitsConfig) -> None:
        super().__init__(config)
        self.rnn = build_recurrent(config.input_size, **config.rnn)
        self.output = nn.Linear(self.rnn.output_size, config.output_size)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(x)
        return self.output(h)
