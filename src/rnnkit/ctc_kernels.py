"""Compiled CPU kernels of the CTC lattice (numba, parallel over the batch).

Notation as :mod:`rnnkit.reference.ctc`: lp (T, C) log-probabilities of one utterance,
l' the blank-extended target of S' = 2S + 1 positions, ``skip[s]`` true where a path may
jump from s-2 to s (a symbol different from the symbol two positions back).

The forward-backward runs in the probability domain with a scale per frame (Rabiner 1989;
Graves et al. 2006) instead of in logs: every lattice cell is then a few multiply-adds
rather than two ``exp`` and a ``log``. Per frame t, with m_t the largest reachable lp,

    y_t(s)      = exp(lp_t(l'_s) - m_t)                         (in (0, 1], no overflow)
    a_t(s)      = y_t(s) (â_{t-1}(s) + â_{t-1}(s-1) + skip[s] â_{t-1}(s-2))
    c_t         = sum_s a_t(s),      â_t = a_t / c_t              (no underflow)
    log P       = sum_t (log c_t + m_t)        (the last frame's band holds only the two
                                                end positions, so â_T sums to one there)
    b'_t(s)     = y_{t+1}(s) b'_{t+1}(s) + y_{t+1}(s+1) b'_{t+1}(s+1) + skip[s+2] y_{t+1}(s+2) b'_{t+1}(s+2)
                  (the backward variable *without* frame t's emission, renormalised per frame)
    gamma_t(s)  = â_t(s) b'_t(s) / sum_s' â_t(s') b'_t(s')       (the scales cancel)
    dL/dlp_t(c) = -sum_{s : l'_s = c} gamma_t(s)

Only the band of positions that can still start and finish in time is touched:
max(0, S' - 2 (T - t)) <= s < min(S', 2 t + 2). Everything is float64 inside.

Status per row: 0 computed; 1 no alignment fits (too few frames: loss inf, gradient 0);
2 a scale underflowed (a probability ratio below 1e-308 inside one frame): the caller
recomputes that row in log space.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

OK, INFEASIBLE, UNDERFLOW = 0, 1, 2
# reassociation and fused multiply-add, but keep IEEE inf and nan (lp = -inf is meaningful)
FASTMATH = {"reassoc", "contract", "arcp"}


@njit(cache=True, inline="always")
def _extended(targets, b, S, blank):
    ext = np.empty(2 * S + 1, dtype=np.int64)
    ext[0] = blank
    for i in range(S):
        ext[2 * i + 1] = targets[b, i]
        ext[2 * i + 2] = blank
    skip = np.zeros(2 * S + 1, dtype=np.bool_)
    for s in range(3, 2 * S + 1, 2):
        skip[s] = ext[s] != ext[s - 2]
    return ext, skip


@njit(cache=True)
def min_frames(targets, target_lengths):
    """Frames the shortest alignment needs: S plus one blank between each repeated pair."""
    B = target_lengths.shape[0]
    out = np.empty(B, dtype=np.int64)
    for b in range(B):
        S = target_lengths[b]
        n = S
        for i in range(1, S):
            if targets[b, i] == targets[b, i - 1]:
                n += 1
        out[b] = n
    return out


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def forward_backward(lp, targets, input_lengths, target_lengths, blank, want_grad, want_gamma,
                     loss, grad, gamma, status):
    """Fill loss (B,), and when asked grad (B, T, C) += -gamma per symbol, gamma (B, T, S'max);
    the rows on numba's threads."""
    need = min_frames(targets, target_lengths)
    for b in prange(lp.shape[0]):
        _forward_backward_row(lp, targets, input_lengths, target_lengths, blank, want_grad, want_gamma,
                              loss, grad, gamma, status, need, b)


@njit(cache=True, fastmath=FASTMATH)
def forward_backward_serial(lp, targets, input_lengths, target_lengths, blank, want_grad, want_gamma,
                            loss, grad, gamma, status):
    """:func:`forward_backward` on the calling thread (a forked child, a second Python thread)."""
    need = min_frames(targets, target_lengths)
    for b in range(lp.shape[0]):
        _forward_backward_row(lp, targets, input_lengths, target_lengths, blank, want_grad, want_gamma,
                              loss, grad, gamma, status, need, b)


@njit(cache=True, fastmath=FASTMATH)
def _forward_backward_row(lp, targets, input_lengths, target_lengths, blank, want_grad, want_gamma,
                          loss, grad, gamma, status, need, b):
    """Row b of :func:`forward_backward`."""
    T = input_lengths[b]
    S = target_lengths[b]
    S_ = 2 * S + 1
    if T < need[b]:
        loss[b] = np.inf
        status[b] = INFEASIBLE
        return
    if T == 0:  # no frames, empty target: the empty alignment, P = 1
        loss[b] = 0.0
        status[b] = OK
        return
    ext, skip = _extended(targets, b, S, blank)
    y = np.zeros((T, S_))
    alpha = np.zeros((T, S_))
    log_p = 0.0
    state = OK
    for t in range(T):
        lo = max(0, S_ - 2 * (T - t))
        hi = min(S_, 2 * t + 2)
        m = -np.inf
        for s in range(lo, hi):
            v = lp[b, t, ext[s]]
            if v > m:
                m = v
        if m == -np.inf:
            state = INFEASIBLE  # every reachable symbol has probability 0
            break
        y_blank = math.exp(lp[b, t, blank] - m)  # shared by every even (blank) position
        for s in range(lo, hi):
            y[t, s] = y_blank if s % 2 == 0 else math.exp(lp[b, t, ext[s]] - m)
        c = 0.0
        if t == 0:
            for s in range(lo, hi):
                alpha[0, s] = y[0, s]
                c += alpha[0, s]
        else:
            for s in range(lo, hi):
                a = alpha[t - 1, s]
                if s >= 1:
                    a += alpha[t - 1, s - 1]
                if skip[s]:
                    a += alpha[t - 1, s - 2]
                a *= y[t, s]
                alpha[t, s] = a
                c += a
        if c == 0.0 or not c < np.inf:
            state = UNDERFLOW
            break
        inv = 1.0 / c
        for s in range(lo, hi):
            alpha[t, s] *= inv
        log_p += math.log(c) + m
    if state != OK:
        loss[b] = np.inf
        status[b] = state
        return
    loss[b] = -log_p
    status[b] = OK
    if not (want_grad or want_gamma):
        return
    beta = np.zeros(S_)
    beta_next = np.zeros(S_)
    beta[S_ - 1] = 1.0
    if S_ > 1:
        beta[S_ - 2] = 1.0
    for t in range(T - 1, -1, -1):
        lo = max(0, S_ - 2 * (T - t))
        hi = min(S_, 2 * t + 2)
        if t < T - 1:
            beta, beta_next = beta_next, beta  # beta_next now holds b'_{t+1}
            d = 0.0
            for s in range(lo, hi):
                v = y[t + 1, s] * beta_next[s]
                if s + 1 < S_:
                    v += y[t + 1, s + 1] * beta_next[s + 1]
                if s + 2 < S_ and skip[s + 2]:
                    v += y[t + 1, s + 2] * beta_next[s + 2]
                beta[s] = v
                d += v
            if d == 0.0:
                state = UNDERFLOW
                break
            inv = 1.0 / d
            for s in range(lo, hi):
                beta[s] *= inv
            for s in range(max(0, lo - 2), lo):
                beta[s] = 0.0  # outside this frame's band
        z = 0.0
        for s in range(lo, hi):
            z += alpha[t, s] * beta[s]
        if z == 0.0:
            state = UNDERFLOW
            break
        inv = 1.0 / z
        for s in range(lo, hi):
            g = alpha[t, s] * beta[s] * inv
            if want_grad:
                grad[b, t, ext[s]] -= g
            if want_gamma:
                gamma[b, t, s] = g
    if state != OK:
        loss[b] = np.inf
        status[b] = state
        if want_grad:
            grad[b, :, :] = 0.0
        if want_gamma:
            gamma[b, :, :] = 0.0


@njit(cache=True, parallel=True)
def viterbi(lp, targets, input_lengths, target_lengths, blank, positions, score, status):
    """Best alignment per row: positions (B, T) in the extended target (-1 past the input),
    score (B,) = sum_t lp_t(l'_{pi_t}) of the best path; the rows on numba's threads."""
    need = min_frames(targets, target_lengths)
    for b in prange(lp.shape[0]):
        _viterbi_row(lp, targets, input_lengths, target_lengths, blank, positions, score, status, need, b)


@njit(cache=True)
def viterbi_serial(lp, targets, input_lengths, target_lengths, blank, positions, score, status):
    """:func:`viterbi` on the calling thread (a forked child, a second Python thread)."""
    need = min_frames(targets, target_lengths)
    for b in range(lp.shape[0]):
        _viterbi_row(lp, targets, input_lengths, target_lengths, blank, positions, score, status, need, b)


@njit(cache=True)
def _viterbi_row(lp, targets, input_lengths, target_lengths, blank, positions, score, status, need, b):
    """Row b of :func:`viterbi`."""
    T = input_lengths[b]
    S = target_lengths[b]
    S_ = 2 * S + 1
    if T < need[b]:
        score[b] = -np.inf
        status[b] = INFEASIBLE
        return
    if T == 0:
        score[b] = 0.0
        status[b] = OK
        return
    ext, skip = _extended(targets, b, S, blank)
    delta = np.full(S_, -np.inf)
    prev = np.full(S_, -np.inf)
    back = np.zeros((T, S_), dtype=np.int8)  # how far the best predecessor is: 0, 1 or 2
    delta[0] = lp[b, 0, ext[0]]
    if S_ > 1:
        delta[1] = lp[b, 0, ext[1]]
    for t in range(1, T):
        delta, prev = prev, delta
        lo = max(0, S_ - 2 * (T - t))
        hi = min(S_, 2 * t + 2)
        for s in range(S_):
            delta[s] = -np.inf
        for s in range(lo, hi):
            best = prev[s]
            step = 0
            if s >= 1 and prev[s - 1] > best:
                best = prev[s - 1]
                step = 1
            if skip[s] and prev[s - 2] > best:
                best = prev[s - 2]
                step = 2
            delta[s] = best + lp[b, t, ext[s]]
            back[t, s] = step
    s = S_ - 1
    if S_ > 1 and delta[S_ - 2] > delta[S_ - 1]:
        s = S_ - 2
    if delta[s] == -np.inf:
        score[b] = -np.inf
        status[b] = INFEASIBLE
        return
    score[b] = delta[s]
    status[b] = OK
    for t in range(T - 1, -1, -1):
        positions[b, t] = s
        s -= back[t, s]
