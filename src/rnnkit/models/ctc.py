"""Order-synchronous, time-asynchronous outputs: a CTC recogniser (speech -> symbols)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.batching import Batch
from rnnkit.ctc import ctc_loss
from rnnkit.decode import ctc_beam_search, ctc_greedy
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.models.base import Loss, Model, build_recurrent

if TYPE_CHECKING:
    from rnnkit.audio import FeatureStats


@dataclass
class CTCRecognizerConfig:
    """input_size: features per frame. num_tokens: C including the blank. stack_frames: k
    consecutive frames concatenated into one (T -> ceil(T / k), a k-times shorter lattice).
    features: the settings of :class:`rnnkit.audio.FeatureConfig` when the model hears
    recordings (its input is then log-mel features, and :meth:`CTCRecognizer.hear` takes waves)."""

    input_size: int
    num_tokens: int
    blank: int = 0
    rnn: dict = field(default_factory=lambda: {"cell": "lstm", "hidden_size": 128, "num_layers": 2,
                                               "bidirectional": True})
    stack_frames: int = 1
    dropout: float = 0.0
    features: dict | None = None


class CTCRecognizer(Model):
    """y_t = log softmax(V h_t + c) over the tokens and the blank; trained with CTC, decoded
    greedily or with :func:`rnnkit.decode.ctc_beam_search`."""

    Config = CTCRecognizerConfig

    def __init__(self, config: CTCRecognizerConfig) -> None:
        super().__init__(config)
        c = config
        if c.stack_frames < 1:
            raise ValueError(f"stack_frames must be >= 1. Received: {c.stack_frames}")
        self.frontend = None
        if c.features is not None:
            from rnnkit.audio import FeatureConfig, LogMel

            if not isinstance(c.features, dict):
                raise ValueError(f"features must be a dict of FeatureConfig settings. Received: {c.features!r}")
            try:
                features = FeatureConfig(**c.features)
            except TypeError as e:
                raise ValueError(f"features: {e}") from None
            if features.size != c.input_size:
                raise ValueError(f"input_size ({c.input_size}) must equal the features' size per frame "
                                 f"(n_ceps or n_mels: {features.size})")
            self.frontend = LogMel(features)
        self.rnn = build_recurrent(c.input_size * c.stack_frames, **c.rnn)
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(self.rnn.output_size, c.num_tokens)

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame (after stacking), for a model that hears recordings."""
        if self.frontend is None:
            raise ValueError("this CTCRecognizer reads features, not recordings (its config has no features)")
        return self.frontend.config.frame_seconds * self.config.stack_frames

    def hear(self, waves: Tensor, lengths: Tensor | None = None,
             stats: FeatureStats | None = None) -> tuple[Tensor, Tensor]:
        """(log_probs (B, T', C), frame lengths) of waves (B, N) at the features' sample rate,
        normalised per utterance or by ``stats`` (a speaker's, :meth:`rnnkit.audio.LogMel.stats`)."""
        if self.frontend is None:
            raise ValueError("this CTCRecognizer reads features, not recordings (its config has no features)")
        return self(*self.frontend(waves, lengths, stats=stats))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(log_probs (B, T', C), frame lengths (B,)) with T' = ceil(T / stack_frames)."""
        B, T, F_ = features.shape
        k = self.config.stack_frames
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        if k > 1:
            features = F.pad(features, (0, 0, 0, (-T) % k)).reshape(B, -1, k * F_)
            lengths = (lengths + k - 1) // k
        h, _ = self.rnn(self.drop(features), lengths)
        return self.output(self.drop(h)).log_softmax(-1), lengths

    def loss(self, batch: Batch, state: Any = None, teacher_forcing: float = 1.0) -> Loss:
        log_probs, lengths = self(batch["input"], batch.get("lengths"))
        value = ctc_loss(log_probs, batch["target"], lengths, batch["target_lengths"], blank=self.config.blank,
                         zero_infinity=True)
        return Loss(value, len(log_probs))

    @torch.no_grad()
    def decode(self, features: Tensor, lengths: Tensor | None = None, beam_width: int = 1,
               **options: Any) -> list[Hypothesis]:
        """Best hypothesis per utterance: greedy for beam_width=1, else prefix beam search
        (options: lexicon, lm, tokens, word_delimiter, ... as :func:`ctc_beam_search`)."""
        log_probs, lengths = self(features, lengths)
        if beam_width == 1 and not options:
            return ctc_greedy(log_probs, lengths, blank=self.config.blank)
        return [h[0] if h else Hypothesis([], -float("inf"), -float("inf"))
                for h in ctc_beam_search(log_probs, lengths, beam_width, blank=self.config.blank, **options)]
