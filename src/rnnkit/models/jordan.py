"""Output-to-hidden recurrence (a Jordan network): the only memory is the previous output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.cells import ACTIVATIONS
from rnnkit.divergence import sequence_cross_entropy
from rnnkit.models.base import Loss, Model
from rnnkit.models.teacher_forcing import previous_outputs


@dataclass
class OutputRecurrentNetConfig:
    input_size: int
    num_classes: int
    hidden_size: int = 64
    activation: str = "tanh"


class OutputRecurrentNet(Model):
    """h_t = act(b + U x_t + R y_{t-1}),  y_t = softmax(c + V h_t),  y_0 = a start symbol.

    No hidden-to-hidden recurrence: under teacher forcing y_{t-1} is the known target, so
    every step is computed at once (no loop over time, no BPTT through the outputs). At
    inference the network runs closed-loop on its own previous output (the argmax); with a
    teacher-forcing probability below 1 training mixes the two (scheduled sampling).
    """

    Config = OutputRecurrentNetConfig

    def __init__(self, config: OutputRecurrentNetConfig) -> None:
        super().__init__(config)
        c = config
        if c.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}. Received: {c.activation!r}")
        self.U = nn.Linear(c.input_size, c.hidden_size)  # U, b
        self.R = nn.Embedding(c.num_classes + 1, c.hidden_size)  # R y for one-hot y; row C is y_0
        self.V = nn.Linear(c.hidden_size, c.num_classes)  # V, c
        self.act = ACTIVATIONS[c.activation]
        self.start = c.num_classes

    def step(self, x_t: Tensor, y_prev: Tensor) -> Tensor:
        """Logits of one step (B, C) from x_t (B, F) and the previous output's id (B,)."""
        return self.V(self.act(self.U(x_t) + self.R(y_prev)))

    def forward(self, x: Tensor, targets: Tensor | None = None, teacher_forcing: float = 1.0) -> Tensor:
        """Logits (B, T, C). With targets and teacher_forcing=1, all steps in parallel;
        otherwise step by step, feeding back the argmax (mixed with targets when given)."""
        B, T, _ = x.shape
        start = torch.full((B, 1), self.start, dtype=torch.long, device=x.device)
        if targets is not None:
            targets = targets.clamp(min=0)  # ignored positions (-100) feed class 0: they are never scored
        if targets is not None and teacher_forcing >= 1.0:
            y_prev = torch.cat([start, targets[:, :-1]], 1)  # (B, T)
            return self.V(self.act(self.U(x) + self.R(y_prev)))
        y_prev = start[:, 0]
        logits = []
        for t in range(T):
            out = self.step(x[:, t], y_prev)
            logits.append(out)
            predicted = out.argmax(-1)
            y_prev = predicted if targets is None else previous_outputs(targets[:, t], predicted, teacher_forcing)
        return torch.stack(logits, 1)

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        lengths = batch.get("lengths")
        logits = self(batch["input"], batch["target"], teacher_forcing)
        count = int(lengths.sum()) if lengths is not None else batch["target"].numel()
        return Loss(sequence_cross_entropy(logits, batch["target"], lengths), count)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Closed-loop outputs (B, T)."""
        return self(x).argmax(-1)
