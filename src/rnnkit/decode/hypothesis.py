"""The result of decoding one output sequence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Hypothesis:
    """One decoded sequence.

    Attributes:
        ids: token ids (CTC: after merging repeats and dropping blanks).
        score: the total the decoder ranked by (natural log): acoustic_score plus the
            weighted scorer contributions (language model, word bonus, hotwords).
        acoustic_score: log-probability under the model alone: for CTC beam search the exact
            CTC log-probability of ``ids`` (every alignment, computed again by the forward
            algorithm after the search); for greedy the best path's.
        lm_score: the language model's natural-log probability of the output (unweighted).
        text: the tokens joined, when token strings were given.
        frames: the first frame of each token's run of frames on the (best) path.
        end_frames: the last frame of each token's run, where the course places the emission
            (a token held for frames 3, 4, 5 has frame 3 and end frame 5).
        word_frames: (word, first frame, last frame + 1) for each word, when a word
            delimiter was given.
    """

    ids: list[int]
    score: float
    acoustic_score: float
    lm_score: float = 0.0
    text: str | None = None
    frames: list[int] = field(default_factory=list)
    end_frames: list[int] = field(default_factory=list)
    word_frames: list[tuple[str, int, int]] | None = None


def describe(ids: Sequence[int], frames: Sequence[int], tokens: Sequence[str] | None,
             word_delimiter: int | None) -> tuple[str | None, list[tuple[str, int, int]] | None]:
    """Text and word spans of a token sequence."""
    if tokens is None:
        return None, None
    text = "".join(tokens[i] for i in ids)
    if word_delimiter is None:
        return text, None
    words: list[tuple[str, int, int]] = []
    first = None  # index of the current word's first token
    for k, i in enumerate(list(ids) + [word_delimiter]):
        if i != word_delimiter:
            first = k if first is None else first
        elif first is not None:
            words.append(("".join(tokens[j] for j in ids[first:k]), frames[first], frames[k - 1] + 1))
            first = None
    return text, words
