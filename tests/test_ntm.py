"""The neural Turing machine: each addressing step against NumPy, gradients, numerical safety, a tiny copy, the task."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.models import NeuralTuringMachine, NeuralTuringMachineConfig, RecurrentBits, RecurrentBitsConfig
from rnnkit.models.ntm import (EPS, circular_shift, content_weights, cosine_similarity, interpolate, read, sharpen,
                               write)
from rnnkit.tasks.algorithmic import copy_problems as sequences
from test_models import roundtrip


def rand(*shape, positive=False):
    x = torch.randn(*shape, dtype=torch.float64)
    return x.abs() + 0.1 if positive else x


# ------------------------------------------------------------------------------ NumPy references, one row at a time


def np_content(key, beta, memory):
    """w(i) = exp(beta cos(k, M(i))) / sum_j exp(beta cos(k, M(j))), one batch entry and head."""
    norm = lambda v: np.sqrt(v @ v + EPS)  # noqa: E731  (the safe norm: a zero vector has cosine 0)
    cos = np.array([key @ row / (norm(key) * norm(row)) for row in memory])
    e = np.exp(beta * cos)
    return e / e.sum()


def test_content_addressing_matches_numpy():
    key, beta, memory = rand(3, 2, 5), rand(3, 2, positive=True), rand(3, 7, 5)
    ours = content_weights(key, beta, memory).numpy()
    for b in range(3):
        for h in range(2):
            np.testing.assert_allclose(ours[b, h], np_content(key[b, h].numpy(), beta[b, h].item(), memory[b].numpy()),
                                       rtol=1e-12)


def test_shift_sharpen_interpolate_read_write_match_numpy():
    w, s = torch.softmax(rand(2, 1, 6), -1), torch.softmax(rand(2, 1, 3), -1)
    shifted = circular_shift(w, s).numpy()
    for b in range(2):
        expected = [sum(w[b, 0, (i - o) % 6].item() * s[b, 0, o + 1].item() for o in (-1, 0, 1)) for i in range(6)]
        np.testing.assert_allclose(shifted[b, 0], expected, rtol=1e-12)
    one_step = torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64)  # all weight on the shift +1
    assert circular_shift(torch.eye(6, dtype=torch.float64)[None, None, 5], one_step)[0, 0, 0] == 1.0  # wraps round

    gamma = 1 + rand(2, 1, positive=True)
    expected = (w.numpy() + EPS) ** gamma.numpy()[..., None]
    np.testing.assert_allclose(sharpen(w, gamma).numpy(), expected / expected.sum(-1, keepdims=True), rtol=1e-12)
    g = torch.sigmoid(rand(2, 1))
    other = torch.softmax(rand(2, 1, 6), -1)
    np.testing.assert_allclose(interpolate(w, other, g).numpy(),
                               g.numpy()[..., None] * w.numpy() + (1 - g.numpy()[..., None]) * other.numpy())

    memory, weights = rand(2, 6, 4), torch.softmax(rand(2, 2, 6), -1)
    erase, add = torch.sigmoid(rand(2, 2, 4)), torch.tanh(rand(2, 2, 4))
    np.testing.assert_allclose(read(memory, weights).numpy(), np.einsum("bhn,bnm->bhm", weights, memory))
    expected = memory.numpy().copy()
    for h in range(2):  # erase with every head, then add with every head
        expected *= 1 - weights.numpy()[:, h, :, None] * erase.numpy()[:, h, None, :]
    for h in range(2):
        expected += weights.numpy()[:, h, :, None] * add.numpy()[:, h, None, :]
    np.testing.assert_allclose(write(memory, weights, erase, add).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("name, fn, inputs", [
    ("cosine", cosine_similarity, lambda: (rand(2, 2, 4), rand(2, 5, 4))),
    ("content", content_weights, lambda: (rand(2, 2, 4), rand(2, 2, positive=True), rand(2, 5, 4))),
    ("interpolate", interpolate, lambda: (torch.softmax(rand(2, 2, 5), -1), torch.softmax(rand(2, 2, 5), -1),
                                          torch.sigmoid(rand(2, 2)))),
    ("shift", circular_shift, lambda: (torch.softmax(rand(2, 2, 5), -1), torch.softmax(rand(2, 2, 3), -1))),
    ("sharpen", sharpen, lambda: (torch.softmax(rand(2, 2, 5), -1), 1 + rand(2, 2, positive=True))),
    ("read", read, lambda: (rand(2, 5, 4), torch.softmax(rand(2, 2, 5), -1))),
    ("write", write, lambda: (rand(2, 5, 4), torch.softmax(rand(2, 2, 5), -1), torch.sigmoid(rand(2, 2, 4)),
                              torch.tanh(rand(2, 2, 4)))),
])
def test_every_addressing_step_gradchecks(name, fn, inputs):
    torch.manual_seed(0)
    args = tuple(x.detach().requires_grad_() for x in inputs())
    assert torch.autograd.gradcheck(fn, args), name


@pytest.mark.parametrize("controller", ["lstm", "feedforward"])
def test_whole_machine_gradchecks(controller):
    torch.manual_seed(0)
    model = NeuralTuringMachine(NeuralTuringMachineConfig(3, 2, controller=controller, controller_size=4,
                                                          memory_size=5, memory_width=3, read_heads=2,
                                                          write_heads=2)).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,))


def test_zero_keys_and_zero_memory_rows_give_no_nan():
    key, memory = torch.zeros(1, 1, 4, requires_grad=True), torch.zeros(1, 5, 4, requires_grad=True)
    beta = torch.ones(1, 1, requires_grad=True)
    w = content_weights(key, beta, memory)
    torch.testing.assert_close(w, torch.full((1, 1, 5), 0.2))  # no information: uniform
    gamma = torch.full((1, 1), 3.0, requires_grad=True)
    sharp = sharpen(torch.tensor([[[1.0, 0.0, 0.0, 0.0, 0.0]]], requires_grad=True), gamma)
    (w.sum() + sharp[0, 0, 0]).backward()
    for t in (key, memory, beta, gamma):
        assert torch.isfinite(t.grad).all()
    model = NeuralTuringMachine(NeuralTuringMachineConfig(9, 8, memory_size=8, memory_width=4))
    batch = sequences(np.random.default_rng(0), 2, 3, 8)
    batch["input"].zero_()  # nothing but zeros in: zero keys against a nearly zero memory
    loss = model.loss(batch).value
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("make, steps, batch, longest", [
    # about 10 s (measured: no bit wrong from step 1,300 on)
    (lambda: NeuralTuringMachine(NeuralTuringMachineConfig(5, 4, controller_size=32, memory_size=8, memory_width=8)),
     1300, 16, 3),
    # the machine's baseline, about 2 s
    (lambda: RecurrentBits(RecurrentBitsConfig(5, 4, {"cell": "lstm", "hidden_size": 32})), 800, 32, 2),
], ids=["ntm", "lstm-baseline"])
def test_a_tiny_copy_is_learnt_in_seconds_and_reloads(tmp_path, make, steps, batch, longest):
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        loss = model.loss(sequences(rng, batch, int(rng.integers(1, longest + 1)), 4)).value
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = sequences(np.random.default_rng(1), 64, longest, 4)
    assert float(model.bits_wrong(test).float().mean()) < 0.1  # of 4 x longest bits
    torch.testing.assert_close(roundtrip(model, tmp_path)(test["input"]), model(test["input"]), rtol=0, atol=0)


@pytest.mark.parametrize("config, message", [
    ({"memory_size": 0}, "memory_size must be an integer in"),
    ({"memory_width": 10**6}, "memory_width must be an integer in"),
    ({"read_heads": 1.5}, "read_heads must be an integer"),
    ({"memory_size": 2, "shift_range": 1}, "shift_range must be an integer >= 0 with 2R"),
    ({"controller": "gru"}, "controller must be one of"),
])
def test_bad_machine_configs_give_clear_errors(config, message):
    with pytest.raises(ValueError, match=message):
        NeuralTuringMachine(NeuralTuringMachineConfig(9, 8, **config))


def test_bad_copy_batches_give_clear_errors():
    model = NeuralTuringMachine(NeuralTuringMachineConfig(9, 8, memory_size=8))
    batch = sequences(np.random.default_rng(0), 2, 3, 8)
    with pytest.raises(ValueError, match=r"x must be \(batch, steps, 9\)"):
        model(batch["input"][..., :5])
    with pytest.raises(ValueError, match="target must be 8 bits per step"):
        model.loss({"input": batch["input"], "target": batch["target"][..., :3]})
    with pytest.raises(ValueError, match=r"target must be \(batch 2, answer steps <= 7"):
        model.loss({"input": batch["input"], "target": torch.zeros(2, 9, 8)})


def test_copy_task_trains_both_models_and_evaluates(tmp_path, capsys):
    common = ["--memory-size", "16", "--memory-width", "4", "--controller-size", "8", "--max-steps", "3",
              "--no-progress", "--device", "cpu"]
    assert main(["train", "copy", "--runs", str(tmp_path / "ntm"), *common]) == 0
    assert main(["train", "copy", "--model", "lstm", "--runs", str(tmp_path / "lstm"), *common]) == 0
    (ntm,), (lstm,) = (tmp_path / "ntm").iterdir(), (tmp_path / "lstm").iterdir()
    assert (ntm / "plots" / "weightings.png").read_bytes()[:4] == b"\x89PNG"
    results = {name: json.loads((run / "results.json").read_text())["test"] for name, run in
               (("ntm", ntm), ("lstm", lstm))}
    assert results["lstm"]["parameters"] >= results["ntm"]["parameters"]  # the baseline is at least as big
    assert rnnkit.load(lstm).config.rnn == {"cell": "lstm", "hidden_size": 256, "num_layers": 3}  # Graves et al.'s
    assert json.loads((ntm / "task.json").read_text())["args"]["controller"] == "feedforward"
    capsys.readouterr()
    assert main(["evaluate", str(ntm), "--split", "test", "--json", "--no-progress"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert all(0 <= scores[f"bits_wrong_{n}"] <= 8 * n for n in (20, 40, 80, 120))


def test_the_weightings_picture_draws_a_wrapping_path_as_one_arc():
    from rnnkit.plots import _visited_rows

    visited = np.zeros(128, bool)
    visited[[0, 127, 126, 100, 88]] = True  # a head moving backwards from row 0, wrapping to 127
    rows = _visited_rows(visited)
    assert rows[0] == 86 and rows[-1] == 2 and len(rows) == 45  # 88..127, 0, and two rows each side
    assert _visited_rows(np.zeros(10, bool)) == list(range(10))


def test_recall_problems_ask_for_the_item_after_the_query():
    from rnnkit.tasks.algorithmic import recall_problems

    batch = recall_problems(np.random.default_rng(0), 50, 5, 6)
    x, y = batch["input"].numpy(), batch["target"].numpy()
    assert x.shape == (50, 28, 8) and y.shape == (50, 3, 6)
    for b in range(50):
        items = [x[b, 4 * k + 1:4 * k + 4, :6] for k in range(5)]
        assert all(x[b, 4 * k, 6] == 1 for k in range(5)) and x[b, 20, 7] == x[b, 24, 7] == 1
        query = x[b, 21:24, :6]
        k = next(k for k, item in enumerate(items[:-1]) if (item == query).all())  # an oracle: look it up
        assert (y[b] == items[k + 1]).all()
        assert not x[b, 25:].any()  # nothing comes in while the answer is due


def test_recall_task_trains_evaluates_and_checks_its_sizes(tmp_path, capsys):
    common = ["--memory-size", "16", "--memory-width", "4", "--controller-size", "8", "--max-steps", "3",
              "--no-progress", "--device", "cpu", "--runs", str(tmp_path)]
    assert main(["train", "recall", *common]) == 0
    (run,) = tmp_path.iterdir()
    test = json.loads((run / "results.json").read_text())["test"]
    assert all(0 <= test[f"bits_wrong_{n}"] <= 18 for n in (6, 9, 12, 15))
    assert (run / "plots" / "weightings.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["train", "recall", "--max-items", "1", *common]) == 2
    assert "--max-items must be at least 2. Received: 1" in capsys.readouterr().err

