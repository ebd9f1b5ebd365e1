"""Encoder-decoder: a source sequence to a target sequence of another length."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.cells import LSTMCell
from rnnkit.decode import beam_search, generate
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.divergence import sequence_cross_entropy, step_mask
from rnnkit.models.attention import Attention
from rnnkit.models.base import Loss, Model, build_recurrent
from rnnkit.models.teacher_forcing import previous_outputs


@dataclass
class Seq2SeqConfig:
    """src_vocab, tgt_vocab: vocabulary sizes; bos/eos: the target's start and end symbols.
    encoder: the recurrent stack over the source (bidirectional by default). attention:
    "none" (the context C is the encoder's final state, the fixed-size bottleneck), or the
    score of :class:`Attention` ("dot", "general", "additive")."""

    src_vocab: int
    tgt_vocab: int
    bos: int = 1
    eos: int = 2
    embedding_size: int = 128
    encoder: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 128, "bidirectional": True})
    decoder_hidden: int = 128
    decoder_layers: int = 1
    attention: str = "additive"
    dropout: float = 0.0


class Seq2Seq(Model):
    """Encoder: m_1..m_S = rnn(P_src x); C = [last layer's final forward; backward state].
    Decoder (LSTM cells), with s_0 = tanh(W_C C):

        s_t = lstm(s_{t-1}, [P_tgt y_{t-1}; f_{t-1}])
        without attention: f_t = tanh(W_C C) for every t, y_t = softmax(V s_t)
        with attention:    c_t, alpha_t = attend(s_t, m),  h~_t = tanh(W_c [c_t; s_t]),
                           y_t = softmax(V h~_t),  f_t = h~_t  (input feeding)

    ``step`` runs one decoder step; its state holds the encoder memory, batch first, so beam
    search can reorder it like any state.
    """

    Config = Seq2SeqConfig

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__(config)
        c = config
        self.src_embedding = nn.Embedding(c.src_vocab, c.embedding_size)
        self.tgt_embedding = nn.Embedding(c.tgt_vocab, c.embedding_size)
        self.encoder = build_recurrent(c.embedding_size, **c.encoder)
        M = self.encoder.output_size
        summary = self.encoder.hidden_size * self.encoder.num_directions
        D = c.decoder_hidden
        self.bridge = nn.Linear(summary, D)
        self.decoder = nn.ModuleList(LSTMCell(c.embedding_size + D if i == 0 else D, D) for i in range(c.decoder_layers))
        self.attend = None if c.attention == "none" else Attention(c.attention, D, M)
        self.combine = nn.Linear(M + D, D) if self.attend is not None else None
        self.output = nn.Linear(D, c.tgt_vocab)
        self.drop = nn.Dropout(c.dropout)

    def encode(self, src: Tensor, src_lengths: Tensor | None = None) -> tuple:
        """The decoder's initial state for ``src`` (B, S)."""
        B, S = src.shape
        memory, final = self.encoder(self.drop(self.src_embedding(src)), src_lengths)  # (B, S, M)
        D = self.encoder.num_directions
        summary = torch.cat([final[-D + d][0] for d in range(D)], -1)  # last layer's final h, both directions
        s0 = torch.tanh(self.bridge(summary))  # (B, D)
        cells = tuple((s0, torch.zeros_like(s0)) for _ in self.decoder)
        mask = step_mask(src_lengths, B, S, src.device)
        keys = self.attend.keys(memory) if self.attend is not None else memory
        return cells, s0, memory, keys, mask

    def _decode(self, tokens: Tensor, state: tuple) -> tuple[Tensor, Tensor | None, tuple]:
        cells, feed, memory, keys, mask = state
        x = torch.cat([self.drop(self.tgt_embedding(tokens)), feed], -1)
        new_cells = []
        for cell, s in zip(self.decoder, cells):
            x, s = cell(x, s)
            new_cells.append(s)
        alpha = None
        if self.attend is not None:
            context, alpha = self.attend(x, keys, memory, mask)
            x = feed = torch.tanh(self.combine(torch.cat([context, x], -1)))
        return self.output(self.drop(x)), alpha, (tuple(new_cells), feed, memory, keys, mask)

    def forward(self, src: Tensor, src_lengths: Tensor | None, tgt_in: Tensor,
                teacher_forcing: float = 1.0) -> tuple[Tensor, Tensor | None]:
        """(logits (B, T, V), attention weights (B, T, S) or None) for target inputs tgt_in
        (B, T) starting with bos; below teacher_forcing=1, the model's own argmax is mixed in."""
        state = self.encode(src, src_lengths)
        logits, alphas, prev = [], [], tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            out, alpha, state = self._decode(prev, state)
            logits.append(out)
            alphas.append(alpha)
            if t + 1 < tgt_in.shape[1]:
                prev = previous_outputs(tgt_in[:, t + 1], out.argmax(-1), teacher_forcing)
        return torch.stack(logits, 1), (torch.stack(alphas, 1) if self.attend is not None else None)

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        logits, _ = self(batch["input"], batch.get("lengths"), batch["decoder_input"], teacher_forcing)
        lengths = batch.get("target_lengths")
        count = int(lengths.sum()) if lengths is not None else batch["target"].numel()
        return Loss(sequence_cross_entropy(logits, batch["target"], lengths), count)

    def step(self, tokens: Tensor, state: tuple) -> tuple[Tensor, tuple]:
        logits, _, state = self._decode(tokens, state)
        return logits.log_softmax(-1), state

    @torch.no_grad()
    def translate(self, src: Tensor, src_lengths: Tensor | None = None, max_length: int = 100, beam_width: int = 1,
                  **options: Any) -> list[Hypothesis]:
        """Best output per source row (greedy, or beam search for beam_width > 1), without eos."""
        state = self.encode(src, src_lengths)
        start = torch.full((len(src),), self.config.bos, dtype=torch.long, device=src.device)
        if beam_width > 1:
            return [h[0] for h in beam_search(self.step, state, start, beam_width, max_length, stop=self.config.eos,
                                              **options)]
        return generate(self.step, state, start, max_length, greedy=True, stop=self.config.eos)
