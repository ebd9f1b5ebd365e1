"""Attention over a memory of encoder outputs (Bahdanau et al. 2015; Luong et al. 2015)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

SCORES = ("dot", "general", "additive")


class Attention(nn.Module):
    """alpha_s = softmax_s score(q, m_s) over the real memory steps; context c = sum_s alpha_s m_s.

    score: "dot" q . m_s (sizes must match); "general" q . W m_s; "additive" (Bahdanau's)
    v . tanh(W_q q + W_m m_s). ``keys`` precomputes the memory's part once per sequence.
    """

    def __init__(self, score: str, query_size: int, memory_size: int, attention_size: int | None = None) -> None:
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}. Received: {score!r}")
        if score == "dot" and query_size != memory_size:
            raise ValueError(f"dot attention needs query_size == memory_size. Received: {query_size} and {memory_size}")
        self.score = score
        size = attention_size or query_size
        if score == "general":
            self.W = nn.Linear(memory_size, query_size, bias=False)
        if score == "additive":
            self.W_m = nn.Linear(memory_size, size, bias=False)
            self.W_q = nn.Linear(query_size, size)
            self.v = nn.Linear(size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        """The memory's part of the score, (B, S, K)."""
        if self.score == "general":
            return self.W(memory)
        if self.score == "additive":
            return self.W_m(memory)
        return memory

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """query (B, Q) — or (B, T, Q), T queries at once —, keys (B, S, K), memory (B, S, M),
        mask (B, S) True on real steps -> (context (B, M), weights (B, S)), or (B, T, M) and
        (B, T, S) for T queries."""
        one = query.dim() == 2
        q = query[:, None] if one else query  # (B, T, Q)
        if self.score == "additive":
            e = self.v(torch.tanh(keys[:, None] + self.W_q(q)[:, :, None]))[..., 0]  # (B, T, S)
        else:
            e = torch.bmm(q, keys.transpose(1, 2))
        alpha = e.masked_fill(~mask[:, None], -torch.inf).softmax(-1)
        context = torch.bmm(alpha, memory)  # (B, T, M)
        return (context[:, 0], alpha[:, 0]) if one else (context, alpha)
