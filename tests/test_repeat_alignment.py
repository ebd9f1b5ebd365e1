"""Alignments without a blank, against enumeration of every alignment on tiny cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from rnnkit.repeat_alignment import repeat_align, repeat_greedy, repeat_loss, repeat_posteriors


def _alignments(T: int, S: int):
    """Every path of positions 0..S-1, non-decreasing by steps of 0 or 1, over T frames."""
    for cuts in itertools.combinations(range(1, T), S - 1):  # the frames where the position moves on
        path, s = [], 0
        for t in range(T):
            if t in cuts:
                s += 1
            path.append(s)
        yield path


def _enumerate(lp: np.ndarray, target: list[int]):
    """(log P, gamma (T, S), best score, best path) by brute force."""
    T, S = lp.shape[0], len(target)
    scores, paths = [], []
    for path in _alignments(T, S):
        scores.append(sum(lp[t, target[s]] for t, s in enumerate(path)))
        paths.append(path)
    log_p = np.logaddexp.reduce(scores)
    gamma = np.zeros((T, S))
    for score, path in zip(scores, paths):
        for t, s in enumerate(path):
            gamma[t, s] += math.exp(score - log_p)
    best = int(np.argmax(scores))
    return log_p, gamma, scores[best], paths[best]


CASES = [([1, 2], 5), ([0, 2, 1], 6), ([2, 2], 4), ([1], 3), ([0, 1, 0, 2], 7)]


@pytest.mark.parametrize("target,T", CASES)
def test_loss_posteriors_and_viterbi_equal_enumeration(target, T):
    torch.manual_seed(T)
    lp = torch.randn(1, T, 3, dtype=torch.float64).log_softmax(-1)
    log_p, gamma, best, best_path = _enumerate(lp[0].numpy(), target)
    args = ([target], [T], [len(target)])
    assert float(repeat_loss(lp, *args, reduction="none")) == pytest.approx(-log_p, abs=1e-10)
    np.testing.assert_allclose(repeat_posteriors(lp, *args)[0].numpy(), gamma, atol=1e-10)
    score, segments = repeat_align(lp, *args)[0]
    assert score == pytest.approx(best, abs=1e-10)
    assert [s for seg in segments for s in [seg.start] * (seg.end - seg.start)] == \
        [next(i for i, s in enumerate(best_path) if s == p) for p in best_path]
    assert [seg.symbol for seg in segments] == target


def test_batches_with_lengths_equal_rows_alone_and_short_inputs_have_no_alignment():
    torch.manual_seed(0)
    lp = torch.randn(3, 7, 4, dtype=torch.float64).log_softmax(-1)
    targets, T, S = torch.tensor([[1, 2, 3], [3, 0, 0], [2, 2, 1]]), [7, 4, 2], [3, 1, 3]
    together = repeat_loss(lp, targets, T, S, reduction="none")
    for b in range(2):
        alone = repeat_loss(lp[b : b + 1, : T[b]], targets[b : b + 1, : S[b]], [T[b]], [S[b]], reduction="none")
        assert float(together[b]) == pytest.approx(float(alone), abs=1e-12)
    assert math.isinf(float(together[2]))  # 3 symbols cannot fit 2 frames
    assert repeat_align(lp, targets, T, S)[2] is None
    gamma = repeat_posteriors(lp, targets, T, S)
    torch.testing.assert_close(gamma[0].sum(1), torch.ones(7, dtype=torch.float64))
    assert float(gamma[1, 4:].abs().sum()) == 0 and float(gamma[2].abs().sum()) == 0


def test_gradcheck_float64():
    lp = torch.randn(2, 5, 3, dtype=torch.float64).log_softmax(-1).requires_grad_()
    assert gradcheck(lambda x: repeat_loss(x, torch.tensor([[1, 2], [0, 0]]), [5, 4], [2, 1]), (lp,))


def test_greedy_merges_repeats_and_reports_runs():
    path = [1, 1, 2, 2, 2, 0, 1]
    lp = torch.full((1, 7, 3), -8.0)
    for t, c in enumerate(path):
        lp[0, t, c] = 0.0
    (h,) = repeat_greedy(lp.log_softmax(-1))
    assert (h.ids, h.frames, h.end_frames) == ([1, 2, 0, 1], [0, 2, 5, 6], [1, 4, 5, 6])
