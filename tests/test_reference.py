"""The NumPy reference: checked against finite differences, then used as the oracle for torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.reference import bptt as textbook
from rnnkit.reference import cells as ref


def test_reference_does_not_import_torch():
    # rnnkit/__init__ imports torch, so load the reference modules by path
    code = (
        "import importlib.util, sys, pathlib\n"
        "root = pathlib.Path(sys.argv[1])\n"
        "for name in ('cells', 'bptt'):\n"
        "    spec = importlib.util.spec_from_file_location(name, root / f'{name}.py')\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print('torch' in sys.modules)\n"
    )
    root = str(__import__("pathlib").Path(ref.__file__).parent)
    out = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- textbook network

def _textbook_problem(seed: int = 0, T: int = 6, F: int = 4, H: int = 5, C: int = 3):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(T, F))
    ys = rng.integers(0, C, size=T)
    params = dict(
        h0=rng.normal(size=H) * 0.5,
        U=rng.normal(size=(H, F)) * 0.5,
        W=rng.normal(size=(H, H)) * 0.5,
        V=rng.normal(size=(C, H)) * 0.5,
        b=rng.normal(size=H) * 0.1,
        c=rng.normal(size=C) * 0.1,
    )
    return xs, ys, params


def test_textbook_bptt_matches_finite_differences():
    xs, ys, p = _textbook_problem()
    loss, cache = textbook.forward(xs, ys, **p)
    grads = textbook.backward(cache)
    for name in ("U", "W", "V", "b", "c", "h0"):
        numeric = textbook.numerical_gradient(lambda: textbook.forward(xs, ys, **p)[0], p[name])
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_textbook_bptt_equals_torch_autograd():
    xs, ys, p = _textbook_problem(seed=1, T=9)
    loss, cache = textbook.forward(xs, ys, **p)
    grads = textbook.backward(cache)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    rnn = rnnkit.RNN(xs.shape[1], p["W"].shape[0], implementation="loop").double()
    cell = rnn.layers[0][0]
    with torch.no_grad():
        cell.bias_hh.zero_()
    out, _ = torch.func.functional_call(
        rnn, {"layers.0.0.weight_ih": t["U"], "layers.0.0.weight_hh": t["W"],
              "layers.0.0.bias_ih": t["b"], "layers.0.0.bias_hh": cell.bias_hh},
        (torch.tensor(xs)[None],), {"state": ((t["h0"][None],),)})
    logits = out[0] @ t["V"].T + t["c"]
    torch_loss = torch.nn.functional.cross_entropy(logits, torch.tensor(ys), reduction="sum")
    torch_loss.backward()
    assert abs(torch_loss.item() - loss) < 1e-10
    for name in ("U", "W", "V", "b", "c", "h0"):
        np.testing.assert_allclose(grads[name], t[name].grad.numpy(), rtol=0, atol=1e-10, err_msg=name)


# ----------------------------------------------------------------------------- cells over a sequence

CELL_CASES = [
    ("elman", dict(activation="tanh"), {}),
    ("elman", dict(activation="relu"), {}),
    ("elman", dict(activation="sigmoid"), {}),
    ("elman", dict(activation="elu"), {}),
    ("leaky", dict(alpha=[0.2, 0.5, 0.9, 1.0, 0.3]), {}),
    ("gru", {}, {}),
    ("lstm", {}, {}),
    ("lstm", dict(peephole=True), {}),
    ("lstm", dict(layer_norm=True), {}),
    ("lstm", dict(peephole=True, layer_norm=True), {}),
]


def _make_cell(kind: str, options: dict, F: int, H: int) -> rnnkit.Cell:
    cls = {"elman": rnnkit.ElmanCell, "leaky": rnnkit.LeakyCell, "gru": rnnkit.GRUCell,
           "lstm": rnnkit.LSTMCell}[kind]
    return cls(F, H, **options).double()


def _reference_params(kind: str, cell: rnnkit.Cell) -> dict:
    n = lambda p: p.detach().numpy().copy()  # noqa: E731
    p = dict(U=n(cell.weight_ih), W=n(cell.weight_hh), b_ih=n(cell.bias_ih), b_hh=n(cell.bias_hh))
    if kind in ("elman", "leaky"):
        p["act"] = cell.activation
        p["alpha"] = n(cell.alpha) if kind == "leaky" else None
    if kind == "lstm":
        p["peephole"] = n(cell.weight_peephole) if cell.peephole else None
        p["ln"] = dict(gain_ih=n(cell.ln_gain_ih), gain_hh=n(cell.ln_gain_hh), gain_c=n(cell.ln_gain_c),
                       shift_c=n(cell.ln_bias_c)) if cell.layer_norm else None
    return p


@pytest.mark.parametrize("impl", ["loop", "fused"])
@pytest.mark.parametrize("kind,options,_", CELL_CASES, ids=lambda v: str(v))
def test_reference_bptt_equals_torch(kind, options, _, impl):
    """Hand-derived BPTT in NumPy == autograd (loop) == rnnkit's fused BPTT, float64, 1e-8."""
    F, H, T = 3, 5, 7
    cell = _make_cell(kind, options, F, H)
    if kind == "lstm" and options.get("layer_norm"):
        with torch.no_grad():  # make the layer-norm parameters non-trivial
            for prm in (cell.ln_gain_ih, cell.ln_gain_hh, cell.ln_gain_c, cell.ln_bias_c):
                prm.add_(torch.randn_like(prm) * 0.3)
    rnn = rnnkit.Recurrent(cell, implementation=impl)
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(T, F))
    state0 = tuple(rng.normal(size=H) * 0.5 for _ in cell.state_size)
    dhs = rng.normal(size=(T, H))
    d_final = tuple(rng.normal(size=H) for _ in cell.state_size)

    hs, final, grads = ref.bptt(kind if kind != "leaky" else "elman", xs, state0, dhs,
                                _reference_params(kind, cell), d_final)

    x = torch.tensor(xs)[None].requires_grad_()
    s0 = tuple(torch.tensor(s)[None].requires_grad_() for s in state0)
    out, (final_t,) = rnn(x, state=(s0,))
    loss = (out[0] * torch.tensor(dhs)).sum() + sum((f[0] * torch.tensor(d)).sum() for f, d in zip(final_t, d_final))
    loss.backward()

    np.testing.assert_allclose(out[0].detach().numpy(), hs, atol=1e-10)
    for f, r in zip(final_t, final):
        np.testing.assert_allclose(f[0].detach().numpy(), r, atol=1e-10)
    np.testing.assert_allclose(x.grad[0].numpy(), grads["x"], atol=1e-8)
    np.testing.assert_allclose(s0[0].grad[0].numpy(), grads["h_0"], atol=1e-8)
    if kind == "lstm":
        np.testing.assert_allclose(s0[1].grad[0].numpy(), grads["c_0"], atol=1e-8)
    by_name = {"U": cell.weight_ih, "W": cell.weight_hh, "b_ih": cell.bias_ih, "b_hh": cell.bias_hh}
    if kind == "lstm" and cell.peephole:
        by_name["peephole"] = cell.weight_peephole
    if kind == "lstm" and cell.layer_norm:
        by_name.update(gain_ih=cell.ln_gain_ih, gain_hh=cell.ln_gain_hh, gain_c=cell.ln_gain_c,
                       shift_c=cell.ln_bias_c)
    for name, prm in by_name.items():
        np.testing.assert_allclose(prm.grad.numpy(), grads[name], atol=1e-8, err_msg=name)


def test_reference_leaky_alpha_gradient():
    """dL/dalpha of the reference equals autograd through the learned time constants."""
    F, H, T = 3, 4, 6
    cell = rnnkit.LeakyCell(F, H, alpha=[0.2, 0.4, 0.6, 0.8], learn_alpha=True).double()
    rng = np.random.default_rng(5)
    xs, dhs = rng.normal(size=(T, F)), rng.normal(size=(T, H))
    p = _reference_params("leaky", cell)
    _, _, grads = ref.bptt("elman", xs, (np.zeros(H),), dhs, p)
    for impl in ("loop", "fused"):
        cell.zero_grad()
        out, _ = rnnkit.Recurrent(cell, implementation=impl)(torch.tensor(xs)[None])
        (out[0] * torch.tensor(dhs)).sum().backward()
        alpha = cell.alpha.detach().numpy()
        # alpha = sigmoid(logit): dL/dlogit = dL/dalpha * alpha (1 - alpha)
        np.testing.assert_allclose(cell.alpha_logit.grad.numpy(), grads["alpha"] * alpha * (1 - alpha), atol=1e-10)


@pytest.mark.parametrize("kind,options,_", CELL_CASES, ids=lambda v: str(v))
def test_reference_step_matches_finite_differences(kind, options, _):
    """The hand-derived step derivative agrees with central differences (the oracle's oracle)."""
    F, H = 3, 5
    cell = _make_cell(kind, options, F, H)
    p = _reference_params(kind, cell)
    rng = np.random.default_rng(7)
    x = rng.normal(size=F)
    state = [rng.normal(size=H) for _ in cell.state_size]
    dh = rng.normal(size=H)
    dc = rng.normal(size=H)
    step, step_backward = {"elman": (ref.elman_step, ref.elman_step_backward),
                           "leaky": (ref.elman_step, ref.elman_step_backward),
                           "gru": (ref.gru_step, ref.gru_step_backward),
                           "lstm": (ref.lstm_step, ref.lstm_step_backward)}[kind]

    def loss() -> float:
        out = step(x, *state, **p)
        value = float(out[0] @ dh)
        if kind == "lstm":
            value += float(out[1] @ dc)
        return value

    out = step(x, *state, **p)
    grads = step_backward(dh, dc, out[-1]) if kind == "lstm" else step_backward(dh, out[-1])
    checks = {"x": x, "h_prev": state[0], "U": p["U"], "W": p["W"], "b_ih": p["b_ih"]}
    if kind == "lstm":
        checks["c_prev"] = state[1]
        if p["peephole"] is not None:
            checks["peephole"] = p["peephole"]
        if p["ln"] is not None:
            checks.update({k: p["ln"][k] for k in ("gain_ih", "gain_hh", "gain_c", "shift_c")})
    for name, arr in checks.items():
        numeric = textbook.numerical_gradient(loss, arr)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)
