"""Time-synchronous many-to-many: one label per input step (tagging)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.divergence import sequence_cross_entropy, step_mask
from rnnkit.models.base import InputLayer, Loss, Model, build_recurrent, check_labels
from rnnkit.models.spelling import SpellingConfig, SpellingEncoder, Spellings


@dataclass
class TaggerConfig:
    """num_tags: K. Inputs: token ids (vocab_size, embedding_size) or features (input_size).
    rnn: bidirectional by default, so each position sees its whole sentence.
    labels: the K tag names (what :meth:`Tagger.tag` returns).
    spelling: a :class:`rnnkit.models.spelling.SpellingConfig` as a dict: each word is also
    read by a character BiLSTM, so unseen words are tagged from their spelling (token inputs).
    word_dropout: in training, a word id becomes id 0 (the unknown word) with this
    probability (:class:`rnnkit.models.base.InputLayer`)."""

    num_tags: int
    vocab_size: int | None = None
    input_size: int | None = None
    embedding_size: int = 100
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 128, "bidirectional": True})
    dropout: float = 0.0
    labels: list | None = None
    spelling: dict | None = None
    word_dropout: float = 0.0


class Tagger(Model):
    """x_t = [e(w_t); s(w_t)] (embedding, and spelling when configured);
    y_t = softmax(V [h_t(forward); h_t(backward)] + c) at every step; DIV = sum_t Xent(tag_t, y_t)."""

    Config = TaggerConfig

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__(config)
        c = config
        check_labels(c, c.num_tags, "tag")
        if c.spelling is not None and c.vocab_size is None:
            raise ValueError("TaggerConfig.spelling needs word inputs (vocab_size), not feature vectors")
        self.inputs = InputLayer(c.vocab_size, c.input_size, c.embedding_size, c.word_dropout)
        self.spelling = SpellingEncoder(SpellingConfig(**c.spelling)) if c.spelling is not None else None
        width = self.inputs.size + (self.spelling.size if self.spelling is not None else 0)
        self.rnn = build_recurrent(width, **c.rnn)
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(self.rnn.output_size, c.num_tags)

    def forward(self, x: Tensor, lengths: Tensor | None = None, spellings: Spellings | None = None) -> Tensor:
        if self.spelling is not None and spellings is None:
            raise ValueError("this Tagger reads spellings too: give spellings (see Tagger.batch)")
        e = self.inputs(x)
        if self.spelling is not None:
            e = torch.cat([e, self.spelling(spellings)], -1)
        h, _ = self.rnn(self.drop(e), lengths)
        return self.output(self.drop(h))  # (B, T, K)

    @staticmethod
    def _spellings(batch: Batch) -> Spellings | None:
        if "spellings" not in batch:
            return None
        return Spellings(batch["spellings"], batch["spelling_lengths"], batch["spelling_index"])

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        lengths = batch.get("lengths")
        logits = self(batch["input"], lengths, self._spellings(batch))
        pred = logits.argmax(-1)
        real = (batch["target"] != -100) & step_mask(lengths, *pred.shape, pred.device)
        correct = float((pred == batch["target"])[real].sum())
        return Loss(sequence_cross_entropy(logits, batch["target"], lengths), int(real.sum()), None,
                    {"correct": correct})

    def predict(self, x: Tensor, lengths: Tensor | None = None, spellings: Spellings | None = None) -> Tensor:
        """Tags (B, T); -1 past each length."""
        pred = self(x, lengths, spellings).argmax(-1)
        return pred.masked_fill(~step_mask(lengths, *pred.shape, pred.device), -1)

    # -- words in, tag names out ------------------------------------------------------------

    def batch(self, sentences: Sequence[Sequence[str]]) -> Batch:
        """The model's inputs for sentences of words: ids in :attr:`vocab` (normalised as the
        vocabulary says), lengths, and the spellings when the model reads them."""
        x, lengths = self.encode_sentences(sentences)
        out: Batch = {"input": x, "lengths": lengths}
        if self.spelling is not None:
            s = self.spelling.spell(sentences)
            out.update(spellings=s.chars, spelling_lengths=s.lengths, spelling_index=s.index)
        return out

    @torch.no_grad()
    def tag(self, sentences: Sequence[Sequence[str]], batch_size: int = 64) -> list[list[str]]:
        """The tag names of every word of ``sentences`` (the model's :attr:`TaggerConfig.labels`)."""
        if self.config.labels is None:
            raise ValueError("this Tagger has no tag names (TaggerConfig.labels)")
        was_training = self.training
        self.eval()
        device = self.output.weight.device
        out = []
        for i in range(0, len(sentences), batch_size):
            part = sentences[i : i + batch_size]
            b = {k: v.to(device) for k, v in self.batch(part).items()}
            pred = self.predict(b["input"], b["lengths"], self._spellings(b)).tolist()
            out += [[self.config.labels[k] for k in row[: len(s)]] for row, s in zip(pred, part)]
        self.train(was_training)
        return out
