"""CTC in NumPy, as the textbook writes it: alpha, beta, gamma, the loss and its gradient.

One utterance: y (T, C) per-frame symbol probabilities (or log-probabilities lp = log y),
a target l of S symbols, and the blank b. The blank-extended target is

    l' = (b, l_1, b, l_2, ..., b, l_S, b),   S' = 2S + 1 positions.

An alignment is a path through l' that starts at position 1 or 2 (1-based), ends at S' or
S'-1, and at each frame stays, moves one on, or skips a blank between two *different*
symbols. With 0-based s:

    alpha_t(s) = y_t(l'_s) * (alpha_{t-1}(s) + alpha_{t-1}(s-1) + [skip] alpha_{t-1}(s-2))
    beta_t(s)  = y_t(l'_s) * (beta_{t+1}(s)  + beta_{t+1}(s+1)  + [skip] beta_{t+1}(s+2))
    P(l | x)   = alpha_T(S'-1) + alpha_T(S'-2)
    gamma_t(s) = alpha_t(s) beta_t(s) / (y_t(l'_s) P)          (occupancy of position s at t)
    L          = -log P
    dL/dlp_t(c) = -sum_{s : l'_s = c} gamma_t(s)

(alpha and beta both include the frame's own emission, hence the division by y in gamma.)
The gradient is the exact derivative for any lp: it does not assume that y sums to one.
No torch here; :func:`brute_force` enumerates every path for tiny cases.
"""

from __future__ import annotations

import itertools

import numpy as np

Array = np.ndarray


def extend(target: list[int], blank: int) -> list[int]:
    """l' = (b, l_1, b, ..., l_S, b)."""
    ext = [blank]
    for symbol in target:
        ext += [symbol, blank]
    return ext


def _can_skip(ext: list[int], s: int, blank: int) -> bool:
    """A path may jump from s-2 to s: s is a symbol different from the symbol at s-2."""
    return s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]


# ----------------------------------------------------------------------------- probability domain

def alpha(y: Array, target: list[int], blank: int) -> Array:
    """Forward variables alpha (T, S') in the probability domain."""
    ext = extend(target, blank)
    T, S_ = len(y), len(ext)
    a = np.zeros((T, S_))
    a[0, 0] = y[0, ext[0]]
    if S_ > 1:
        a[0, 1] = y[0, ext[1]]
    for t in range(1, T):
        for s in range(S_):
            total = a[t - 1, s]
            if s >= 1:
                total += a[t - 1, s - 1]
            if _can_skip(ext, s, blank):
                total += a[t - 1, s - 2]
            a[t, s] = y[t, ext[s]] * total
    return a


def beta(y: Array, target: list[int], blank: int) -> Array:
    """Backward variables beta (T, S') in the probability domain."""
    ext = extend(target, blank)
    T, S_ = len(y), len(ext)
    b = np.zeros((T, S_))
    b[T - 1, S_ - 1] = y[T - 1, ext[S_ - 1]]
    if S_ > 1:
        b[T - 1, S_ - 2] = y[T - 1, ext[S_ - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(S_):
            total = b[t + 1, s]
            if s + 1 < S_:
                total += b[t + 1, s + 1]
            if s + 2 < S_ and _can_skip(ext, s + 2, blank):
                total += b[t + 1, s + 2]
            b[t, s] = y[t, ext[s]] * total
    return b


def probability(y: Array, target: list[int], blank: int) -> float:
    """P(l | x) = alpha_T(S'-1) + alpha_T(S'-2)."""
    a = alpha(y, target, blank)
    return a[-1, -1] + (a[-1, -2] if a.shape[1] > 1 else 0.0)


def gamma(y: Array, target: list[int], blank: int) -> Array:
    """Posterior occupancy gamma (T, S') = alpha beta / (y P)."""
    ext = extend(target, blank)
    a, b = alpha(y, target, blank), beta(y, target, blank)
    P = probability(y, target, blank)
    emission = y[:, ext]  # y_t(l'_s), (T, S')
    return a * b / (emission * P)


def loss_and_gradient(lp: Array, target: list[int], blank: int) -> tuple[float, Array]:
    """L = -log P and dL/dlp (T, C), in the probability domain (for short T)."""
    y = np.exp(lp)
    g = gamma(y, target, blank)
    grad = np.zeros_like(lp)
    for s, c in enumerate(extend(target, blank)):
        grad[:, c] -= g[:, s]
    return -np.log(probability(y, target, blank)), grad


# ----------------------------------------------------------------------------- log domain

def _logsumexp(*values: float) -> float:
    m = max(values)
    if m == -np.inf:
        return -np.inf
    return m + np.log(sum(np.exp(v - m) for v in values))


def log_alpha(lp: Array, target: list[int], blank: int) -> Array:
    """log alpha (T, S'): the same recursion with sums of logs, stable for long T."""
    ext = extend(target, blank)
    T, S_ = len(lp), len(ext)
    la = np.full((T, S_), -np.inf)
    la[0, 0] = lp[0, ext[0]]
    if S_ > 1:
        la[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(S_):
            terms = [la[t - 1, s]]
            if s >= 1:
                terms.append(la[t - 1, s - 1])
            if _can_skip(ext, s, blank):
                terms.append(la[t - 1, s - 2])
            la[t, s] = lp[t, ext[s]] + _logsumexp(*terms)
    return la


def log_beta(lp: Array, target: list[int], blank: int) -> Array:
    """log beta (T, S')."""
    ext = extend(target, blank)
    T, S_ = len(lp), len(ext)
    lb = np.full((T, S_), -np.inf)
    lb[T - 1, S_ - 1] = lp[T - 1, ext[S_ - 1]]
    if S_ > 1:
        lb[T - 1, S_ - 2] = lp[T - 1, ext[S_ - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(S_):
            terms = [lb[t + 1, s]]
            if s + 1 < S_:
                terms.append(lb[t + 1, s + 1])
            if s + 2 < S_ and _can_skip(ext, s + 2, blank):
                terms.append(lb[t + 1, s + 2])
            lb[t, s] = lp[t, ext[s]] + _logsumexp(*terms)
    return lb


def log_loss_and_gradient(lp: Array, target: list[int], blank: int) -> tuple[float, Array]:
    """L and dL/dlp in the log domain: log gamma = log alpha + log beta - lp - log P."""
    ext = extend(target, blank)
    la, lb = log_alpha(lp, target, blank), log_beta(lp, target, blank)
    log_p = _logsumexp(la[-1, -1], la[-1, -2] if la.shape[1] > 1 else -np.inf)
    grad = np.zeros_like(lp)
    if log_p == -np.inf:
        return np.inf, grad  # no alignment: infinite loss, no gradient
    log_gamma = la + lb - lp[:, ext] - log_p
    for s, c in enumerate(ext):
        grad[:, c] -= np.exp(log_gamma[:, s])
    return -log_p, grad


def viterbi(lp: Array, target: list[int], blank: int) -> tuple[float, list[int]]:
    """Best alignment: max over paths of sum_t lp_t(pi_t); returns (score, position per frame)."""
    ext = extend(target, blank)
    T, S_ = len(lp), len(ext)
    score = np.full((T, S_), -np.inf)
    back = np.zeros((T, S_), dtype=int)
    score[0, 0] = lp[0, ext[0]]
    if S_ > 1:
        score[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(S_):
            best, arg = score[t - 1, s], s
            if s >= 1 and score[t - 1, s - 1] > best:
                best, arg = score[t - 1, s - 1], s - 1
            if _can_skip(ext, s, blank) and score[t - 1, s - 2] > best:
                best, arg = score[t - 1, s - 2], s - 2
            score[t, s] = best + lp[t, ext[s]]
            back[t, s] = arg
    s = S_ - 1 if S_ == 1 or score[-1, -1] >= score[-1, -2] else S_ - 2
    best = score[-1, s]
    path = [s]
    for t in range(T - 1, 0, -1):
        s = back[t, s]
        path.append(s)
    return best, path[::-1]


# ----------------------------------------------------------------------------- brute force

def collapse(path: tuple[int, ...] | list[int], blank: int) -> list[int]:
    """B(pi): merge repeats, then drop blanks."""
    out, prev = [], None
    for c in path:
        if c != prev and c != blank:
            out.append(c)
        prev = c
    return out


def brute_force(lp: Array, target: list[int], blank: int) -> tuple[float, Array, float, list[int]]:
    """Enumerate all C^T symbol paths (tiny cases only).

    Returns (L, dL/dlp, best path score, best symbol path): L = -log sum over paths that
    collapse to the target of exp(sum_t lp_t(pi_t)).
    """
    T, C = lp.shape
    total, grad_mass = 0.0, np.zeros_like(lp)
    best, best_path = -np.inf, None
    for path in itertools.product(range(C), repeat=T):
        if collapse(path, blank) != list(target):
            continue
        score = sum(lp[t, c] for t, c in enumerate(path))
        p = np.exp(score)
        total += p
        for t, c in enumerate(path):
            grad_mass[t, c] += p
        if score > best:
            best, best_path = score, list(path)
    if total == 0.0:
        return np.inf, np.zeros_like(lp), -np.inf, None
    return -np.log(total), -grad_mass / total, best, best_path


def label_sequence_probabilities(lp: Array, blank: int) -> dict[tuple[int, ...], float]:
    """P(l) for every label sequence l with a path: the sum of exp(sum_t lp_t(pi_t)) over all
    C^T paths pi that collapse to l (tiny cases only): the oracle of beam searches."""
    T, C = lp.shape
    probs: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(C), repeat=T):
        label = tuple(collapse(path, blank))
        probs[label] = probs.get(label, 0.0) + float(np.exp(sum(lp[t, c] for t, c in enumerate(path))))
    return probs
