"""Shared test helpers."""

from __future__ import annotations

import contextlib
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


def stand_in_dataset(monkeypatch: pytest.MonkeyPatch, root, name: str, files: dict[str, str | bytes]):
    """Write a small stand-in for the registered dataset ``name`` under root/name and register its
    checksums through ``monkeypatch`` (a copy counts only when verified); returns ``root``."""
    import hashlib

    from rnnkit.data import registry

    entries = []
    for file, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (root / name / file).parent.mkdir(parents=True, exist_ok=True)
        (root / name / file).write_bytes(data)
        entries.append(registry.DataFile(file, f"https://example.invalid/{name}/{file}", hashlib.sha256(data).hexdigest()))
    monkeypatch.setitem(registry.DATASETS, name, registry.Dataset(name, "stand-in for a test", tuple(entries)))
    return root


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch):
    """make(name, {file: text}) -> data root: a stand-in for a registered dataset under
    tmp_path/data, registered for this test only (see :func:`stand_in_dataset`)."""
    return lambda name, files: stand_in_dataset(monkeypatch, tmp_path / "data", name, files)


def demo_client(*paths):
    """Starlette's TestClient on the page of ``rnnkit demo`` for these runs (rnnkit.demo)."""
    from starlette.testclient import TestClient

    from rnnkit.demo import build_app, load_run

    return TestClient(build_app([load_run(p) for p in paths]))


CHROMIUM = "/usr/bin/chromium"
#: headless on a closed network (no background connections that would be refused), with a fake
#: microphone that the page may use without asking
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
                  "--use-fake-ui-for-media-stream"]


def chromium() -> str:
    """Debian's chromium, installed now when missing and this process may (root with apt-get);
    else the calling test is skipped with the reason."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    if Path(CHROMIUM).is_file():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("no /usr/bin/chromium, and this user cannot install Debian's chromium package (needs root and apt-get)")
    done = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                          shell=True, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not Path(CHROMIUM).is_file():
        pytest.skip(f"could not install Debian's chromium package: {(done.stderr or done.stdout)[-300:]}")
    return CHROMIUM


@contextlib.contextmanager
def demo_page(*runs):
    """`rnnkit demo RUNS` on a free port of 127.0.0.1, and its page loaded in headless Chromium
    (driven by Playwright, which downloads nothing: it starts Debian's chromium)."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    path = chromium()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "rnnkit", "demo", *map(str, runs), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.1)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
            page = browser.new_page()
            page.goto(url)
            yield page
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
