"""Words represented by their spelling: a character-level bidirectional LSTM (Plank et al. 2016).

A word w = c_1 ... c_n is read by a BiLSTM over character embeddings; its representation is
the forward state after c_n joined to the backward state after c_1,

    s(w) = [h_n(forward); h_1(backward)],

so a word never seen in training still gets a vector from its prefix, suffix and shape
(capitals, digits, hyphens). Each distinct word of a batch is spelled once: the batch holds
the spellings (W, L) of its W distinct words and, for every position, which spelling it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.data.batching import pad
from rnnkit.models.base import build_recurrent

__all__ = ["SpellingConfig", "SpellingEncoder", "Spellings"]

#: character ids 0 and 1: padding and any character outside the alphabet
PAD, UNKNOWN = 0, 1


@dataclass
class SpellingConfig:
    """alphabet: the characters known (every other one is "unknown"). embedding_size: of a
    character. hidden_size: per direction (s(w) has twice as many). max_length: longer words
    are read as their first and last max_length / 2 characters."""

    alphabet: str
    embedding_size: int = 32
    hidden_size: int = 64
    max_length: int = 24


@dataclass
class Spellings:
    """The spellings of a batch: chars (W, L) ids, lengths (W,), index (B, T) row of each position."""

    chars: Tensor
    lengths: Tensor
    index: Tensor


class SpellingEncoder(nn.Module):
    """s(w) = [h_n(forward); h_1(backward)] of a character BiLSTM (module docstring)."""

    def __init__(self, config: SpellingConfig) -> None:
        super().__init__()
        if not config.alphabet or len(set(config.alphabet)) != len(config.alphabet):
            raise ValueError("SpellingConfig.alphabet must be a non-empty string of distinct characters")
        for name in ("embedding_size", "hidden_size", "max_length"):
            value = getattr(config, name)
            if not isinstance(value, int) or value < (2 if name == "max_length" else 1):
                raise ValueError(f"SpellingConfig.{name} must be an integer >= 1 (max_length >= 2). Received: {value!r}")
        self.config = config
        self.ids = {c: i + 2 for i, c in enumerate(config.alphabet)}
        self.embedding = nn.Embedding(len(config.alphabet) + 2, config.embedding_size, padding_idx=PAD)
        self.rnn = build_recurrent(config.embedding_size, "lstm", config.hidden_size, bidirectional=True)
        self.size = 2 * config.hidden_size

    def spell(self, sentences: Sequence[Sequence[str]]) -> Spellings:
        """The spellings of the distinct words of ``sentences`` (padded positions point at row 0)."""
        rows: dict[str, int] = {}
        index = torch.zeros(len(sentences), max(len(s) for s in sentences), dtype=torch.long)
        for b, words in enumerate(sentences):
            for t, w in enumerate(words):
                index[b, t] = rows.setdefault(w, len(rows))
        half = self.config.max_length // 2
        chars, lengths = pad([torch.tensor([self.ids.get(c, UNKNOWN) for c in
                                            (w if len(w) <= 2 * half else w[:half] + w[-half:])] or [UNKNOWN])
                              for w in rows], PAD)
        return Spellings(chars, lengths, index)

    def forward(self, spellings: Spellings) -> Tensor:
        """(B, T, 2H): s(w) of the word at every position."""
        _, finals = self.rnn(self.embedding(spellings.chars), spellings.lengths)
        (forward_h, _), (backward_h, _) = finals
        return torch.cat([forward_h, backward_h], -1)[spellings.index]
