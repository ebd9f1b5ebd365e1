"""The Elman (and leaky-integrator) cell's whole time loop, compiled: forward and BPTT in one call each.

As :mod:`rnnkit.lstm_loop` does for the LSTM, for the kernel of :class:`rnnkit.kernels.ElmanKernel`:
per step one product ``W h_{t-1}`` and one pass over the rows,

    a_t = xp_t + W (h_{t-1} ⊙ m);   n_t = act(a_t);   h_t = h_{t-1} + alpha ⊙ (n_t - h_{t-1})

(without leak rates, alpha = 1: h_t = n_t), and backward, from t = T-1 down, with
dh = dL/dh_t (+ dL/dy_t):

    da_t = alpha ⊙ act'(a_t) ⊙ dh;   dL/dalpha += dh ⊙ (n_t - h_{t-1});
    dL/dh_{t-1} = (W^T da_t) ⊙ m + (1 - alpha) ⊙ dh

Rows are in the packed layout (step t owns rows o_t : o_t + b_t, longest sequences first). The
gradient of W is formed after the loop from da (= dL/dxp = dL/drec), as on the Python loop,
which stays the fallback (CUDA, other dtypes) and the oracle of the tests. The product and the
activations are :mod:`rnnkit.lstm_loop` 's.
"""

from __future__ import annotations

import numba
import numpy as np

from rnnkit.lstm_loop import (ACTIVATIONS, activation_derivative, activation_into, backprop_scratch,
                              backprop_to_state, recurrent_product, row_offsets)

__all__ = ["ACTIVATIONS", "forward", "backward"]


@numba.njit(cache=True, nogil=True)
def forward(xp, w, bs, h0, mask, alpha, act, h, n):
    """One layer-direction forward over the packed rows.

    Inputs: xp (N, H) = U x_t + b; w = W (H, H); bs (T,) int64; h0 (B, H); mask (B, H) or
    (0, H) for none; alpha (H,) leak rates, or empty for none; act: a code of :data:`ACTIVATIONS`.
    Outputs (written): h (N, H); with leak rates n (N, H) = act(a_t) (else (0, H), unused).
    """
    H = w.shape[1]
    leaky = alpha.shape[0] > 0
    a = np.empty(H, dtype=xp.dtype)
    rec = np.empty((h0.shape[0], H), dtype=xp.dtype)
    pad_h, pad_out = np.empty((4, H), dtype=xp.dtype), np.empty((4, H), dtype=xp.dtype)
    h_in = np.empty(mask.shape, dtype=w.dtype)  # h_{t-1} ⊙ m, for the rows of a step
    bits = np.empty(H, dtype=np.int32)  # scratch of the activations
    o = 0
    o_prev = 0
    for t in range(bs.shape[0]):
        b = bs[t]
        hp = h0[:b] if t == 0 else h[o_prev : o_prev + b]
        recurrent_product(hp, mask, h_in, w, rec[:b], pad_h, pad_out)  # W (h_{t-1} ⊙ m)
        for r in range(b):
            row = o + r
            for j in range(H):
                a[j] = xp[row, j] + rec[r, j]
            if leaky:
                activation_into(act, a, n[row], bits)
                for j in range(H):
                    h[row, j] = hp[r, j] + alpha[j] * (n[row, j] - hp[r, j])
            else:
                activation_into(act, a, h[row], bits)
        o_prev = o
        o += b


@numba.njit(cache=True, nogil=True)
def backward(d_out, dh, w, bs, h0, mask, alpha, act, h, n, d_xp, d_alpha):
    """BPTT of :func:`forward`, in place: on entry dh (B, H) holds dL/dh_T of each sequence's
    final state, on return dL/dh_0. d_out (N, H) = dL/dy_t, or (0, H) for none. Writes d_xp
    (N, H) = dL/da_t (the gradient of xp and of W h_{t-1}); with leak rates adds their gradient
    into d_alpha (H,) (a float64 sum over the rows)."""
    H = w.shape[1]
    T = bs.shape[0]
    leaky = alpha.shape[0] > 0
    has_out = d_out.shape[0] > 0
    offsets = row_offsets(bs)
    wt, back, pad_h, pad_out = backprop_scratch(w, h0.shape[0])
    for t in range(T - 1, -1, -1):
        b = bs[t]
        o = offsets[t]
        hp = h0[:b] if t == 0 else h[offsets[t - 1] : offsets[t - 1] + b]
        for r in range(b):
            row = o + r
            for j in range(H):
                dhj = dh[r, j]
                if has_out:
                    dhj += d_out[row, j]
                if leaky:
                    y = n[row, j]
                    d_alpha[j] += dhj * (y - hp[r, j])
                    d_xp[row, j] = alpha[j] * activation_derivative(act, y) * dhj
                    dh[r, j] = (1.0 - alpha[j]) * dhj  # the direct part of dL/dh_{t-1}
                else:
                    d_xp[row, j] = activation_derivative(act, h[row, j]) * dhj
        backprop_to_state(d_xp[o : o + b], wt, mask, back, dh, leaky, pad_h, pad_out)  # (W^T dL/da_t) ⊙ m (+ direct)
