"""From a recording to timed words: a CTC recognizer, its decoders, and the Viterbi timing of the result.

A :class:`Transcriber` wraps a :class:`rnnkit.models.CTCRecognizer` that hears recordings
(its config has ``features``) and a vocabulary whose space is the word delimiter. It decodes
greedily or with the prefix beam search, optionally restricted to a lexicon and scored by a
word n-gram model; the words of the best hypothesis are then timed by the best alignment of
that hypothesis to the frames (Viterbi over the CTC lattice, :func:`rnnkit.ctc.forced_align`):
word w spans the frames from its first symbol's first frame to its last symbol's last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnkit.audio import FeatureStats
from rnnkit.ctc import Alignment, ctc_posteriors, forced_align
from rnnkit.decode import BeamSearchOptions, CTCBeamDecoder, Lexicon, NGramLM, ctc_greedy
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.data import pad
from rnnkit.files import read_json, read_utf8
from rnnkit.models.ctc import CTCRecognizer
from rnnkit.run_dir import Checkpoint

__all__ = ["Word", "Transcriber", "AlignmentView", "DECODERS", "timed_words", "load_transcriber"]

#: the decoders ``rnnkit evaluate`` compares, by name: (beam search?, lexicon?, language model?)
DECODERS = {"greedy": (False, False, False), "beam": (True, False, False), "lexicon": (True, True, False),
            "lexicon_lm": (True, True, True)}


@dataclass(frozen=True)
class Word:
    """A recognised word and where it was said, in seconds from the start of the recording."""

    text: str
    start: float
    end: float


def timed_words(log_probs: Tensor, ids: Sequence[int], frame_seconds: float, tokens: Sequence[str],
                delimiter: int, blank: int = 0) -> list[Word]:
    """The words of ``ids`` timed by their best alignment to ``log_probs`` (T, C) of one utterance."""
    if not ids:
        return []
    alignment = forced_align(log_probs[None], torch.tensor([list(ids)]), [len(log_probs)], [len(ids)], blank)[0]
    if alignment is None:  # cannot happen for a hypothesis decoded from these frames
        raise ValueError("the hypothesis has no alignment to the frames")
    return _words(alignment, frame_seconds, tokens, delimiter)


def _words(alignment: Alignment, frame_seconds: float, tokens: Sequence[str], delimiter: int) -> list[Word]:
    """The words of an alignment: each spans its symbols' segments."""
    words, current = [], []
    for seg in [*alignment.segments, None]:
        if seg is None or seg.symbol == delimiter:
            if current:
                text = "".join(tokens[s.symbol] for s in current)
                words.append(Word(text, current[0].start * frame_seconds, current[-1].end * frame_seconds))
            current = []
        else:
            current.append(seg)
    return words


class Transcriber:
    """Decode recordings with a recognizer.

    Args:
        model: a CTCRecognizer with ``features`` and a vocabulary (``model.vocab``) holding " ".
        beam: beam width (1: greedy, unless a lexicon or LM asks for the search).
        lexicon: the words allowed (None: any spelling).
        lm: an ARPA word model (path) scored at every word end, weighted by ``lm_weight``.
        word_score: bonus per word (natural log), against the LM's per-word cost.
        nbest: hypotheses :meth:`candidates` gives per recording when searching (at most ``beam``).
    """

    def __init__(self, model: CTCRecognizer, beam: int = 16, lexicon: Sequence[str] | None = None,
                 lm: str | Path | None = None, lm_weight: float = 0.5, word_score: float = 0.0,
                 nbest: int = 1) -> None:
        if model.vocab is None or " " not in model.vocab.index:
            raise ValueError("the recognizer needs a vocabulary with a space (the word delimiter)")
        self.model = model.eval()
        self.tokens = model.vocab.tokens
        self.delimiter = model.vocab.index[" "]
        self.blank = model.config.blank
        self.search = None
        if beam > 1 or lexicon is not None or lm is not None:
            lex = None if lexicon is None else Lexicon(lexicon, tokens=self.tokens, word_delimiter=self.delimiter)
            self.search = CTCBeamDecoder(
                BeamSearchOptions(beam_width=beam, nbest=nbest, blank=self.blank, lm_weight=lm_weight,
                                  word_score=word_score),
                tokens=self.tokens, word_delimiter=self.delimiter, lexicon=lex,
                lm=None if lm is None else NGramLM(lm))

    @torch.no_grad()
    def log_probs(self, waves: Sequence[np.ndarray], stats: FeatureStats | None = None) -> list[Tensor]:
        """Per recording (samples at the model's rate), its log-probabilities (T', C) on the CPU;
        features normalised per recording, or by ``stats`` (a speaker's: :meth:`speaker`)."""
        device = next(self.model.parameters()).device
        batch, lengths = pad([torch.from_numpy(np.asarray(w, dtype=np.float32)) for w in waves])
        lp, frames = self.model.hear(batch.to(device), lengths, stats)
        return [lp[i, : int(frames[i])].float().cpu() for i in range(len(waves))]

    def speaker(self, waves: Sequence[np.ndarray]) -> FeatureStats:
        """The mean and std of the features of one speaker's recordings, for :meth:`log_probs`."""
        return self.model.frontend.stats(waves)

    def candidates(self, log_probs: Sequence[Tensor]) -> list[list[Hypothesis]]:
        """Each utterance's hypotheses, best first: the search's ``nbest`` (none where it
        pruned every prefix), or greedy decoding's one path."""
        lengths = [len(x) for x in log_probs]
        padded = torch.full((len(log_probs), max(lengths), len(self.tokens)), -1e4)
        for i, x in enumerate(log_probs):
            padded[i, : len(x)] = x
        if self.search is None:
            return [[h] for h in ctc_greedy(padded, lengths, blank=self.blank, tokens=self.tokens,
                                            word_delimiter=self.delimiter)]
        return self.search(padded, lengths)

    def decode(self, log_probs: Sequence[Tensor]) -> list[Hypothesis]:
        """The best hypothesis of each utterance's log-probabilities."""
        return [h[0] if h else Hypothesis([], -float("inf"), -float("inf"), text="")
                for h in self.candidates(log_probs)]

    def words(self, log_probs: Tensor, hypothesis: Hypothesis) -> list[Word]:
        """The hypothesis' words with their times."""
        return timed_words(log_probs, hypothesis.ids, self.model.frame_seconds, self.tokens, self.delimiter,
                           self.blank)

    def __call__(self, waves: Sequence[np.ndarray], stats: FeatureStats | None = None) -> list[list[Word]]:
        """Timed words of each recording (features normalised per recording, or by ``stats``)."""
        lps = self.log_probs(waves, stats)
        return [self.words(lp, h) for lp, h in zip(lps, self.decode(lps))]

    def spell(self, text: str) -> list[int]:
        """Token ids of ``text`` (lower-cased, spaces collapsed), or a ValueError naming what
        the recognizer cannot write."""
        text = " ".join(text.lower().split())
        if not text:
            raise ValueError("--text is empty: give the words said, e.g. --text 'seven three'")
        unknown = sorted({c for c in text if c not in self.model.vocab.index})
        if unknown:
            raise ValueError(f"--text {text!r}: the recognizer has no symbol for {unknown}; it writes "
                             f"{''.join(t for t in self.tokens if len(t) == 1)!r}")
        return [self.model.vocab.index[c] for c in text]

    @torch.no_grad()
    def align(self, wave: np.ndarray, text: str | None = None) -> AlignmentView:
        """What the recognizer does with one recording: features, posteriors y_t, the occupancy
        gamma of ``text`` (default: the decoded hypothesis) and its Viterbi path and words."""
        device = next(self.model.parameters()).device
        samples = torch.from_numpy(np.asarray(wave, dtype=np.float32))[None].to(device)
        features, spectrogram, frames = self.model.frontend.with_bands(samples)
        lp, lengths = self.model(features, frames)
        lp = lp[0, : int(lengths[0])].float().cpu()
        ids = self.decode([lp])[0].ids if text is None else self.spell(text)
        if not ids:
            raise ValueError("the recognizer heard nothing in this recording; give the words with --text")
        T = len(lp)
        need = len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))
        if need > T:
            raise ValueError(f"the text needs at least {need} frames and the recording has {T} "
                             f"({T * self.model.frame_seconds:.2f} s)")
        gamma, _ = ctc_posteriors(lp[None].double(), torch.tensor([ids]), [T], [len(ids)], self.blank)
        path = forced_align(lp[None], torch.tensor([ids]), [T], [len(ids)], self.blank)[0]
        return AlignmentView(spectrogram[0, : int(frames[0])].cpu().numpy(), self.model.frontend.config.frame_seconds,
                             lp.exp().numpy(), self.model.frame_seconds, list(self.tokens), self.blank, ids,
                             gamma[0, :T, : 2 * len(ids) + 1].numpy(), path.positions,
                             _words(path, self.model.frame_seconds, self.tokens, self.delimiter))


@dataclass(frozen=True)
class AlignmentView:
    """One recording as the recognizer sees it (for :func:`rnnkit.plots.ctc_alignment`).

    features (T, n_mels): the normalised log-mel bands every feature_seconds (also when the model
    hears their cepstra); posteriors y_t(c) (T', C) every frame_seconds;
    target: the token ids aligned; gamma (T', 2S+1): the posterior of each position of the
    blank-extended target (even: blank); positions: the Viterbi path's position per frame;
    words: the target's words timed by that path.
    """

    features: np.ndarray
    feature_seconds: float
    posteriors: np.ndarray
    frame_seconds: float
    tokens: list[str]
    blank: int
    target: list[int]
    gamma: np.ndarray
    positions: list[int]
    words: list[Word]


def _word_list(path: Path, option: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    words = read_utf8(path, f"{option} {path}").split()
    if not words:
        raise ValueError(f"{option} {path}: no words in it")
    return words


def load_transcriber(run: str | Path, device: torch.device | str = "cpu", beam: int = 16,
                     lexicon: str | None = None, lm: str | None = None, lm_weight: float | None = None,
                     word_score: float | None = None) -> Transcriber:
    """A Transcriber for a run (its best checkpoint) or a checkpoint. ``lexicon`` and ``lm``:
    None (not used), "" (the checkpoint's own lexicon.txt / lm.arpa) or a file. ``lm_weight``
    and ``word_score`` default to the ones the run was trained with (else 0.5 and 0)."""
    import rnnkit

    ckpt = Checkpoint.resolve(Path(run))
    model = rnnkit.load(ckpt.path, map_location=device)
    if not isinstance(model, CTCRecognizer) or model.frontend is None:
        raise ValueError(f"{ckpt.path} holds a {type(model).__name__} that does not hear recordings "
                         "(a CTCRecognizer with features is needed, e.g. from `rnnkit train digits`)")
    saved = read_json(ckpt.task, "the task and its arguments").get("args", {}) if ckpt.task.is_file() else {}
    words = None
    if lexicon is not None:
        own = ckpt.path / Checkpoint.LEXICON
        if lexicon == "" and not own.is_file():
            raise FileNotFoundError(f"{ckpt.path} has no lexicon.txt: give --lexicon FILE (one word per line)")
        words = _word_list(own if lexicon == "" else Path(lexicon), "--lexicon")
    lm_path = None
    if lm is not None:
        lm_path = ckpt.path / Checkpoint.LM if lm == "" else Path(lm)
        if not lm_path.is_file():
            raise FileNotFoundError(f"--lm {lm_path}: no such file" if lm else
                                    f"{ckpt.path} has no lm.arpa: give --lm FILE (an ARPA word model)")
    return Transcriber(model, beam, words, lm_path,
                       lm_weight if lm_weight is not None else saved.get("lm_weight", 0.5),
                       word_score if word_score is not None else saved.get("word_score", 0.0))
