"""Shared test helpers."""

from __future__ import annotations

import copy

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_and_grad(module: torch.nn.Module, x: torch.Tensor, lengths=None, state=None, impl=None):
    """Outputs, final state and gradients (of x and every parameter) of a weighted loss."""
    m = copy.deepcopy(module)
    if impl is not None:
        m.implementation = impl
    x = x.detach().clone().requires_grad_()
    out, final = m(x, lengths, state)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view(out.shape)
    loss = (out * w).sum() + sum((s * s).sum() * 0.5 for f in final for s in f)
    loss.backward()
    grads = {"x": x.grad, **{n: p.grad for n, p in m.named_parameters()}}
    return out, final, grads


def assert_same(a, b, atol: float, rtol: float = 0.0):
    """Outputs, final states and gradients of two run_and_grad results agree."""
    (oa, fa, ga), (ob, fb, gb) = a, b
    torch.testing.assert_close(oa, ob, atol=atol, rtol=rtol)
    for sa, sb in zip(fa, fb):
        for ta, tb in zip(sa, sb):
            torch.testing.assert_close(ta, tb, atol=atol, rtol=rtol)
    assert ga.keys() == gb.keys()
    for k in ga:
        if ga[k] is None or gb[k] is None:
            assert ga[k] is None and gb[k] is None, k
            continue
        torch.testing.assert_close(ga[k], gb[k], atol=atol, rtol=rtol, msg=lambda m: f"grad {k}: {m}")


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch):
    """make(name, {file: text}) -> data root: writes a small stand-in for a registered dataset under
    tmp_path/data and registers its checksums for this test only (a copy counts only when verified)."""
    import hashlib

    from rnnkit.data import registry

    def make(name: str, files: dict[str, str]):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        entries = []
        for file, text in files.items():
            (folder / file).write_text(text)
            entries.append(registry.DataFile(file, f"https://example.invalid/{name}/{file}",
                                             hashlib.sha256(text.encode()).hexdigest()))
        monkeypatch.setitem(registry.DATASETS, name, registry.Dataset(name, "stand-in for a test", tuple(entries)))
        return tmp_path / "data"

    return make
