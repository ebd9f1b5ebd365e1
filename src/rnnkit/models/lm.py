"""Recurrent language model: P(x_{t+1} | x_1..x_t) with a recurrent stack over token embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.decode import generate
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.divergence import sequence_cross_entropy
from rnnkit.models.base import Loss, Model, build_recurrent


@dataclass
class LanguageModelConfig:
    """vocab_size: V. embedding_size: E (the projection P of one-hot tokens). rnn: the
    recurrent stack (see :func:`build_recurrent`). dropout: on the embeddings and on the
    stack's output (Zaremba et al. 2014). tie_weights: the output layer reuses P (Press &
    Wolf 2017). init_range: initialise every weight uniformly in [-r, r] (Zaremba: 0.1)."""

    vocab_size: int
    embedding_size: int = 200
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 200, "num_layers": 2})
    dropout: float = 0.0
    tie_weights: bool = False
    init_range: float | None = None


class LanguageModel(Model):
    """y_t = softmax(V h_t + c),  h_t = stack(P x_t, h_{t-1})  (one-hot x_t, shared P).

    ``forward(tokens (B, T), state)`` gives logits (B, T, V) and the state to carry into the
    next chunk; ``step(tokens (B,), state)`` one token at a time, for generation.
    """

    Config = LanguageModelConfig
    reports_perplexity = True

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__(config)
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size)
        self.rnn = build_recurrent(c.embedding_size, **c.rnn)
        H = self.rnn.output_size
        self.drop = nn.Dropout(c.dropout)
        if c.tie_weights:
            self.projection = nn.Linear(H, c.embedding_size) if H != c.embedding_size else None
            self.decoder = nn.Linear(c.embedding_size, c.vocab_size)
            self.decoder.weight = self.embedding.weight
        else:
            self.projection = None
            self.decoder = nn.Linear(H, c.vocab_size)
        if c.init_range is not None:
            for p in self.parameters():
                nn.init.uniform_(p, -c.init_range, c.init_range)

    def initial_state(self, batch_size: int) -> Any:
        p = self.embedding.weight
        return self.rnn.initial_state(batch_size, device=p.device, dtype=p.dtype)

    def forward(self, tokens: Tensor, state: Any = None, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
        h, state = self.rnn(self.drop(self.embedding(tokens)), lengths, state)  # (B, T, H)
        h = self.drop(h)
        if self.projection is not None:
            h = self.projection(h)
        return self.decoder(h), state  # logits (B, T, V)

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        logits, state = self(batch["input"], state, batch.get("lengths"))
        target = batch["target"]
        lengths = batch.get("lengths")
        count = int(lengths.sum()) if lengths is not None else target.numel()
        return Loss(sequence_cross_entropy(logits, target, lengths), count, state)

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        logits, state = self(tokens[:, None], state)
        return logits[:, 0].log_softmax(-1), state

    @torch.no_grad()
    def generate(self, prompt: Tensor, max_length: int, **options: Any) -> list[Hypothesis]:
        """Continue each row of ``prompt`` (B, P >= 1): the prompt runs once, then one step per
        token. Options as :func:`rnnkit.decode.generate` (greedy, temperature, top_k, top_p,
        stop, generator)."""
        if prompt.dim() != 2 or prompt.shape[1] < 1:
            raise ValueError(f"prompt must be (batch, length >= 1) token ids. Received: {tuple(prompt.shape)}")
        state = None
        if prompt.shape[1] > 1:
            _, state = self(prompt[:, :-1])
        else:
            state = self.initial_state(prompt.shape[0])
        return generate(self.step, state, prompt[:, -1], max_length, **options)
