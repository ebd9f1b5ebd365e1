"""Single input vector -> sequence (image-captioning style), with the course's length controls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.decode import StopAtLength, StopOnHalt, beam_search, generate
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.divergence import sequence_cross_entropy, step_mask
from rnnkit.models.base import Loss, Model, build_recurrent
from rnnkit.models.teacher_forcing import previous_outputs


@dataclass
class ConditionalGeneratorConfig:
    """condition_size: F of the input vector x. vocab_size: V including ``bos`` and ``eos``.
    halt: add a Bernoulli halt output h_t = P(stop after y_t) (trained with cross-entropy:
    1 at each sequence's last token). max_length: add a length head P(tau | x) over tau in
    1..max_length (the notes' third way to end a sequence, P(y_1..y_tau) = P(tau)
    P(y_1..y_tau | tau)); the recurrent stack then also reads the steps left, (tau - t) /
    max_length, so the tokens are generated knowing tau."""

    condition_size: int
    vocab_size: int
    bos: int = 0
    eos: int = 1
    embedding_size: int = 64
    rnn: dict = field(default_factory=lambda: {"cell": "gru", "hidden_size": 128})
    halt: bool = False
    dropout: float = 0.0
    max_length: int | None = None


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
        self.rnn = build_recurrent(c.embedding_size + c.condition_size + (c.max_length is not None), **c.rnn)
        if self.rnn.bidirectional:
            raise ValueError("a generator's recurrent stack must be unidirectional")
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(self.rnn.output_size, c.vocab_size)
        self.halt = nn.Linear(self.rnn.output_size, 1) if c.halt else None
        self.length = nn.Linear(c.condition_size, c.max_length) if c.max_length is not None else None

    def initial_state(self, condition: Tensor, tau: Tensor | None = None) -> tuple[Any, Tensor, Tensor | None]:
        """(the stack's state, x, the steps left tau - t when the model has a length head)."""
        p = self.output.weight
        if self.length is not None and tau is None:
            raise ValueError("a generator with a length head needs tau, the length of each sequence")
        left = tau.to(p.dtype) if self.length is not None else None
        return self.rnn.initial_state(len(condition), device=p.device, dtype=p.dtype), condition, left

    def length_log_probs(self, condition: Tensor) -> Tensor:
        """log P(tau | x) (B, max_length): entry k is tau = k + 1."""
        if self.length is None:
            raise ValueError("this generator was built without a length head (config.max_length=None)")
        return self.length(condition).log_softmax(-1)

    def _run(self, tokens: Tensor, state: tuple[Any, Tensor, Tensor | None]) -> tuple[Tensor, Tensor, tuple]:
        rnn_state, condition, left = state
        B, T = tokens.shape
        parts = [self.embedding(tokens), condition[:, None].expand(B, T, -1)]
        if left is not None:  # steps left before this one ends the sequence, scaled
            steps = left[:, None] - torch.arange(T, device=left.device, dtype=left.dtype)[None]
            parts.append((steps / self.config.max_length)[..., None])
            left = left - T
        h, rnn_state = self.rnn(self.drop(torch.cat(parts, -1)), state=rnn_state)
        h = self.drop(h)
        return self.output(h), h, (rnn_state, condition, left)

    def forward(self, condition: Tensor, tokens: Tensor, targets: Tensor | None = None,
                teacher_forcing: float = 1.0, tau: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(logits (B, T, V), halt logits (B, T) or None) for inputs ``tokens`` (B, T) that start
        with bos; below teacher_forcing=1 step by step, mixing in the model's own argmax.
        ``tau``: each sequence's length, for a model with a length head."""
        state = self.initial_state(condition, tau)
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
        B, T = batch["target"].shape
        tau = lengths if lengths is not None else torch.full((B,), T, device=batch["target"].device)
        logits, halt = self(batch["condition"], batch["input"], batch["target"], teacher_forcing,
                            tau if self.length is not None else None)
        value = sequence_cross_entropy(logits, batch["target"], lengths)
        if self.length is not None:
            if int(tau.max()) > self.config.max_length:
                raise ValueError(f"a target has {int(tau.max())} tokens, more than max_length="
                                 f"{self.config.max_length}")
            value = value + F.nll_loss(self.length_log_probs(batch["condition"]), tau - 1)
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

    def halt_probability(self, state: tuple) -> Tensor:
        """P(stop after the token just produced), from the top layer's h in ``state``."""
        if self.halt is None:
            raise ValueError("this generator was built without a halt output (config.halt=False)")
        return torch.sigmoid(self.halt(state[0][-1][0]))[:, 0]

    @torch.no_grad()
    def generate(self, condition: Tensor, max_length: int, stop: Any = "eos", beam_width: int = 1,
                 **options: Any) -> list[Hypothesis]:
        """One sequence per condition vector. stop: "eos", "halt", "length" (draw tau ~ P(tau | x)
        first, the most probable with greedy=True, then generate tau tokens knowing it), or a
        StopPolicy. beam_width > 1 runs beam search."""
        tau = None
        if stop == "eos":
            stop = self.config.eos
        elif stop == "halt":
            stop = StopOnHalt(self.halt_probability)
        elif stop == "length":
            log_p = self.length_log_probs(condition)
            tau = (log_p.argmax(-1) if options.get("greedy") or beam_width > 1 else
                   torch.multinomial(log_p.exp().cpu(), 1, generator=options.get("generator"))[:, 0].to(log_p.device)) + 1
            stop = StopAtLength(tau)
            max_length = max(max_length, int(tau.max()))
        start = torch.full((len(condition),), self.config.bos, dtype=torch.long, device=condition.device)
        state = self.initial_state(condition, tau)
        if beam_width > 1:
            return [h[0] for h in beam_search(self.step, state, start, beam_width, max_length, stop=stop, **options)]
        return generate(self.step, state, start, max_length, stop=stop, **options)
