"""Many-to-one: one class per sequence, read at the last real step (or at every step, weighted)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.divergence import final_step_cross_entropy
from rnnkit.models.base import InputLayer, Loss, Model, build_recurrent, check_labels


@dataclass
class SequenceClassifierConfig:
    """num_classes: K. Inputs as :class:`TaggerConfig`. everywhere / step_weights /
    step_normalization: apply the target at every real step ("uniform" or "linear"
    weights), not only at the last, as a per-sequence mean or the course's sum (see
    :func:`rnnkit.divergence.final_step_cross_entropy`). labels: the K class names (what
    :meth:`SequenceClassifier.classify` reports). word_dropout: in training, a word id becomes
    id 0 (the unknown word) with this probability (:class:`rnnkit.models.base.InputLayer`)."""

    num_classes: int
    vocab_size: int | None = None
    input_size: int | None = None
    embedding_size: int = 100
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 128})
    dropout: float = 0.0
    everywhere: bool = False
    step_weights: str = "uniform"
    step_normalization: str = "mean"
    labels: list | None = None
    word_dropout: float = 0.0


class SequenceClassifier(Model):
    """y_t = softmax(V h_t + c); the class is y_L at the last real step L.

    DIV = Xent(class, y_L), or sum_t w_t Xent(class, y_t) with ``everywhere``: the
    intermediate outputs then learn too, instead of "pretending there is no useful
    information" before the end. Out of training (``model.eval()``) the loss is always the
    final-step divergence, so models trained either way are compared on one measure.

    Bidirectional: y_t = softmax(V [h_t(forward); h_t(backward)] + c), except at the last
    real step, which reads the backward direction where it has seen the whole sequence:
    y_L = softmax(V [h_L(forward); h_1(backward)] + c).
    """

    Config = SequenceClassifierConfig

    def __init__(self, config: SequenceClassifierConfig) -> None:
        super().__init__(config)
        c = config
        self.inputs = InputLayer(c.vocab_size, c.input_size, c.embedding_size, c.word_dropout)
        self.rnn = build_recurrent(self.inputs.size, **c.rnn)
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(self.rnn.output_size, c.num_classes)
        check_labels(c, c.num_classes, "class")

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        h, _ = self.rnn(self.drop(self.inputs(x)), lengths)
        if self.rnn.bidirectional:  # the last step's backward half: h_1(backward), the whole sequence read
            B, T, _ = h.shape
            last = (lengths.to(h.device) - 1) if lengths is not None else torch.full((B,), T - 1, device=h.device)
            rows = torch.arange(B, device=h.device)
            H = self.rnn.hidden_size
            h = h.clone()
            h[rows, last, H:] = h[:, 0, H:]
        return self.output(self.drop(h))  # (B, T, K): a prediction at every step

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        lengths = batch.get("lengths")
        logits = self(batch["input"], lengths)
        value = final_step_cross_entropy(logits, batch["target"], lengths,
                                         everywhere=self.config.everywhere and self.training,
                                         step_weights=self.config.step_weights,
                                         step_normalization=self.config.step_normalization)
        correct = float((self._last(logits, lengths).argmax(-1) == batch["target"]).sum())
        return Loss(value, len(batch["target"]), None, {"correct": correct})

    @staticmethod
    def _last(logits: Tensor, lengths: Tensor | None) -> Tensor:
        if lengths is None:
            return logits[:, -1]
        return logits[torch.arange(len(logits), device=logits.device), lengths.to(logits.device) - 1]

    def final_logits(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """V h_L + c at each sequence's last real step: the sequence's class scores, (B, K)."""
        return self._last(self(x, lengths), lengths)

    def predict(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The class of each sequence, (B,)."""
        return self.final_logits(x, lengths).argmax(-1)

    # -- words in, class probabilities out ----------------------------------------------------

    def batch(self, sentences: Sequence[Sequence[str]]) -> Batch:
        """Word ids in :attr:`vocab` (normalised as the vocabulary says) and lengths."""
        x, lengths = self.encode_sentences(sentences)
        return {"input": x, "lengths": lengths}

    @torch.no_grad()
    def classify(self, sentences: Sequence[Sequence[str]]) -> list[dict[str, float]]:
        """P(class | sentence) of each sentence of words, by class name (:attr:`SequenceClassifierConfig.labels`)."""
        names = self.config.labels or [str(k) for k in range(self.config.num_classes)]
        was_training = self.training
        self.eval()
        b = self.batch(sentences)
        device = self.output.weight.device
        lengths = b["lengths"].to(device)
        probabilities = self.final_logits(b["input"].to(device), lengths).softmax(-1).tolist()
        self.train(was_training)
        return [dict(zip(names, row)) for row in probabilities]
