"""Time-synchronous many-to-many: one label per input step (tagging)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.divergence import sequence_cross_entropy, step_mask
from rnnkit.models.base import InputLayer, Loss, Model, build_recurrent


@dataclass
class TaggerConfig:
    """num_tags: K. Inputs: token ids (vocab_size, embedding_size) or features (input_size).
    rnn: bidirectional by default, so each position sees its whole sentence."""

    num_tags: int
    vocab_size: int | None = None
    input_size: int | None = None
    embedding_size: int = 100
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 128, "bidirectional": True})
    dropout: float = 0.0


class Tagger(Model):
    """y_t = softmax(V [h_t(forward); h_t(backward)] + c) at every step; DIV = sum_t Xent(tag_t, y_t)."""

    Config = TaggerConfig

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__(config)
        c = config
        self.inputs = InputLayer(c.vocab_size, c.input_size, c.embedding_size)
        self.rnn = build_recurrent(self.inputs.size, **c.rnn)
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(self.rnn.output_size, c.num_tags)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h, _ = self.rnn(self.drop(self.inputs(x)), lengths)
        return self.output(self.drop(h))  # (B, T, K)

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        lengths = batch.get("lengths")
        logits = self(batch["input"], lengths)
        pred = logits.argmax(-1)
        real = (batch["target"] != -100) & step_mask(lengths, *pred.shape, pred.device)
        correct = float((pred == batch["target"])[real].sum())
        return Loss(sequence_cross_entropy(logits, batch["target"], lengths), int(real.sum()), None,
                    {"correct": correct})

    def predict(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Tags (B, T); -1 past each length."""
        pred = self(x, lengths).argmax(-1)
        return pred.masked_fill(~step_mask(lengths, *pred.shape, pred.device), -1)
