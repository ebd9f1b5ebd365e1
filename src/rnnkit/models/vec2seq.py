"""Single input vector -> sequence (image-captioning style), with the course's length controls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.decode import StopOnHalt, beam_search, generate
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.divergence import sequence_cross_entropy, step_mask
from rnnkit.models.base import Loss, Model, build_recurrent
from rnnkit.models.teacher_forcing import previous_outputs


@dataclass
class ConditionalGeneratorConfig:
    """condition_size: F of the input vector x. vocab_size: V including ``bos`` and ``eos``.
    halt: add a Bernoulli halt output h_t = P(stop after y_t) (trained with cross-entropy:
    1 at each sequence's last token)."""

    condition_size: int
    vocab_size: int
    bos: int = 0
    eos: int = 1
    embedding_size: int = 64
    rnn: dict = field(default_factory=lambda: {"cell": "gru", "hidden_size": 128})
    halt: bool = False
    dropout: float = 0.0


class ConditionalGenerator(Model):
    """h_t = rnn(h_{t-1}, [P y_{t-1}; x]),  y_t = softmax(V h_t + c).

    The cell's input weights on x are the course's R: x^T R is an extra bias on every step's
    pre-activation. Generation starts from ``bos`` and ends by ``eos``, by the halt output,
    or at a given length (see :mod:`rnnkit.decode.stopping`).
    """

    Config = ConditionalGeneratorConfig

    def __init__(self, config: ConditionalGeneratorConfig) -> None:
        super().__init__(config)
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size)
        self.rnn = build_recurrent(c.embedding_size + c.condition_size, **c.rnn)
        if self.rnn.bidirectional:
            raise ValueError("a generator's recurrent stack must be unidirectional")
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(self.rnn.output_size, c.vocab_size)
        self.halt = nn.Linear(self.rnn.output_size, 1) if c.halt else None

    def initial_state(self, condition: Tensor) -> tuple[Any, Tensor]:
        p = self.output.weight
        return self.rnn.initial_state(len(condition), device=p.device, dtype=p.dtype), condition

    def _run(self, tokens: Tensor, state: tuple[Any, Tensor]) -> tuple[Tensor, Tensor, tuple[Any, Tensor]]:
        rnn_state, condition = state
        B, T = tokens.shape
        x = torch.cat([self.embedding(tokens), condition[:, None].expand(B, T, -1)], -1)
        h, rnn_state = self.rnn(self.drop(x), state=rnn_state)
        h = self.drop(h)
        return self.output(h), h, (rnn_state, condition)

    def forward(self, condition: Tensor, tokens: Tensor, targets: Tensor | None = None,
                teacher_forcing: float = 1.0) -> tuple[Tensor, Tensor | None]:
        """(logits (B, T, V), halt logits (B, T) or None) for inputs ``tokens`` (B, T) that start
        with bos; below teacher_forcing=1 step by step, mixing in the model's own argmax."""
        state = self.initial_state(condition)
        if teacher_forcing >= 1.0 or targets is None:
            logits, h, _ = self._run(tokens, state)
        else:
            outs, hs, prev = [], [], tokens[:, 0]
            for t in range(tokens.shape[1]):
                out, h_t, state = self._run(prev[:, None], state)
                outs.append(out[:, 0])
                hs.append(h_t[:, 0])
                if t + 1 < tokens.shape[1]:
                    prev = previous_outputs(tokens[:, t + 1], out[:, 0].argmax(-1), teacher_forcing)
            logits, h = torch.stack(outs, 1), torch.stack(hs, 1)
        return logits, (self.halt(h)[..., 0] if self.halt is not None else None)

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        lengths = batch.get("lengths")
        logits, halt = self(batch["condition"], batch["input"], batch["target"], teacher_forcing)
        value = sequence_cross_entropy(logits, batch["target"], lengths)
        if halt is not None:
            B, T = halt.shape
            real = step_mask(lengths, B, T, halt.device)
            last = torch.zeros_like(halt).scatter_(1, (real.sum(1) - 1)[:, None], 1.0)
            value = value + F.binary_cross_entropy_with_logits(halt[real], last[real])
        count = int(lengths.sum()) if lengths is not None else batch["target"].numel()
        return Loss(value, count)

    def step(self, tokens: Tensor, state: tuple[Any, Tensor]) -> tuple[Tensor, tuple[Any, Tensor]]:
        logits, _, state = self._run(tokens[:, None], state)
        return logits[:, 0].log_softmax(-1), state

    def halt_probability(self, state: tuple[Any, Tensor]) -> Tensor:
        """P(stop after the token just produced), from the top layer's h in ``state``."""
        if self.halt is None:
            raise ValueError("this generator was built without a halt output (config.halt=False)")
        return torch.sigmoid(self.halt(state[0][-1][0]))[:, 0]

    @torch.no_grad()
    def generate(self, condition: Tensor, max_length: int, stop: Any = "eos", beam_width: int = 1,
                 **options: Any) -> list[Hypothesis]:
        """One sequence per condition vector. stop: "eos", "halt", or a StopPolicy (e.g.
        StopAtLength for predicted lengths). beam_width > 1 runs beam search."""
        if stop == "eos":
            stop = self.config.eos
        elif stop == "halt":
            stop = StopOnHalt(self.halt_probability)
        start = torch.full((len(condition),), self.config.bos, dtype=torch.long, device=condition.device)
        state = self.initial_state(condition)
        if beam_width > 1:
            return [h[0] for h in beam_search(self.step, state, start, beam_width, max_length, stop=stop, **options)]
        return generate(self.step, state, start, max_length, stop=stop, **options)
