"""Cells: float64 gradcheck of every cell and option, alone and unrolled on every path."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

import rnnkit

CELLS = {
    "elman-tanh": lambda F, H: rnnkit.ElmanCell(F, H),
    "elman-relu": lambda F, H: rnnkit.ElmanCell(F, H, activation="relu"),
    "elman-sigmoid": lambda F, H: rnnkit.ElmanCell(F, H, activation="sigmoid"),
    "elman-elu": lambda F, H: rnnkit.ElmanCell(F, H, activation="elu"),
    "elman-nobias": lambda F, H: rnnkit.ElmanCell(F, H, bias=False),
    "leaky-fixed": lambda F, H: rnnkit.LeakyCell(F, H, alpha=0.3),
    "leaky-learned": lambda F, H: rnnkit.LeakyCell(F, H, alpha=0.3, learn_alpha=True),
    "gru": lambda F, H: rnnkit.GRUCell(F, H),
    "gru-nobias": lambda F, H: rnnkit.GRUCell(F, H, bias=False),
    "lstm": lambda F, H: rnnkit.LSTMCell(F, H),
    "lstm-nobias": lambda F, H: rnnkit.LSTMCell(F, H, bias=False, forget_bias=None),
    "lstm-peephole": lambda F, H: rnnkit.LSTMCell(F, H, peephole=True),
    "lstm-layernorm": lambda F, H: rnnkit.LSTMCell(F, H, layer_norm=True),
    "lstm-peephole-layernorm": lambda F, H: rnnkit.LSTMCell(F, H, peephole=True, layer_norm=True),
    "lstm-g-sigmoid": lambda F, H: rnnkit.LSTMCell(F, H, candidate_activation="sigmoid"),
    "lstm-g-elu-peephole": lambda F, H: rnnkit.LSTMCell(F, H, candidate_activation="elu", peephole=True),
    "skip-lstm": lambda F, H: rnnkit.TemporalSkip(rnnkit.LSTMCell(F + H, H), delay=2),
    "skip-elman": lambda F, H: rnnkit.TemporalSkip(rnnkit.ElmanCell(F + H, H), delay=3),
}


def _functional(module: torch.nn.Module, fn):
    """fn(module, *inputs) as a function of (inputs..., parameters...) for gradcheck."""
    names = [n for n, _ in module.named_parameters()]

    def f(*args):
        n_in = len(args) - len(names)
        params = dict(zip(names, args[n_in:]))
        return torch.func.functional_call(module, params, args[:n_in], strict=False) if fn is None else fn(
            lambda *a, **k: torch.func.functional_call(module, params, a, k), *args[:n_in])

    return f, [p.detach().clone().requires_grad_() for p in module.parameters()]


@pytest.mark.parametrize("name", CELLS)
def test_cell_step_gradcheck(name):
    F, H, B = 3, 4, 2
    cell = CELLS[name](F, H).double()
    if isinstance(cell, rnnkit.LSTMCell) and cell.layer_norm:
        with torch.no_grad():
            cell.ln_bias_c.normal_()
    x = torch.randn(B, F, dtype=torch.double, requires_grad=True)
    state = tuple(s.normal_().requires_grad_() for s in cell.initial_state(B))

    def step(call, x, *state):
        h, new = call(x, tuple(state))
        return (h, *new)

    f, params = _functional(cell, step)
    assert gradcheck(f, (x, *state, *params))


RECURRENT_CASES = [
    (name, impl)
    for name in CELLS
    for impl in ("loop", "fused", "compiled")
    if impl == "loop" or (impl == "fused" and not name.startswith("skip")) or name.startswith(("lstm", "gru", "elman", "leaky"))
]


@pytest.mark.parametrize("name,impl", RECURRENT_CASES)
def test_unrolled_gradcheck(name, impl):
    """Gradcheck through a bidirectional layer with mixed lengths and a carried state:
    for the fused path this checks the hand-derived BPTT against finite differences."""
    F, H = 2, 3
    rnn = rnnkit.Recurrent(CELLS[name](F, H), bidirectional=True, implementation=impl).double()
    x = torch.randn(3, 5, F, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])
    state = tuple(tuple(s.normal_().requires_grad_() for s in c.initial_state(3)) for c in rnn.cells)
    flat_state = [s for cs in state for s in cs]
    n_per_cell = len(state[0])

    def run(call, x, *flat):
        st = tuple(tuple(flat[i : i + n_per_cell]) for i in range(0, len(flat), n_per_cell))
        out, final = call(x, lengths, st)
        return (out, *[s for f in final for s in f])

    f, params = _functional(rnn, run)
    assert gradcheck(f, (x, *flat_state, *params))


def test_native_path_gradcheck():
    rnn = rnnkit.LSTM(2, 3, num_layers=2, bidirectional=True, implementation="native").double()
    x = torch.randn(3, 4, 2, dtype=torch.double, requires_grad=True)
    lengths = torch.tensor([4, 1, 3])

    def run(call, x):
        out, final = call(x, lengths)
        return (out, *[s for f in final for s in f])

    f, params = _functional(rnn, run)
    assert gradcheck(f, (x, *params))


@pytest.mark.parametrize("cls,impl", [(rnnkit.GRU, "fused"), (rnnkit.LSTM, "compiled")])
def test_recurrent_dropout_fused_gradcheck(cls, impl):
    """The mask enters the hand-derived backward too (same mask drawn under the same seed)."""
    rnn = cls(2, 3, recurrent_dropout=0.4, implementation=impl).double()
    x = torch.randn(2, 4, 2, dtype=torch.double, requires_grad=True)

    def run(call, x):
        torch.manual_seed(1)
        return call(x)[0]

    f, params = _functional(rnn, run)
    assert gradcheck(f, (x, *params))


def test_temporal_skip_feeds_the_output_from_d_steps_back():
    """h_t depends on x_{t-d} through the skip even when W = 0 (no ordinary recurrence)."""
    inner = rnnkit.ElmanCell(1 + 2, 2)
    with torch.no_grad():
        inner.weight_hh.zero_()
    skip = rnnkit.TemporalSkip(inner, delay=3)
    x = torch.zeros(1, 8, 1)
    x[0, 1, 0] = 5.0
    out, _ = rnnkit.Recurrent(skip)(x)
    changed = (out[0] - rnnkit.Recurrent(skip)(torch.zeros(1, 8, 1))[0][0]).abs().sum(1) > 1e-6
    assert changed.tolist() == [False, True, False, False, True, False, False, True]


def test_leaky_cell_is_elman_when_alpha_is_one():
    leaky = rnnkit.LeakyCell(3, 4, alpha=1.0)
    elman = rnnkit.ElmanCell(3, 4)
    elman.load_state_dict({k: v for k, v in leaky.state_dict().items() if k != "alpha_fixed"})
    x = torch.randn(2, 6, 3)
    torch.testing.assert_close(rnnkit.Recurrent(leaky)(x)[0], rnnkit.Recurrent(elman)(x)[0])


def test_lstm_forget_bias_initialisation():
    cell = rnnkit.LSTMCell(3, 4, forget_bias=2.0)
    assert torch.all(cell.bias_ih[4:8] == 2.0) and torch.all(cell.bias_hh[4:8] == 0.0)
    plain = rnnkit.LSTMCell(3, 4, forget_bias=None)
    assert plain.bias_ih[4:8].abs().max() <= 0.5


@pytest.mark.parametrize("make,message", [
    (lambda: rnnkit.ElmanCell(3, 4, activation="softsign"), "activation must be one of"),
    (lambda: rnnkit.ElmanCell(-1, 4), "input_size must be >= 0"),
    (lambda: rnnkit.ElmanCell(3, 0), "hidden_size >= 1"),
    (lambda: rnnkit.GRUCell(3, 4, recurrent_dropout=1.0), "recurrent_dropout must be in"),
    (lambda: rnnkit.LeakyCell(3, 4, alpha=0.0), r"alpha must lie in \(0, 1\]"),
    (lambda: rnnkit.LeakyCell(3, 4, alpha=1.0, learn_alpha=True), r"alpha must lie in \(0, 1\)"),
    (lambda: rnnkit.LeakyCell(3, 4, alpha=[0.5, 0.5]), "alpha must be a float or 4 floats"),
    (lambda: rnnkit.LSTMCell(3, 4, bias=False), "forget_bias needs bias=True"),
    (lambda: rnnkit.TemporalSkip(rnnkit.LSTMCell(3, 4), delay=2), "input_size = F \\+ hidden_size"),
    (lambda: rnnkit.TemporalSkip(rnnkit.LSTMCell(8, 4), delay=0), "delay must be >= 1"),
])
def test_cell_construction_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
