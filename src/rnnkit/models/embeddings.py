"""Word embeddings: the projection P of one-hot words, learnt by word2vec (Mikolov et al. 2013).

Every word w has an input vector v_w (the rows of P, what other models use) and an output
vector u_w. Trained with negative sampling: for a positive pair (a word and what should
predict it) and K words drawn from the unigram distribution to the 3/4 power,

    DIV = -log sigma(u_o . h) - sum_k log sigma(-u_k . h)

* skip-gram: h = v_c, the centre word, and o each word of its window;
* CBOW (the soft bag of words): h = mean of the window's v, and o the centre word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.models.base import Loss, Model

MODES = ("skipgram", "cbow")


@dataclass
class WordEmbeddingsConfig:
    """vocab_size: V. embedding_size: E. mode: "skipgram" or "cbow". negatives: K noise words
    per positive pair."""

    vocab_size: int
    embedding_size: int = 100
    mode: str = "skipgram"
    negatives: int = 5


class WordEmbeddings(Model):
    """Skip-gram or CBOW with negative sampling (see the module docstring). Batches hold
    ``input`` (B,) centre ids and ``target`` (B, 2W) window ids, -1 where the window leaves the
    text. ``set_noise(counts)`` gives the unigram counts the negatives are drawn from."""

    Config = WordEmbeddingsConfig

    def __init__(self, config: WordEmbeddingsConfig) -> None:
        super().__init__(config)
        if config.mode not in MODES:
            raise ValueError(f"WordEmbeddingsConfig.mode must be one of {MODES}. Received: {config.mode!r}")
        if config.negatives < 1:
            raise ValueError(f"WordEmbeddingsConfig.negatives must be >= 1. Received: {config.negatives}")
        V, E = config.vocab_size, config.embedding_size
        self.input = nn.Embedding(V, E)  # v: the projection P
        self.output = nn.Embedding(V, E)  # u
        nn.init.uniform_(self.input.weight, -0.5 / E, 0.5 / E)
        nn.init.zeros_(self.output.weight)
        self.register_buffer("noise", torch.ones(V))  # unigram^0.75, unnormalised

    def set_noise(self, counts: Tensor) -> None:
        """The noise distribution: word counts to the power 3/4 (Mikolov et al. 2013)."""
        self.noise.copy_(counts.to(self.noise).pow(0.75))

    def _negative_loss(self, h: Tensor, positive: Tensor, valid: Tensor) -> Tensor:
        """Mean over valid pairs of -log sigma(u_o . h) - sum_k log sigma(-u_k . h); h (..., E), positive (...)."""
        K = self.config.negatives
        noise = torch.multinomial(self.noise, positive.numel() * K, replacement=True).view(*positive.shape, K)
        pos = (self.output(positive.clamp(min=0)) * h).sum(-1)
        neg = torch.einsum("...ke,...e->...k", self.output(noise), h)
        losses = -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)
        return losses[valid].mean() if bool(valid.any()) else losses.sum() * 0.0

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        centre, window = batch["input"], batch["target"]
        valid = window >= 0
        if self.config.mode == "skipgram":
            h = self.input(centre)[:, None].expand(-1, window.shape[1], -1)
            value = self._negative_loss(h, window, valid)
            count = int(valid.sum())
        else:
            v = self.input(window.clamp(min=0)) * valid[..., None]
            h = v.sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
            has_context = valid.any(1)
            value = self._negative_loss(h, centre, has_context)
            count = int(has_context.sum())
        return Loss(value, max(count, 1))

    @torch.no_grad()
    def nearest(self, ids: Tensor, k: int = 5) -> Tensor:
        """(N, k) ids of the k words whose input vectors have the highest cosine with each of ``ids`` (not itself)."""
        v = F.normalize(self.input.weight, dim=1)
        sims = v[ids] @ v.T
        sims[torch.arange(len(ids)), ids] = -2.0
        return sims.topk(k, dim=1).indices

    @torch.no_grad()
    def analogy(self, a: Tensor, b: Tensor, c: Tensor) -> Tensor:
        """For each a : b :: c : ?, the word whose vector is nearest (cosine) to v_b - v_a + v_c,
        a, b and c excluded (Mikolov et al.'s 3CosAdd)."""
        v = F.normalize(self.input.weight, dim=1)
        sims = F.normalize(v[b] - v[a] + v[c], dim=1) @ v.T
        for ids in (a, b, c):
            sims[torch.arange(len(ids)), ids] = -2.0
        return sims.argmax(1)


def copy_vectors(vectors: Tensor, source_tokens: list[str], embedding: nn.Embedding, target_tokens: list[str]) -> int:
    """Copy the row of every token the two vocabularies share from ``vectors`` into ``embedding``
    (any model's, e.g. a LanguageModel's); returns how many rows were copied. The sizes must match."""
    if vectors.shape[1] != embedding.embedding_dim:
        raise ValueError(f"the vectors have {vectors.shape[1]} dimensions but the embedding has "
                         f"{embedding.embedding_dim}")
    index = {t: i for i, t in enumerate(source_tokens)}
    pairs = [(j, index[t]) for j, t in enumerate(target_tokens) if t in index]
    if pairs:
        to, frm = (torch.tensor(x) for x in zip(*pairs))
        with torch.no_grad():
            embedding.weight[to] = vectors[frm].to(embedding.weight)
    return len(pairs)
