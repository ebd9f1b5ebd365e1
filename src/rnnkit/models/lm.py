"""Recurrent language model: P(x_{t+1} | x_1..x_t) with a recurrent stack over token embeddings."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

import torch
from torch import Tensor, nn

from rnnkit import generation_loop
from rnnkit.data.batching import Batch
from rnnkit.decode import generate
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.dispatch import PathChoice
from rnnkit.divergence import sequence_cross_entropy
from rnnkit.models.base import Loss, Model, build_recurrent


@dataclass
class LanguageModelConfig:
    """vocab_size: V. embedding_size: E (the projection P of one-hot tokens). rnn: the
    recurrent stack (see :func:`build_recurrent`). dropout: on the embeddings and on the
    stack's output (Zaremba et al. 2014). tie_weights: the output layer reuses P (Press &
    Wolf 2017). init_range: initialise every weight uniformly in [-r, r] (Zaremba: 0.1)."""

    vocab_size: int
    embedding_size: int = 200
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 200, "num_layers": 2})
    dropout: float = 0.0
    tie_weights: bool = False
    init_range: float | None = None


class LanguageModel(Model):
    """y_t = softmax(V h_t + c),  h_t = stack(P x_t, h_{t-1})  (one-hot x_t, shared P).

    ``forward(tokens (B, T), state)`` gives logits (B, T, V) and the state to carry into the
    next chunk; ``step(tokens (B,), state)`` one token at a time, for generation;
    ``generate("text", n)`` continues a text with the model's vocabulary (``model.vocab``).
    """

    Config = LanguageModelConfig
    reports_perplexity = True

    def __init__(self, config: LanguageModelConfig) -> None:
        super().__init__(config)
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_size)
        self.rnn = build_recurrent(c.embedding_size, **c.rnn)
        H = self.rnn.output_size
        self.drop = nn.Dropout(c.dropout)
        if c.tie_weights:
            self.projection = nn.Linear(H, c.embedding_size) if H != c.embedding_size else None
            self.decoder = nn.Linear(c.embedding_size, c.vocab_size)
            self.decoder.weight = self.embedding.weight
        else:
            self.projection = None
            self.decoder = nn.Linear(H, c.vocab_size)
        if c.init_range is not None:
            for p in self.parameters():
                nn.init.uniform_(p, -c.init_range, c.init_range)

    def initial_state(self, batch_size: int) -> Any:
        p = self.embedding.weight
        return self.rnn.initial_state(batch_size, device=p.device, dtype=p.dtype)

    def forward(self, tokens: Tensor, state: Any = None, lengths: Tensor | None = None) -> tuple[Tensor, Any]:
        h, state = self.rnn(self.drop(self.embedding(tokens)), lengths, state)  # (B, T, H)
        h = self.drop(h)
        if self.projection is not None:
            h = self.projection(h)
        return self.decoder(h), state  # logits (B, T, V)

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        logits, state = self(batch["input"], state, batch.get("lengths"))
        target = batch["target"]
        lengths = batch.get("lengths")
        count = int(lengths.sum()) if lengths is not None else target.numel()
        return Loss(sequence_cross_entropy(logits, target, lengths), count, state)

    def step(self, tokens: Tensor, state: Any) -> tuple[Tensor, Any]:
        logits, state = self(tokens[:, None], state)
        return logits[:, 0].log_softmax(-1), state

    @overload
    def generate(self, prompt: str, max_length: int, **options: Any) -> str: ...

    @overload
    def generate(self, prompt: Tensor, max_length: int, **options: Any) -> list[Hypothesis]: ...

    @torch.no_grad()
    def generate(self, prompt: Tensor | str, max_length: int, **options: Any) -> list[Hypothesis] | str:
        """Continue each row of ``prompt`` (B, P >= 1) token ids: the prompt runs once, then one
        step per token; options as :func:`rnnkit.decode.generate` (greedy, temperature, top_k,
        top_p, stop, generator, on_token). Returns one Hypothesis per row.

        With a string prompt: :meth:`generate_text` (the prompt and its continuation, as text)."""
        if isinstance(prompt, str):
            return self.generate_text(prompt, max_length, **options)
        if not isinstance(prompt, Tensor) or prompt.dim() != 2 or prompt.shape[1] < 1:
            shape = tuple(prompt.shape) if isinstance(prompt, Tensor) else type(prompt).__name__
            raise ValueError(f"prompt must be a string, or (batch, length >= 1) token ids. Received: {shape}")
        V = self.config.vocab_size
        if prompt.dtype.is_floating_point or prompt.dtype.is_complex or prompt.dtype == torch.bool:
            raise ValueError(f"prompt must hold integer token ids. Received: dtype {prompt.dtype}")
        if prompt.numel() and not bool(((prompt >= 0) & (prompt < V)).all()):
            raise ValueError(f"prompt must hold token ids in [0, {V}) (vocab_size). Received: ids from "
                             f"{int(prompt.min())} to {int(prompt.max())}")
        state = None
        if prompt.shape[1] > 1:
            _, state = self(prompt[:, :-1])
        else:
            state = self.initial_state(prompt.shape[0])
        if self.generation_path(prompt.shape[0], options.get("stop")).path == "compiled-generation":
            return generation_loop.GenerationLoop.of(self).generate(state, prompt[:, -1], max_length, **options)
        return generate(self.step, state, prompt[:, -1], max_length, **options)

    def generation_path(self, batch: int, stop: Any = None) -> PathChoice:
        """How :meth:`generate` runs ``batch`` rows now: "compiled-generation" (the whole token loop
        compiled, :mod:`rnnkit.generation_loop`) or "steps" (:func:`rnnkit.decode.generate` over
        :meth:`step`), and why."""
        return generation_loop.plan(self, batch, self.embedding.weight.device, stop)

    def generate_text(self, prompt: str, max_length: int, on_text: Callable[[str], None] | None = None,
                      **options: Any) -> str:
        """``prompt`` and ``max_length`` more tokens of text. The prompt is normalised as the
        training corpus was (``model.vocab.tokenize``); its unknown words are a warning.
        ``on_text(piece)`` receives each new piece as it is produced (streaming)."""
        vocab = self.vocab
        if vocab is None:
            raise ValueError("this model has no vocabulary: set model.vocab = rnnkit.data.Vocabulary(...) "
                             "(rnnkit.load attaches the saved one), or pass token ids")
        if len(vocab) != self.config.vocab_size:
            raise ValueError(f"model.vocab has {len(vocab)} tokens but the model has vocab_size "
                             f"{self.config.vocab_size}")
        units = vocab.tokenize(prompt)
        unknown = vocab.unknown(units)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:8]) + (", ..." if len(unknown) > 8 else "")
            warnings.warn(f"{len(unknown)} unit(s) of the prompt are not in the model's vocabulary and read as "
                          f"{vocab.unk!r}: {shown}", stacklevel=2)
        if not units:  # start from a line break (or the end-of-sentence token)
            units = [vocab.eos] if vocab.eos is not None else ["\n"] if "\n" in vocab.index else [vocab.tokens[-1]]
        text = [prompt]

        def emit(tokens: Tensor, keep: Tensor) -> None:
            if bool(keep[0]):
                last = text[-1][-1:] if text[-1] else ""
                piece = vocab.piece(int(tokens[0]), first=not last or last.isspace())
                text.append(piece)
                if on_text is not None:
                    on_text(piece)

        self.generate(vocab.encode(units)[None].to(self.embedding.weight.device), max_length, on_token=emit,
                      **options)
        return "".join(text)
