"""Non-recurrent baselines: the fixed-window neural language model and a time-delay network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.divergence import sequence_cross_entropy
from rnnkit.models.base import Loss, Model


class TDNN(nn.Module):
    """Time-delay neural network: a stack of 1-D convolutions over time, batch first.

    h^l_t = act(sum_{k<K} W^l_k h^{l-1}_{t-k} + b^l)   (causal: only the past K steps), or a
    window centred on t. Each output sees (K-1)*L+1 steps: short-time dependence only.

    Args: input_size, hidden_size, context (K), num_layers, causal, activation ("tanh"|"relu").
    """

    def __init__(self, input_size: int, hidden_size: int, context: int = 3, num_layers: int = 2,
                 causal: bool = True, activation: str = "tanh") -> None:
        super().__init__()
        if context < 1 or num_layers < 1:
            raise ValueError(f"context and num_layers must be >= 1. Received: {context}, {num_layers}")
        self.context, self.causal = context, causal
        self.act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
        self.convs = nn.ModuleList(nn.Conv1d(input_size if i == 0 else hidden_size, hidden_size, context)
                                   for i in range(num_layers))

    def forward(self, x: Tensor) -> Tensor:
        h = x.transpose(1, 2)  # (B, F, T)
        left = self.context - 1 if self.causal else (self.context - 1) // 2
        for conv in self.convs:
            h = self.act(conv(F.pad(h, (left, self.context - 1 - left))))
        return h.transpose(1, 2)  # (B, T, H)


@dataclass
class NeuralProbabilisticLMConfig:
    """vocab_size: V; context: N previous tokens; embedding_size, hidden_size; direct: add
    Bengio's direct input-to-output connections; bos: the token that pads before the start."""

    vocab_size: int
    context: int = 4
    embedding_size: int = 60
    hidden_size: int = 100
    direct: bool = False
    bos: int = 0


class NeuralProbabilisticLM(Model):
    """Bengio et al. (2003): y_t = softmax(b + W x + U tanh(d + H x)), x = [P w_{t-N+1}; ...; P w_t].

    A fixed window of N tokens: the recurrent LM's non-recurrent baseline. Trains on the same
    token streams; the "state" it carries between chunks is just the last N-1 tokens.
    """

    Config = NeuralProbabilisticLMConfig
    reports_perplexity = True

    def __init__(self, config: NeuralProbabilisticLMConfig) -> None:
        super().__init__(config)
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size)
        self.hidden = nn.Linear(c.context * c.embedding_size, c.hidden_size)  # H, d
        self.output = nn.Linear(c.hidden_size, c.vocab_size)  # U, b
        self.direct = nn.Linear(c.context * c.embedding_size, c.vocab_size, bias=False) if c.direct else None

    def initial_state(self, batch_size: int) -> Tensor:
        return torch.full((batch_size, self.config.context - 1), self.config.bos, dtype=torch.long,
                          device=self.embedding.weight.device)

    def forward(self, tokens: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        B, T = tokens.shape
        N = self.config.context
        past = self.initial_state(B) if state is None else state
        padded = torch.cat([past, tokens], 1)  # (B, N-1+T)
        windows = padded.unfold(1, N, 1)  # (B, T, N): tokens t-N+1..t
        x = self.embedding(windows).flatten(2)  # (B, T, N*E)
        logits = self.output(torch.tanh(self.hidden(x)))
        if self.direct is not None:
            logits = logits + self.direct(x)
        return logits, padded[:, padded.shape[1] - (N - 1):]

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        logits, state = self(batch["input"], state)
        return Loss(sequence_cross_entropy(logits, batch["target"]), batch["target"].numel(), state)

    def step(self, tokens: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        logits, state = self(tokens[:, None], state)
        return logits[:, 0].log_softmax(-1), state
