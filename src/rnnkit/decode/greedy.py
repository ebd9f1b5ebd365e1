"""Greedy CTC decoding: the most probable symbol per frame, repeats merged, blanks dropped."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from rnnkit.decode.hypothesis import Hypothesis, describe
from rnnkit.decode.inputs import check_ctc_decoder_inputs


def ctc_greedy(log_probs: Tensor, lengths: Tensor | Sequence[int] | None = None, blank: int | None = 0,
               merge_repeated: bool = True, tokens: Sequence[str] | None = None,
               word_delimiter: int | None = None) -> list[Hypothesis]:
    """Best path decoding ("Option 1" of the course): pi*_t = argmax_c lp_t(c), then B(pi*).

    B merges adjacent repeats (unless ``merge_repeated=False``) and drops blanks (``blank=None``:
    there is none, every class is a symbol, as for blank-free alignments). The score
    is the best path's log-probability sum_t lp_t(pi*_t) (not the sum over its alignments).
    Each token's run on the path gives ``frames`` (its first frame) and ``end_frames`` (its
    last, where the course places the emission).

    Args:
        log_probs: (B, T, C) log-probabilities. lengths: (B,) frames per row (default T).
        tokens: strings per id, to fill ``text``; word_delimiter: id between words.

    Returns:
        One :class:`Hypothesis` per row.

    Example:
        >>> ctc_greedy(torch.randn(1, 20, 5).log_softmax(-1))[0].ids
    """
    x, lens = check_ctc_decoder_inputs(log_probs, lengths, blank, tokens, word_delimiter)
    best = x.argmax(-1)  # (B, T)
    best_lp = np.take_along_axis(x, best[..., None], -1)[..., 0]
    out = []
    for b in range(x.shape[0]):
        path = best[b, : lens[b]]
        new = np.ones(len(path), dtype=bool)
        if merge_repeated and len(path) > 1:
            new[1:] = path[1:] != path[:-1]
        frames = np.nonzero(new if blank is None else new & (path != blank))[0]
        ids = path[frames].tolist()
        run_ends = np.append(np.nonzero(new)[0][1:] - 1, len(path) - 1)  # the last frame of every run
        ends = run_ends[np.searchsorted(np.nonzero(new)[0], frames)] if merge_repeated else frames
        score = float(best_lp[b, : lens[b]].sum())
        text, words = describe(ids, frames.tolist(), tokens, word_delimiter)
        out.append(Hypothesis(ids=ids, score=score, acoustic_score=score, text=text, frames=frames.tolist(),
                              end_frames=ends.tolist(), word_frames=words))
    return out
