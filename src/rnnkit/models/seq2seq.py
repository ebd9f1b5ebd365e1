"""Encoder-decoder: a source sequence to a target sequence of another length."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnkit.data.batching import Batch
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
    "none" (the context C is the encoder's final state, the fixed-size bottleneck, fed at
    every step), or the score of :class:`Attention` ("dot", "general", "additive").
    input_feeding: with attention, the previous attentional state h~_{t-1} is part of the
    decoder's input (Luong et al. 2015); without it the decoder's recurrence does not depend
    on the attention, and teacher-forced training runs it over the whole target at once (the
    native LSTM kernel). dropout: on embeddings, between decoder layers and before the output
    layer. label_smoothing: of the training divergence (the dev loss is plain cross-entropy).
    tie_embeddings: the output layer V shares the target embedding's weights (needs
    embedding_size == decoder_hidden)."""

    src_vocab: int
    tgt_vocab: int
    bos: int = 1
    eos: int = 2
    embedding_size: int = 128
    encoder: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 128, "bidirectional": True})
    decoder_hidden: int = 128
    decoder_layers: int = 1
    attention: str = "additive"
    input_feeding: bool = True
    dropout: float = 0.0
    label_smoothing: float = 0.0
    tie_embeddings: bool = False


class Seq2Seq(Model):
    """Encoder: m_1..m_S = rnn(P_src x); C = [last layer's final forward; backward state].
    Decoder (an LSTM stack), with s_0 = tanh(W_C C):

        s_t = lstm(s_{t-1}, [P_tgt y_{t-1}; f_{t-1}])
        without attention: f_t = tanh(W_C C) for every t, y_t = softmax(V s_t)
        with attention:    c_t, alpha_t = attend(s_t, m),  h~_t = tanh(W_c [c_t; s_t]),
                           y_t = softmax(V h~_t),  f_t = h~_t  (input feeding; f_0 = s_0),
                           or no f at all without input feeding

    ``step`` runs one decoder step; its state holds the encoder memory, batch first, so beam
    search can reorder it like any state.
    """

    Config = Seq2SeqConfig
    reports_perplexity = True

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
        self.attend = None if c.attention == "none" else Attention(c.attention, D, M)
        self.feeds = self.attend is None or c.input_feeding  # f_{t-1} is part of the decoder's input
        self.decoder = build_recurrent(c.embedding_size + (D if self.feeds else 0), "lstm", D, c.decoder_layers,
                                       dropout=c.dropout)
        self.combine = nn.Linear(M + D, D) if self.attend is not None else None
        self.output = nn.Linear(D, c.tgt_vocab)
        if c.tie_embeddings:
            if c.embedding_size != D:
                raise ValueError("tie_embeddings needs embedding_size == decoder_hidden. "
                                 f"Received: {c.embedding_size} and {D}")
            self.output.weight = self.tgt_embedding.weight
        self.drop = nn.Dropout(c.dropout)

    def encode(self, src: Tensor, src_lengths: Tensor | None = None) -> tuple:
        """The decoder's initial state for ``src`` (B, S)."""
        B, S = src.shape
        memory, final = self.encoder(self.drop(self.src_embedding(src)), src_lengths)  # (B, S, M)
        D = self.encoder.num_directions
        summary = torch.cat([final[-D + d][0] for d in range(D)], -1)  # last layer's final h, both directions
        s0 = torch.tanh(self.bridge(summary))  # (B, D)
        cells = tuple((s0, torch.zeros_like(s0)) for _ in range(self.config.decoder_layers))
        mask = step_mask(src_lengths, B, S, src.device)
        keys = self.attend.keys(memory) if self.attend is not None else memory
        return cells, (s0 if self.feeds else None), memory, keys, mask

    def _readout(self, s: Tensor, memory: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None]:
        """(h~, alpha) of decoder states s (B, D) or (B, T, D): the attentional state, or s itself."""
        if self.attend is None:
            return s, None
        context, alpha = self.attend(s, keys, memory, mask)
        return torch.tanh(self.combine(torch.cat([context, s], -1))), alpha

    def _decode(self, tokens: Tensor, state: tuple) -> tuple[Tensor, Tensor | None, tuple]:
        """One decoder step: the stack's cells, one at a time (the stack's own weights)."""
        cells, feed, memory, keys, mask = state
        x = self.drop(self.tgt_embedding(tokens))
        if feed is not None:
            x = torch.cat([x, feed], -1)
        new_cells = []
        for i, (layer, s) in enumerate(zip(self.decoder.layers, cells)):
            if i > 0:
                x = F.dropout(x, self.decoder.dropout, self.training)
            x, s = layer[0](x, s)
            new_cells.append(s)
        x, alpha = self._readout(x, memory, keys, mask)
        if feed is not None and self.attend is not None:
            feed = x
        return self.output(self.drop(x)), alpha, (tuple(new_cells), feed, memory, keys, mask)

    def _decode_all(self, tgt_in: Tensor, state: tuple) -> tuple[Tensor, Tensor | None]:
        """Every step of a teacher-forced target at once (possible when f does not depend on
        the outputs): the whole stack over the sequence, then the attention for all steps."""
        cells, feed, memory, keys, mask = state
        x = self.drop(self.tgt_embedding(tgt_in))
        if feed is not None:
            x = torch.cat([x, feed[:, None].expand(-1, x.shape[1], -1)], -1)
        s, _ = self.decoder(x, None, list(cells))
        h, alpha = self._readout(s, memory, keys, mask)
        return self.output(self.drop(h)), alpha

    def forward(self, src: Tensor, src_lengths: Tensor | None, tgt_in: Tensor,
                teacher_forcing: float = 1.0) -> tuple[Tensor, Tensor | None]:
        """(logits (B, T, V), attention weights (B, T, S) or None) for target inputs tgt_in
        (B, T) starting with bos; below teacher_forcing=1, the model's own argmax is mixed in."""
        state = self.encode(src, src_lengths)
        if teacher_forcing >= 1.0 and not (self.attend is not None and self.feeds):
            return self._decode_all(tgt_in, state)
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
        smoothing = self.config.label_smoothing if self.training else 0.0
        return Loss(sequence_cross_entropy(logits, batch["target"], lengths, label_smoothing=smoothing), count)

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
