"""Alignments without a blank: each target symbol held for one frame or more, in order.

The course's first model of order-synchronous, time-asynchronous outputs: a target l of S
symbols ("B AH T") is aligned to T >= S frames by repeating every symbol for at least one
frame ("B B AH AH AH T"); there is no blank. An alignment is a non-decreasing path of
positions s_1 = 0 ... s_T = S - 1 that moves by 0 or 1 per frame, and

    P(l | x) = sum over such paths of prod_t y_t(l_{s_t})

computed by the forward recursion alpha_t(s) = y_t(l_s) (alpha_{t-1}(s) + alpha_{t-1}(s-1))
and the backward one beta_t(s) = y_t(l_s) (beta_{t+1}(s) + beta_{t+1}(s+1)), in log space;
the posterior of position s at frame t is gamma_t(s) = alpha_t(s) beta_t(s) / (y_t(l_s) P).
Without a blank two equal neighbours in a target cannot be told apart in the output, so
decoding merges repeats (:func:`repeat_greedy`).

Functions: :func:`repeat_loss` (-log P, differentiable by autograd), :func:`repeat_posteriors`,
:func:`repeat_align` (Viterbi: the best path and each symbol's frames), :func:`repeat_greedy`.
Rows whose target is longer than their input (S > T) have no alignment: loss inf.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rnnkit.ctc import IntsLike, Segment, _check, _reduce
from rnnkit.decode.greedy import ctc_greedy
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.divergence import check_reduction

__all__ = ["repeat_loss", "repeat_posteriors", "repeat_align", "repeat_greedy"]

NEG = float("-inf")


def _emissions(log_probs: Tensor, targets: Tensor) -> Tensor:
    """(B, T, S): lp_t(l_s), the log-probability of each target position's symbol at each frame."""
    index = targets[:, None, :].expand(-1, log_probs.shape[1], -1)
    return log_probs.gather(2, index)


def _inputs(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike, target_lengths: IntsLike):
    batch = _check(log_probs, targets, input_lengths, target_lengths, blank=None, normalised=True)
    device = log_probs.device
    tg = torch.from_numpy(batch.targets).to(device)
    T_b = torch.from_numpy(batch.input_lengths).to(device)
    S_b = torch.from_numpy(batch.target_lengths).to(device)
    return batch, _emissions(log_probs, tg), T_b, S_b


def _step_right(a: Tensor) -> Tensor:
    """a shifted one position to the right along s (position s receives s - 1), -inf at s = 0."""
    return torch.cat([torch.full_like(a[:, :1], NEG), a[:, :-1]], 1)


def _alpha(e: Tensor, T_b: Tensor, S_b: Tensor) -> tuple[Tensor, Tensor]:
    """(alpha (B, T, S) in log space, log P (B,))."""
    B, T, S = e.shape
    positions = torch.arange(S, device=e.device)
    start = torch.where(positions == 0, 0.0, NEG).to(e.dtype).expand(B, S)
    alphas, a = [], None
    for t in range(T):
        a = e[:, t] + (start if t == 0 else torch.logaddexp(a, _step_right(a)))
        alphas.append(a)
    alpha = torch.stack(alphas, 1)
    last_t = (T_b - 1).clamp(min=0)
    last_s = (S_b - 1).clamp(min=0)
    log_p = alpha[torch.arange(B, device=e.device), last_t, last_s]
    infeasible = (S_b > T_b) | (S_b == 0) | (T_b == 0)
    return alpha, torch.where(infeasible, torch.full_like(log_p, NEG), log_p)


def repeat_loss(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike, target_lengths: IntsLike,
                reduction: str = "mean") -> Tensor:
    """-log P(l | x) summed over every blank-free alignment (see the module docstring).

    Arguments as :func:`rnnkit.ctc.ctc_loss` (no blank: every class is a symbol); targets must
    be non-empty. ``reduction="mean"`` divides each loss by its target length, then averages.
    The gradient is autograd's through the forward recursion (float64 gradcheck in the tests).
    """
    check_reduction(reduction)
    batch, e, T_b, S_b = _inputs(log_probs, targets, input_lengths, target_lengths)
    _, log_p = _alpha(e, T_b, S_b)
    return _reduce(-log_p, batch.target_lengths, reduction)


def repeat_posteriors(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike,
                      target_lengths: IntsLike) -> Tensor:
    """gamma (B, T, S_max): the posterior probability that frame t holds target position s
    (each frame's row sums to 1 within the input; 0 past it and for rows without alignment)."""
    with torch.no_grad():
        _, e, T_b, S_b = _inputs(log_probs, targets, input_lengths, target_lengths)
        alpha, log_p = _alpha(e, T_b, S_b)
        B, T, S = e.shape
        positions = torch.arange(S, device=e.device)
        betas, b = [None] * T, torch.full((B, S), NEG, dtype=e.dtype, device=e.device)
        for t in range(T - 1, -1, -1):
            nxt = torch.cat([b[:, 1:], torch.full_like(b[:, :1], NEG)], 1)  # position s receives s + 1
            carried = e[:, t] + torch.logaddexp(b, nxt)
            end = torch.where(positions[None] == (S_b - 1)[:, None], e[:, t], torch.full_like(e[:, t], NEG))
            b = torch.where((t == T_b - 1)[:, None], end, torch.where((t < T_b - 1)[:, None], carried, NEG))
            betas[t] = b
        beta = torch.stack(betas, 1)
        gamma = (alpha + beta - e - log_p[:, None, None]).exp()
        frames = torch.arange(T, device=e.device)[None, :, None] < T_b[:, None, None]
        return torch.where(frames & torch.isfinite(log_p)[:, None, None], gamma, torch.zeros_like(gamma))


def repeat_align(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike,
                 target_lengths: IntsLike) -> list[tuple[float, list[Segment]] | None]:
    """The best blank-free alignment of each row (Viterbi: max instead of sum, with back
    pointers): its log-probability and one :class:`rnnkit.ctc.Segment` per target position
    (frames [start, end)); None for a row without an alignment."""
    with torch.no_grad():
        batch, e, T_b, S_b = _inputs(log_probs, targets, input_lengths, target_lengths)
        B, T, S = e.shape
        positions = torch.arange(S, device=e.device)
        v = torch.where(positions == 0, 0.0, NEG).to(e.dtype).expand(B, S) + e[:, 0]
        moved = []  # per frame t >= 1, (B, S): the best path into (t, s) came from s - 1
        for t in range(1, T):
            right = _step_right(v)
            moved.append(right > v)
            v = e[:, t] + torch.maximum(v, right)
        moved_all = torch.stack(moved, 0).cpu() if moved else torch.zeros(0, B, S, dtype=torch.bool)
        e_cpu = e.detach().cpu()
        results: list[tuple[float, list[Segment]] | None] = []
        for b in range(B):
            Tb, Sb = int(T_b[b]), int(S_b[b])
            if Sb == 0 or Tb < Sb:
                results.append(None)
                continue
            path = [Sb - 1]
            for t in range(Tb - 1, 0, -1):
                path.append(path[-1] - int(moved_all[t - 1, b, path[-1]]))
            path.reverse()
            symbols = batch.targets[b]
            segments, start = [], 0
            for t in range(1, Tb + 1):
                if t == Tb or path[t] != path[start]:
                    score = float(sum(e_cpu[b, u, path[start]] for u in range(start, t)))
                    segments.append(Segment(int(symbols[path[start]]), start, t, score))
                    start = t
            results.append((sum(seg.score for seg in segments), segments))
        return results


def repeat_greedy(log_probs: Tensor, lengths: Tensor | Sequence[int] | None = None) -> list[Hypothesis]:
    """Best-path decoding without a blank: the most probable symbol per frame, then adjacent
    repeats merged (a symbol said twice in a row cannot be told from one held longer). The
    score is the best path's log-probability; ``frames``/``end_frames`` are each run's first
    and last frame. It is :func:`rnnkit.decode.ctc_greedy` with ``blank=None``."""
    return ctc_greedy(log_probs, lengths, blank=None)
