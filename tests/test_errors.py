"""Bad input gets one clear ValueError naming the argument, the expected and the received value."""

from __future__ import annotations

import pytest
import torch

import rnnkit


@pytest.fixture
def lstm():
    return rnnkit.LSTM(3, 4, num_layers=2)


@pytest.mark.parametrize("call,message", [
    (lambda m: m(torch.randn(5, 3)), r"x must be 3-D \(batch, time, features\).*Received: shape \(5, 3\)"),
    (lambda m: m([[1.0]]), "x must be a torch.Tensor. Received: list"),
    (lambda m: m(torch.randn(2, 5, 7)), r"x must have 3 features \(input_size\). Received: shape \(2, 5, 7\)"),
    (lambda m: m(torch.randn(2, 0, 3)), r"at least one sequence and one step. Received: shape \(2, 0, 3\)"),
    (lambda m: m(torch.randn(2, 5, 3, dtype=torch.float64)), "x must be torch.float32 on cpu.*Received: torch.float64"),
    (lambda m: m(torch.randn(2, 5, 3), torch.tensor([5, 6])), r"lengths must lie in \[1, 5\].*Received: min 5, max 6"),
    (lambda m: m(torch.randn(2, 5, 3), torch.tensor([0, 5])), r"lengths must lie in \[1, 5\].*Received: min 0, max 5"),
    (lambda m: m(torch.randn(2, 5, 3), torch.tensor([-1, 5])), r"lengths must lie in \[1, 5\].*Received: min -1"),
    (lambda m: m(torch.randn(2, 5, 3), torch.tensor([5, 5, 5])), r"lengths must have shape \(2,\).*Received: \(3,\)"),
    (lambda m: m(torch.randn(2, 5, 3), torch.tensor([5.0, 4.0])), "lengths must be an integer tensor.*Received: dtype torch.float32"),
    (lambda m: m(torch.randn(2, 5, 3), [5, 4]), "lengths must be a 1-D integer tensor. Received: list"),
    (lambda m: m(torch.randn(2, 5, 3), torch.tensor([5, 4], device="meta")), "lengths must be on the CPU or on x's device.*Received: meta"),
])
def test_bad_input(lstm, call, message):
    with pytest.raises(ValueError, match=message):
        call(lstm)


def test_bad_state(lstm):
    x = torch.randn(2, 5, 3)
    good = lstm.initial_state(2)
    with pytest.raises(ValueError, match=r"state must be a tuple of 2 cell states.*Received: tuple of length 1"):
        lstm(x, state=good[:1])
    with pytest.raises(ValueError, match=r"state\[1\]\[0\] must have shape \(2, 4\). Received: \(3, 4\)"):
        lstm(x, state=(good[0], (torch.zeros(3, 4), torch.zeros(2, 4))))
    with pytest.raises(ValueError, match=r"state\[0\] must be a tuple of 2 tensors for LSTMCell"):
        lstm(x, state=(torch.zeros(2, 4), good[1]))
    with pytest.raises(ValueError, match=r"state\[0\]\[1\] must be torch.float32 on cpu, like x. Received: torch.float64"):
        lstm(x, state=((good[0][0], good[0][1].double()), good[1]))
    with pytest.raises(ValueError, match="state must be a tuple of 2 cell states.*Received: Tensor"):
        lstm(x, state=torch.zeros(2, 4))


@pytest.mark.parametrize("make,message", [
    (lambda: rnnkit.Recurrent([rnnkit.GRUCell(3, 4), rnnkit.GRUCell(3, 4)]),
     r"cells\[1\] \(direction 0\) must take input_size=4 \(layer 0's output width\). Received: input_size=3"),
    (lambda: rnnkit.Recurrent([rnnkit.GRUCell(3, 4), rnnkit.GRUCell(4, 4)], bidirectional=True),
     r"cells\[1\] .* must take input_size=8"),
    (lambda: rnnkit.Recurrent([(rnnkit.GRUCell(3, 4), rnnkit.GRUCell(3, 5))], bidirectional=True),
     r"both directions of layer 0 must have the same hidden_size. Received: \[4, 5\]"),
    (lambda: rnnkit.Recurrent([]), "cells must hold at least one cell"),
    (lambda: rnnkit.Recurrent(rnnkit.GRUCell(3, 4), merge="mean"), "merge must be 'concat' or 'sum'. Received: 'mean'"),
    (lambda: rnnkit.Recurrent(rnnkit.GRUCell(3, 4), dropout=1.5), r"dropout must be in \[0, 1\). Received: 1.5"),
    (lambda: rnnkit.Recurrent(rnnkit.GRUCell(3, 4), implementation="cudnn"), "implementation must be one of"),
    (lambda: rnnkit.LSTM(3, 4, layer_norm=True, implementation="native"), "implementation='native' needs plain"),
    (lambda: rnnkit.LSTM(3, 4, num_layers=0), "num_layers must be >= 1. Received: 0"),
    (lambda: rnnkit.Recurrent([[rnnkit.GRUCell(3, 4)]], bidirectional=True), r"cells\[0\] must be a Cell or a pair of Cells"),
])
def test_bad_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_native_refuses_recurrent_dropout_in_training():
    m = rnnkit.LSTM(3, 4, recurrent_dropout=0.2, implementation="native")
    with pytest.raises(ValueError, match="cannot apply recurrent_dropout"):
        m(torch.randn(1, 2, 3))
    m.eval()
    m(torch.randn(1, 2, 3))  # no dropout at evaluation: torch's kernel is exact


def test_fused_refuses_custom_cells():
    class Custom(rnnkit.Cell):
        def __init__(self):
            super().__init__()
            self.input_size = self.hidden_size = 2
            self.state_size = (2,)

        def forward(self, x_t, state):
            return x_t, (x_t,)

    with pytest.raises(ValueError, match="implementation='fused' needs built-in cells; layer 0 has Custom"):
        rnnkit.Recurrent(Custom(), implementation="fused")
