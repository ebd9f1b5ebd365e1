"""One time step of torch's RNN cells, compiled, for token-by-token generation on the CPU.

At batch 1 a generation step is a few hundred thousand multiply-adds, which the CPU does in
tens of microseconds; calling torch's RNN op for it costs 0.4-1.2 ms here, and even the
cell's own dozen tensor ops cost ~0.3 ms of dispatch. This module does the whole step of one
cell in one compiled call (numba, cached on disk across processes), on the parameters of
the torch op the cell equals (:class:`rnnkit.dispatch.NativeOp`, torch's gate order):

    LSTM:  [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
           c_t = sigma(f) * c_{t-1} + sigma(i) * tanh(g),   h_t = sigma(o) * tanh(c_t)
    GRU:   [r z] = sigma(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (first 2H rows)
           n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}
    RNN:   h_t = tanh or relu(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

Only for inference (no autograd) on CPU tensors of float32 or float64; the tests hold it to
torch's op (float32 1e-5, float64 1e-12). :func:`rnnkit.dispatch.single_step_path` decides
when it runs.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from rnnkit.cells import State
from rnnkit.dispatch import NativeOp

__all__ = ["compiled_step", "MODES"]

MODES = {"LSTM": 0, "GRU": 1, "RNN_TANH": 2, "RNN_RELU": 3}


@numba.njit(cache=True, fastmath=True)
def _affine(w: np.ndarray, x: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """out[r, i] = b[i] + sum_j w[i, j] x[r, j], summed in the arrays' dtype."""
    for r in range(x.shape[0]):
        for i in range(w.shape[0]):
            acc = b[i]
            for j in range(w.shape[1]):
                acc += w[i, j] * x[r, j]
            out[r, i] = acc


@numba.njit(cache=True)
def _sigmoid(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a))


@numba.njit(cache=True)
def _step(mode: int, x: np.ndarray, h: np.ndarray, c: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
          b_ih: np.ndarray, b_hh: np.ndarray, h_out: np.ndarray, c_out: np.ndarray) -> None:
    B, H = h.shape
    gi = np.empty((B, w_ih.shape[0]), dtype=h.dtype)
    gh = np.empty((B, w_hh.shape[0]), dtype=h.dtype)
    _affine(w_ih, x, b_ih, gi)
    _affine(w_hh, h, b_hh, gh)
    for r in range(B):
        for k in range(H):
            if mode == 0:
                i = _sigmoid(gi[r, k] + gh[r, k])
                f = _sigmoid(gi[r, H + k] + gh[r, H + k])
                g = math.tanh(gi[r, 2 * H + k] + gh[r, 2 * H + k])
                o = _sigmoid(gi[r, 3 * H + k] + gh[r, 3 * H + k])
                c_out[r, k] = f * c[r, k] + i * g
                h_out[r, k] = o * math.tanh(c_out[r, k])
            elif mode == 1:
                rr = _sigmoid(gi[r, k] + gh[r, k])
                z = _sigmoid(gi[r, H + k] + gh[r, H + k])
                n = math.tanh(gi[r, 2 * H + k] + rr * gh[r, 2 * H + k])
                h_out[r, k] = (1.0 - z) * n + z * h[r, k]
            elif mode == 2:
                h_out[r, k] = math.tanh(gi[r, k] + gh[r, k])
            else:
                h_out[r, k] = max(gi[r, k] + gh[r, k], 0.0)


def _array(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def compiled_step(natives: list[NativeOp], x: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
    """One time step of a layer (one NativeOp per direction: a single step reads the same input
    either way) on rows x (B, F): the output (B, D*H) and each direction's new state, as
    :func:`rnnkit.unroll.native_scan` gives them for T = 1."""
    xs = _array(x)
    outs, finals = [], []
    for native, state in zip(natives, states):
        w_ih, w_hh, *biases = (_array(w) for w in native.weights)
        if not biases:
            biases = [np.zeros(w_ih.shape[0], xs.dtype), np.zeros(w_hh.shape[0], xs.dtype)]
        b_ih, b_hh = biases
        h = _array(state[0])
        lstm = native.mode == "LSTM"
        c = _array(state[1]) if lstm else h
        h_out = np.empty_like(h)
        c_out = np.empty_like(h) if lstm else h  # read only by the LSTM
        _step(MODES[native.mode], xs, h, c, w_ih, w_hh, b_ih, b_hh, h_out, c_out)
        outs.append(torch.from_numpy(h_out))
        finals.append((outs[-1], torch.from_numpy(c_out)) if lstm else (outs[-1],))
    return (outs[0] if len(outs) == 1 else torch.cat(outs, 1)), finals
