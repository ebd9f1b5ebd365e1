"""The GRU cell's whole time loop, compiled: forward and BPTT in one call each.

As :mod:`rnnkit.lstm_loop` does for the LSTM, for the kernel of :class:`rnnkit.kernels.GRUKernel`:
per step one product ``rec_t = W (h_{t-1} ⊙ m) + b_hh`` and one pass over the rows,

    r, z = sigmoid(xp_rz + rec_rz);   n = tanh(xp_n + r ⊙ rec_n);   h_t = n + z ⊙ (h_{t-1} - n)

and backward, from t = T-1 down, with dh = dL/dh_t (+ dL/dy_t):

    dz = dh ⊙ (h_{t-1} - n);   da_n = dh ⊙ (1 - z) ⊙ (1 - n^2);   da_r = da_n ⊙ rec_n ⊙ r (1 - r)
    da_z = dz ⊙ z (1 - z);     d_xp = [da_r, da_z, da_n];          d_rec = [da_r, da_z, r ⊙ da_n]
    dL/dh_{t-1} = (W^T d_rec) ⊙ m + z ⊙ dh

Rows are in the packed layout (step t owns rows o_t : o_t + b_t, longest sequences first). The
gradients of W and b_hh are formed after the loop from d_rec, as on the Python loop, which stays
the fallback (CUDA, other dtypes) and the oracle of the tests.
"""

from __future__ import annotations

import numba
import numpy as np

from rnnkit.lstm_loop import (ACTIVATIONS, activation_into, backprop_scratch, backprop_to_state, recurrent_product,
                              row_offsets)

__all__ = ["forward", "backward"]

_SIGMOID, _TANH = ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]


@numba.njit(cache=True, nogil=True)
def forward(xp, w, b_hh, bs, h0, mask, h, gates, rec):
    """One layer-direction forward over the packed rows.

    Inputs: xp (N, 3H) = U x_t + b_ih (rows r, z, n); w = W (3H, H); b_hh (3H,) or empty for
    none; bs (T,) int64; h0 (B, H); mask (B, H) or (0, H) for none.
    Outputs (written): h (N, H); gates (N, 3H) = r, z, n; rec (N, 3H) = W h_{t-1} + b_hh.
    """
    H = w.shape[1]
    G = 3 * H
    biased = b_hh.shape[0] > 0
    a = np.empty(G, dtype=xp.dtype)
    pad_h, pad_g = np.empty((4, H), dtype=xp.dtype), np.empty((4, G), dtype=xp.dtype)
    h_in = np.empty(mask.shape, dtype=w.dtype)  # h_{t-1} ⊙ m, for the rows of a step
    bits = np.empty(G, dtype=np.int32)  # scratch of the activations
    o = 0
    o_prev = 0
    for t in range(bs.shape[0]):
        b = bs[t]
        hp = h0[:b] if t == 0 else h[o_prev : o_prev + b]
        recurrent_product(hp, mask, h_in, w, rec[o : o + b], pad_h, pad_g)  # W (h_{t-1} ⊙ m)
        for r in range(b):
            row = o + r
            rec_row, g_row = rec[row], gates[row]
            if biased:
                for k in range(G):
                    rec_row[k] += b_hh[k]
            for k in range(2 * H):
                a[k] = xp[row, k] + rec_row[k]
            activation_into(_SIGMOID, a[: 2 * H], g_row[: 2 * H], bits)  # r, z
            for j in range(H):
                a[2 * H + j] = xp[row, 2 * H + j] + g_row[j] * rec_row[2 * H + j]
            activation_into(_TANH, a[2 * H :], g_row[2 * H :], bits)  # n
            for j in range(H):
                n = g_row[2 * H + j]
                h[row, j] = n + g_row[H + j] * (hp[r, j] - n)
        o_prev = o
        o += b


@numba.njit(cache=True, nogil=True)
def backward(d_out, dh, w, bs, h0, mask, h, gates, rec, d_xp, d_rec):
    """BPTT of :func:`forward`, in place: on entry dh (B, H) holds dL/dh_T of each sequence's
    final state, on return dL/dh_0. d_out (N, H) = dL/dy_t, or (0, H) for none. Writes d_xp
    (N, 3H) = dL/dxp and d_rec (N, 3H) = dL/drec_t (the gradients of W h_{t-1} and b_hh)."""
    H = w.shape[1]
    G = 3 * H
    T = bs.shape[0]
    has_out = d_out.shape[0] > 0
    offsets = row_offsets(bs)
    wt, back, pad_g, pad_h = backprop_scratch(w, h0.shape[0])
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
                rg = gates[row, j]
                z = gates[row, H + j]
                n = gates[row, 2 * H + j]
                da_n = dhj * (1.0 - z) * (1.0 - n * n)
                da_r = da_n * rec[row, 2 * H + j] * rg * (1.0 - rg)
                da_z = dhj * (hp[r, j] - n) * z * (1.0 - z)
                d_xp[row, j] = da_r
                d_xp[row, H + j] = da_z
                d_xp[row, 2 * H + j] = da_n
                d_rec[row, j] = da_r
                d_rec[row, H + j] = da_z
                d_rec[row, 2 * H + j] = rg * da_n
                dh[r, j] = z * dhj  # the direct part of dL/dh_{t-1}
        backprop_to_state(d_rec[o : o + b], wt, mask, back, dh, True, pad_g, pad_h)  # (W^T dL/drec_t) ⊙ m + z ⊙ dh
