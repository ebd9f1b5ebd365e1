"""One time step of torch's RNN cells for token-by-token generation on the CPU, with the
cell's pointwise maths compiled.

A generation step at small batches is little arithmetic (a few hundred thousand
multiply-adds a layer at batch 1), and calling torch's RNN op for it costs 0.3-1 ms here,
the cell's own dozen tensor ops ~0.3 ms of dispatch. This module runs a cell's step as its
products by torch's matmul (BLAS, every core: one on the joined weight [W_ih W_hh] for the
LSTM and Elman cells, two for the GRU) and everything else in one compiled call (numba, cached
on disk across processes; its activations vectorised as in :mod:`rnnkit.lstm_loop`), on the
parameters of the torch op the cell equals (:class:`rnnkit.dispatch.NativeOp`, torch's gate
order):

    gi = W_ih x_t + b_ih,   gh = W_hh h_{t-1} + b_hh
    LSTM:  [i f g o] = gi + gh
           c_t = sigma(f) * c_{t-1} + sigma(i) * tanh(g),   h_t = sigma(o) * tanh(c_t)
    GRU:   [r z] = sigma(gi + gh) (first 2H rows)
           n = tanh(gi_n + r * gh_n),   h_t = (1 - z) * n + z * h_{t-1}
    RNN:   h_t = tanh or relu(gi + gh)

Only for inference (no autograd) on CPU tensors of float32 or float64; the tests hold it to
torch's op (float32 1e-5, float64 1e-12). :func:`rnnkit.dispatch.single_step_path` decides
when it runs.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from rnnkit.cells import State
from rnnkit.dispatch import NativeOp
from rnnkit.kernels import contiguous_array
from rnnkit.lstm_loop import ACTIVATIONS, activation_into

__all__ = ["compiled_step", "MODES"]

MODES = {"LSTM": 0, "GRU": 1, "RNN_TANH": 2, "RNN_RELU": 3}
TANH, SIGMOID, RELU = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"], ACTIVATIONS["relu"]


@numba.njit(cache=True)
def _pointwise(mode: int, gi: np.ndarray, gh: np.ndarray, h: np.ndarray, c: np.ndarray,
               h_out: np.ndarray, c_out: np.ndarray) -> None:
    """The cell's maths on gi = W_ih x_t + b_ih and gh = W_hh h_{t-1} + b_hh (B, G), a row at a
    time through the vectorised activations of :mod:`rnnkit.lstm_loop`; gh (0, G): gi holds
    their sum (the LSTM and Elman cells, see :func:`_joined`)."""
    B, H = h.shape
    G = gi.shape[1]
    a = np.empty(G, dtype=h.dtype)
    y = np.empty(G, dtype=h.dtype)
    bits = np.empty(G, dtype=np.int32)
    for r in range(B):
        if mode == 1:  # GRU: r and z from the sum, n with r inside
            for k in range(2 * H):
                a[k] = gi[r, k] + gh[r, k]
            activation_into(SIGMOID, a[: 2 * H], y[: 2 * H], bits)
            for k in range(H):
                a[2 * H + k] = gi[r, 2 * H + k] + y[k] * gh[r, 2 * H + k]
            activation_into(TANH, a[2 * H :], y[2 * H :], bits)
            for k in range(H):
                z = y[H + k]
                h_out[r, k] = (1.0 - z) * y[2 * H + k] + z * h[r, k]
            continue
        for k in range(G):
            a[k] = gi[r, k] + gh[r, k] if gh.shape[0] > 0 else gi[r, k]
        if mode == 0:  # LSTM: i, f, o sigmoid, g tanh
            activation_into(SIGMOID, a[: 2 * H], y[: 2 * H], bits)
            activation_into(TANH, a[2 * H : 3 * H], y[2 * H : 3 * H], bits)
            activation_into(SIGMOID, a[3 * H :], y[3 * H :], bits)
            for k in range(H):
                c_out[r, k] = y[H + k] * c[r, k] + y[k] * y[2 * H + k]
            activation_into(TANH, c_out[r], a[:H], bits)
            for k in range(H):
                h_out[r, k] = y[3 * H + k] * a[k]
        elif mode == 2:
            activation_into(TANH, a, h_out[r], bits)
        else:
            activation_into(RELU, a, h_out[r], bits)


#: [W_ih W_hh]^T and b_ih + b_hh of an op, by its W_ih: (parameters' storage and version, joined weight, bias)
_JOINED = WeakIdKeyDictionary()


def _joined(native: NativeOp) -> tuple[Tensor, Tensor | None]:
    """W_ih x_t + b_ih + W_hh h_{t-1} + b_hh as one product [x_t h_{t-1}] [W_ih W_hh]^T + b: the
    joined weight (F + H, G) and bias, made once and remade when a parameter is written
    (its version) or replaced (its storage). One product instead of two saves a call
    (~20-25 us here) and runs closer to the machine's peak."""
    stamp = tuple((w.data_ptr(), w._version) for w in native.weights)
    cached = _JOINED.get(native.weights[0])
    if cached is None or cached[0] != stamp:
        w_ih, w_hh, *biases = (w.detach() for w in native.weights)
        bias = biases[0] + biases[1] if biases else None
        cached = _JOINED[native.weights[0]] = (stamp, torch.cat([w_ih, w_hh], 1).t().contiguous(), bias)
    return cached[1], cached[2]


def compiled_step(natives: list[NativeOp], x: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
    """One time step of a layer (one NativeOp per direction: a single step reads the same input
    either way) on rows x (B, F): the output (B, D*H) and each direction's new state, as
    :func:`rnnkit.unroll.native_scan` gives them for T = 1."""
    x = x.detach()
    outs, finals = [], []
    for native, state in zip(natives, states):
        h = state[0].detach()
        if native.mode == "GRU":  # r multiplies W_hn h + b_hn alone: two products
            w_ih, w_hh, *biases = (w.detach() for w in native.weights)
            if biases:
                gi, gh = torch.addmm(biases[0], x, w_ih.t()), torch.addmm(biases[1], h, w_hh.t())
            else:
                gi, gh = x @ w_ih.t(), h @ w_hh.t()
        else:
            weight, bias = _joined(native)
            xh = torch.cat([x, h], 1)
            gi = torch.addmm(bias, xh, weight) if bias is not None else xh @ weight
            gh = gi.new_empty(0, gi.shape[1])
        lstm = native.mode == "LSTM"
        h_out = torch.empty_like(h)
        c_out = torch.empty_like(h) if lstm else h_out  # read only by the LSTM
        c = state[1].detach() if lstm else h
        _pointwise(MODES[native.mode], *map(contiguous_array, (gi, gh, h, c)), h_out.numpy(), c_out.numpy())
        outs.append(h_out)
        finals.append((h_out, c_out) if lstm else (h_out,))
    return (outs[0] if len(outs) == 1 else torch.cat(outs, 1)), finals
