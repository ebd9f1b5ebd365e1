"""Connected spoken digits from the Free Spoken Digit Dataset (FSDD): recordings, splits, utterances.

FSDD holds isolated digits, ``{digit}_{speaker}_{index}.wav`` (6 speakers x 10 digits x 50
repetitions, 8 kHz). A connected utterance is 1 to 7 recordings of one speaker, from one
split, joined by short pauses of low noise; its transcript is the digit words ("seven three
nine"). The splits:

    standard        test: index 0-4 (the dataset's official test set); valid: index 5-9; train: 10-49
    speaker:NAME    test: every recording of NAME; valid: index 5-9 of the others; train: the rest

so no recording is in two splits. Test and valid utterances use every recording of their
split ``passes`` times, each pass a new random grouping (seeded); training utterances are
drawn afresh for every batch (:func:`draw_utterance`), with speed perturbation and noise.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.audio import read_audio, resample
from rnnkit.data.registry import require

__all__ = ["WORDS", "SPEAKERS", "Recording", "Utterance", "load_recordings", "read_recordings", "split_recordings",
           "by_speaker", "test_utterances", "draw_parts", "draw_utterance", "join"]

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
RATE = 8000
PAUSE_NOISE = 1e-3  # std of the noise in pauses: the median level of the recordings' own first 5 ms
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class Recording:
    """One FSDD file: the digit said, the speaker, the repetition index, the samples (8 kHz)."""

    digit: int
    speaker: str
    index: int
    wave: np.ndarray


@dataclass(frozen=True)
class Utterance:
    """Connected digits: the samples, the words, the speaker, and each recording's span in samples."""

    wave: np.ndarray
    words: tuple[str, ...]
    speaker: str
    spans: tuple[tuple[int, int], ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def load_recordings(data_dir: str | Path | None = None) -> list[Recording]:
    """All 3,000 recordings of a verified FSDD copy, in file-name order."""
    return read_recordings(require("fsdd", data_dir) / "recordings")


def read_recordings(folder: Path) -> list[Recording]:
    """The recordings named as FSDD's (``{digit}_{speaker}_{index}.wav``, any rate: resampled
    to 8 kHz) in ``folder``, in file-name order; other files are skipped."""
    out = []
    for path in sorted(folder.iterdir()):
        m = _NAME.match(path.name)
        if m:
            wave, _ = read_audio(path, RATE)
            out.append(Recording(int(m[1]), m[2], int(m[3]), wave))
    return out


def split_recordings(recordings: Sequence[Recording], split: str) -> dict[str, list[Recording]]:
    """{"train", "valid", "test"} recordings of ``split``: "standard" or "speaker:NAME" (module docstring)."""
    if split == "standard":
        def part(r: Recording) -> str:
            return "test" if r.index < 5 else "valid" if r.index < 10 else "train"
    elif split.startswith("speaker:") and split[len("speaker:"):] in SPEAKERS:
        held_out = split[len("speaker:"):]

        def part(r: Recording) -> str:
            return "test" if r.speaker == held_out else "valid" if 5 <= r.index < 10 else "train"
    else:
        raise ValueError(f"--split must be 'standard' or 'speaker:NAME' with NAME one of {', '.join(SPEAKERS)}. "
                         f"Received: {split!r}")
    out: dict[str, list[Recording]] = {"train": [], "valid": [], "test": []}
    for r in recordings:
        out[part(r)].append(r)
    return out


def join(parts: Sequence[Recording], rng: np.random.Generator, pause: tuple[float, float] = (0.05, 0.3),
         speed: float = 1.0, noise: float = 0.0, level: float | None = None) -> Utterance:
    """One utterance: ``parts`` in order, a random pause (seconds, uniform in ``pause``) before,
    between and after them, filled with low noise; ``speed`` resamples the speech (1.1: 10%
    faster and higher, as Ko et al.'s speed perturbation); ``level`` scales the speech (not the
    pauses) to that RMS, as if the voice were recorded louder or softer; ``noise`` adds white
    noise of that std to the whole utterance."""
    waves = [resample(r.wave, round(RATE * speed), RATE) if speed != 1.0 else r.wave for r in parts]
    if level is not None:
        rms = float(np.sqrt(np.mean(np.concatenate(waves).astype(np.float64) ** 2)))
        waves = [w * np.float32(level / max(rms, 1e-9)) for w in waves]
    pieces, spans, at = [], [], 0

    def silence() -> None:
        nonlocal at
        n = int(rng.uniform(*pause) * RATE)
        pieces.append(rng.normal(0.0, PAUSE_NOISE, n).astype(np.float32))
        at += n

    silence()
    for wave in waves:
        pieces.append(wave)
        spans.append((at, at + len(wave)))
        at += len(wave)
        silence()
    wave = np.concatenate(pieces)
    if noise > 0:
        wave = wave + rng.normal(0.0, noise, len(wave)).astype(np.float32)
    return Utterance(wave, tuple(WORDS[r.digit] for r in parts), parts[0].speaker, tuple(spans))


def by_speaker(recordings: Sequence[Recording]) -> dict[str, list[Recording]]:
    grouped: dict[str, list[Recording]] = defaultdict(list)
    for r in recordings:
        grouped[r.speaker].append(r)
    return dict(sorted(grouped.items()))


def test_utterances(recordings: Sequence[Recording], seed: int, passes: int = 3,
                    max_digits: int = 7) -> list[Utterance]:
    """Each recording used once per pass: per speaker, the recordings shuffled and cut into
    groups of 1 to ``max_digits`` (uniform); no speed change or added noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(passes):
        for group in by_speaker(recordings).values():
            order = rng.permutation(len(group))
            i = 0
            while i < len(order):
                n = int(rng.integers(1, max_digits + 1))
                out.append(join([group[j] for j in order[i : i + n]], rng))
                i += n
    return out


def draw_parts(groups: dict[str, list[Recording]], rng: np.random.Generator, max_digits: int = 7,
               count: int | None = None) -> list[Recording]:
    """The recordings of a random training utterance from ``groups`` (:func:`by_speaker`): a
    speaker, then ``count`` (default: 1 to ``max_digits``) of their recordings (repeats allowed)."""
    speakers = sorted(groups)
    group = groups[speakers[int(rng.integers(len(speakers)))]]
    count = int(rng.integers(1, max_digits + 1)) if count is None else count
    return [group[int(i)] for i in rng.integers(0, len(group), count)]


def draw_utterance(groups: dict[str, list[Recording]], rng: np.random.Generator, max_digits: int = 7,
                   speeds: Sequence[float] = (0.9, 1.0, 1.1), noise: float = 0.01, count: int | None = None,
                   levels: tuple[float, float] | None = None) -> Utterance:
    """A random training utterance (:func:`draw_parts`) at a speed drawn from ``speeds``, its
    speech at an RMS level uniform in ``levels`` (dBFS: 20 log10 RMS; None: as recorded), with
    white noise of a std uniform in [0, ``noise``]."""
    parts = draw_parts(groups, rng, max_digits, count)
    speed = float(speeds[int(rng.integers(len(speeds)))])
    level = None if levels is None else float(10 ** (rng.uniform(*levels) / 20))
    return join(parts, rng, speed=speed, noise=float(rng.uniform(0, noise)), level=level)
