"""Time-synchronous real-valued outputs: a vector y_t per input step (forecasting, trajectories)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.divergence import sequence_gaussian_nll, sequence_squared_error
from rnnkit.models.base import Loss, Model, build_recurrent


@dataclass
class SequenceRegressorConfig:
    """input_size: F of x_t. output_size: D of y_t. gaussian: also predict log sigma_t^2 and
    train by the Gaussian negative log-likelihood (else squared error). rnn: the stack
    (unidirectional by default, so y_t depends on x_1..x_t only: forecasting)."""

    input_size: int
    output_size: int
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 64})
    gaussian: bool = False
    dropout: float = 0.0


class SequenceRegressor(Model):
    """mu_t = V h_t + c (and log sigma_t^2 = V' h_t + c' with ``gaussian``); DIV = sum_t
    ||y_t - mu_t||^2, or the Gaussian negative log-likelihood. The state carries across
    chunks, so a long series trains by truncated BPTT like a language model."""

    Config = SequenceRegressorConfig

    def __init__(self, config: SequenceRegressorConfig) -> None:
        super().__init__(config)
        c = config
        self.rnn = build_recurrent(c.input_size, **c.rnn)
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(self.rnn.output_size, c.output_size * (2 if c.gaussian else 1))

    def forward(self, x: Tensor, lengths: Tensor | None = None, state: Any = None) -> tuple[Tensor, Tensor | None, Any]:
        """(mean (B, T, D), log variance (B, T, D) or None, final state)."""
        h, state = self.rnn(x, lengths, state)
        out = self.output(self.drop(h))
        if self.config.gaussian:
            mean, log_var = out.chunk(2, -1)
            return mean, log_var, state
        return out, None, state

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        lengths = batch.get("lengths")
        mean, log_var, state = self(batch["input"], lengths, state)
        target = batch["target"]
        if log_var is None:
            value = sequence_squared_error(mean, target, lengths)
        else:
            value = sequence_gaussian_nll(mean, log_var, target, lengths)
        count = int(lengths.sum()) if lengths is not None else target.shape[0] * target.shape[1]
        with torch.no_grad():
            error = float(sequence_squared_error(mean, target, lengths, reduction="sum"))
        return Loss(value, count, state, {"squared_error": error})

    @torch.no_grad()
    def predict(self, x: Tensor, lengths: Tensor | None = None, state: Any = None) -> tuple[Tensor, Tensor | None]:
        """(mean, standard deviation or None), each (B, T, D)."""
        mean, log_var, _ = self(x, lengths, state)
        return mean, None if log_var is None else (0.5 * log_var).exp()
