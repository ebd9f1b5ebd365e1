"""rnnkit demo: the API in process (Starlette's TestClient), and the page end to end in headless
Chromium (conftest.demo_page). The other kinds' tests sit with their tasks (test_speech,
test_tagging, test_translation), next to the runs they use."""

from __future__ import annotations

import json

import pytest
import torch

import rnnkit
from conftest import demo_client, demo_page
from rnnkit.cli import main

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 40


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    (root / "austen.txt").write_text(TEXT)
    assert main(["train", "charlm", "--text", str(root / "austen.txt"), "--max-steps", "40", "--hidden", "32",
                 "--layers", "1", "--embedding", "16", "--batch-size", "8", "--bptt", "20", "--eval-every", "20",
                 "--samples", "0", "--no-progress", "--logger", "none", "--runs", str(root / "runs")]) == 0
    return next((root / "runs").iterdir())


def events(response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.text.split("\n\n") if line.startswith("data: ")]


def test_generation_streams_the_models_own_text(lm_run):
    client = demo_client(lm_run)
    assert client.get("/api/runs").json() == [{"name": lm_run.name, "kind": "generate", "path": str(lm_run)}]
    assert "rnnkit demo" in client.get("/").text
    response = client.post("/api/run/0", json={"prompt": "It is", "temperature": 0.5, "length": 60, "seed": 3})
    assert response.headers["content-type"].startswith("text/event-stream")
    got = events(response)
    assert got[-1] == {"done": True} and len(got) > 10
    model = rnnkit.load(lm_run).eval()
    expected = model.generate_text("It is", 60, temperature=0.5, top_k=None, generator=torch.Generator().manual_seed(3))
    assert "It is" + "".join(e["piece"] for e in got[:-1]) == expected


@pytest.mark.parametrize("body, message", [
    ({"prompt": "It", "temperature": 0}, "temperature: expected a value in [0.05, 5.0]. Received: 0.0"),
    ({"prompt": "It", "length": "many"}, "length: expected a number. Received: 'many'"),
    ({"prompt": "It", "length": 10**6}, "length: expected a value in [1, 2000]"),
])
def test_bad_requests_get_a_message_not_a_traceback(lm_run, body, message):
    client = demo_client(lm_run)
    response = client.post("/api/run/0", json=body)
    assert response.status_code == 400 and message in response.json()["error"]
    assert client.post("/api/run/7", json={}).status_code == 404
    assert client.post("/api/run/0", content=b"not json").json() == {"error": "the request is not JSON"}


def test_a_run_the_demo_cannot_show_is_one_clear_error(tmp_path, capsys):
    from rnnkit.models.regressor import SequenceRegressor, SequenceRegressorConfig

    SequenceRegressor(SequenceRegressorConfig(input_size=1, output_size=1)).save(tmp_path / "m")
    assert main(["demo", str(tmp_path / "m")]) == 2
    assert "holds a SequenceRegressor; the demo shows language models" in capsys.readouterr().err


def test_a_port_in_use_is_one_clear_error(lm_run, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", str(lm_run), "--port", str(port)]) == 2
    assert f"--port {port}: cannot listen on 127.0.0.1:{port} (Address already in use)" in capsys.readouterr().err


# ----------------------------------------------------------------------------- in a real browser


def test_the_page_streams_generated_text_in_chromium(lm_run, tmp_path):
    with demo_page(lm_run) as page:
        page.wait_for_selector("#run-0[data-kind=generate]")
        page.fill("#prompt-0", "It is a")
        page.fill("#length-0", "80")
        page.fill("#seed-0", "1")
        page.click("#go-0")
        page.wait_for_function("document.getElementById('status-0').textContent === 'done'", timeout=30000)
        text = page.text_content("#output-0")
        page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
    model = rnnkit.load(lm_run).eval()
    assert text == model.generate_text("It is a", 80, temperature=0.8, top_k=None,
                                       generator=torch.Generator().manual_seed(1))
    assert (tmp_path / "demo.png").stat().st_size > 5000
