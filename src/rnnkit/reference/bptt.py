"""The textbook recurrent network and its back-propagation through time, in NumPy.

Forward, for t = 1..T (one sequence, column vectors):

    a_t = b + W h_{t-1} + U x_t
    h_t = tanh(a_t)
    o_t = c + V h_t
    ŷ_t = softmax(o_t)
    L   = - sum_t log ŷ_t[y_t]

Backward, the recursion derived in the course, from the last step down:

    ∇_{o_t} L     = ŷ_t - onehot(y_t)
    ∇_{h_T} L     = Vᵀ ∇_{o_T} L
    ∇_{h_t} L     = Wᵀ diag(1 - h_{t+1}²) ∇_{h_{t+1}} L + Vᵀ ∇_{o_t} L
    ∇_c L = Σ_t ∇_{o_t} L            ∇_V L = Σ_t ∇_{o_t} L h_tᵀ
    ∇_b L = Σ_t diag(1 - h_t²) ∇_{h_t} L
    ∇_W L = Σ_t diag(1 - h_t²) ∇_{h_t} L h_{t-1}ᵀ
    ∇_U L = Σ_t diag(1 - h_t²) ∇_{h_t} L x_tᵀ
    ∇_{h_0} L = Wᵀ diag(1 - h_1²) ∇_{h_1} L
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Array = np.ndarray


def softmax(o: Array) -> Array:
    e = np.exp(o - o.max())
    return e / e.sum()


def forward(xs: Array, ys: Array, h0: Array, U: Array, W: Array, V: Array, b: Array,
            c: Array) -> tuple[float, dict]:
    """Loss L of the sequence (xs (T, F), integer targets ys (T,)) and the cache for backward."""
    hs, y_hats = [h0], []
    loss = 0.0
    for t in range(len(xs)):
        a = b + W @ hs[-1] + U @ xs[t]
        h = np.tanh(a)
        o = c + V @ h
        y_hat = softmax(o)
        loss -= np.log(y_hat[ys[t]])
        hs.append(h)
        y_hats.append(y_hat)
    return loss, dict(xs=xs, ys=ys, hs=hs, y_hats=y_hats, U=U, W=W, V=V)


def backward(cache: dict) -> dict[str, Array]:
    """∇L for U, W, V, b, c and h_0, by the recursion in the module docstring."""
    xs, ys, hs, y_hats, U, W, V = (cache[k] for k in ("xs", "ys", "hs", "y_hats", "U", "W", "V"))
    T = len(xs)
    dU, dW, dV = np.zeros_like(U), np.zeros_like(W), np.zeros_like(V)
    db, dc = np.zeros(W.shape[0]), np.zeros(V.shape[0])
    da_next = np.zeros(W.shape[0])  # diag(1 - h_{t+1}²) ∇_{h_{t+1}} L; zero after the last step
    for t in reversed(range(T)):
        h, h_prev = hs[t + 1], hs[t]
        do = y_hats[t].copy()
        do[ys[t]] -= 1.0  # ∇_{o_t} L = ŷ_t - onehot(y_t)
        dh = W.T @ da_next + V.T @ do  # ∇_{h_t} L
        da = (1.0 - h**2) * dh  # through tanh
        dc += do
        dV += np.outer(do, h)
        db += da
        dW += np.outer(da, h_prev)
        dU += np.outer(da, xs[t])
        da_next = da
    return dict(U=dU, W=dW, V=dV, b=db, c=dc, h0=W.T @ da_next)


def numerical_gradient(f: Callable[[], float], x: Array, eps: float = 1e-6) -> Array:
    """Central finite differences of f() with respect to the array x (changed in place, restored)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        f_plus = f()
        x[i] = old - eps
        f_minus = f()
        x[i] = old
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad
