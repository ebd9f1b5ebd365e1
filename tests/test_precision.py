"""--precision (rnnkit.precision): bf16 autocast on every recurrent path, float32 recurrence and
CTC, loss scaling that resumes exactly, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from rnnkit.ctc import ctc_loss
from rnnkit.data import StreamBatches
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.precision import autocast
from rnnkit.run_dir import RunDir
from rnnkit.train import StoppingConfig, TrainConfig, Trainer
from rnnkit.train import trainer as trainer_module

CPU = torch.device("cpu")


def model(rnn: dict) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(LanguageModelConfig(vocab_size=11, embedding_size=16, rnn={"hidden_size": 16, **rnn}))


@pytest.mark.parametrize("rnn, path", [({"cell": "lstm"}, "native"), ({"cell": "gru"}, "compiled"),
                                       ({"cell": "rnn"}, "compiled"), ({"cell": "lstm", "layer_norm": True}, "compiled"),
                                       ({"cell": "lstm", "skip_delay": 2}, "loop"),
                                       ({"cell": "gru", "bidirectional": True, "num_layers": 2}, "compiled")])
def test_bf16_forward_and_backward_on_every_path(rnn, path):
    m = model(rnn)
    assert m.rnn.paths(CPU, training=True)[0].path == path
    batch = {"input": torch.randint(0, 11, (4, 9)), "target": torch.randint(0, 11, (4, 9)),
             "lengths": torch.tensor([9, 7, 5, 1])}
    full = m.loss(batch).value.detach()
    with autocast("bf16", CPU):
        low = m.loss(batch)
    low.value.backward()
    assert low.value.dtype == torch.float32 and abs(float(low.value.detach()) - float(full)) < 0.05
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in m.parameters())


def test_the_fused_recurrence_stays_float32_under_autocast():
    """Only the input projection U x_t + b is rounded to bfloat16; h_t is carried in float32, so
    the error does not grow along a long sequence."""
    from rnnkit import GRU

    torch.manual_seed(0)
    layer = GRU(8, 16)
    assert layer.paths(CPU, training=True)[0].path == "compiled"
    x = torch.randn(3, 300, 8)
    with autocast("bf16", CPU):
        out, (final,) = layer(x)
    reference, _ = layer(x)
    assert out.dtype == final[0].dtype == torch.float32
    error = (out - reference).detach().abs().amax(dim=(0, 2))
    assert float(error.max()) < 0.03 and float(error[-50:].mean()) < 3 * float(error[:50].mean()) + 1e-3


def test_ctc_takes_low_precision_log_probs_in_float32():
    torch.manual_seed(0)
    logits = torch.randn(2, 20, 5)
    targets, lengths = torch.tensor([[1, 2, 2], [3, 4, 0]]), ([20, 15], [3, 2])
    low = logits.to(torch.bfloat16).log_softmax(-1).requires_grad_()
    loss = ctc_loss(low, targets, *lengths)
    loss.backward()
    assert loss.dtype == torch.float32 and low.grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss, ctc_loss(low.detach().float(), targets, *lengths))


def fit(run: RunDir, steps: int, precision: str, resume: bool = False, cell: str = "lstm") -> Trainer:
    m = model({"cell": cell})
    data = StreamBatches(torch.arange(600) % 11, 4, 10)
    config = TrainConfig(stopping=StoppingConfig(max_steps=steps), checkpoint_every=3, eval_every=3, log_every=1,
                         precision=precision, clip_norm=1.0)
    trainer = Trainer(m, data, config, valid=StreamBatches(torch.arange(200) % 11, 2, 10), run_dir=run, resume=resume,
                      progress=False, logger="none")
    trainer.fit()
    return trainer


def test_bf16_training_carries_state_and_learns(tmp_path):
    """A token stream carries the (bfloat16) state from chunk to chunk, in training and in the
    dev passes; the loss falls as float32's does."""
    low, full = fit(RunDir(tmp_path / "bf16"), 12, "bf16"), fit(RunDir(tmp_path / "32"), 12, "32")
    for t in (low, full):
        losses = [r["loss"] for r in t.history if r["split"] == "valid"]
        assert losses[-1] < losses[0]
    assert abs(low.history[-1]["loss"] - full.history[-1]["loss"]) < 0.05
    assert all(p.dtype == torch.float32 for p in low.model.parameters())


def test_loss_scaling_is_saved_and_resumed(tmp_path, monkeypatch):
    """16-mixed needs CUDA; its loss scaling is exercised here with the CPU's float16 autocast
    and GradScaler (on rnnkit's GRU: oneDNN has no float16 LSTM on the CPU): the scaler's state
    is in every checkpoint, and a killed run resumes to the uninterrupted run's weights."""
    import shutil

    monkeypatch.setattr(trainer_module, "check_precision", lambda precision, device: None)
    whole = fit(RunDir(tmp_path / "whole"), 9, "16-mixed", cell="gru")
    state = json.loads((RunDir(tmp_path / "whole").checkpoint(9).path / "trainer.json").read_text())["scaler"]
    assert state["scale"] == 65536.0 and state["_growth_tracker"] == 9
    killed = RunDir(tmp_path / "killed")
    fit(killed, 9, "16-mixed", cell="gru")
    shutil.rmtree(killed.checkpoint(9).path)
    resumed = fit(killed, 9, "16-mixed", resume=True, cell="gru")
    assert resumed.scaler.state_dict()["_growth_tracker"] == 9
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_precision_mistakes_are_clear(capsys):
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="'16-mixed' .* needs a CUDA device; on cpu use 'bf16' or '32'"):
        Trainer(model({"cell": "gru"}), StreamBatches(torch.arange(100) % 11, 2, 5),
                TrainConfig(stopping=StoppingConfig(max_steps=1), precision="16-mixed"))
    from rnnkit.cli import main

    assert main(["train", "charlm", "--precision", "16-mixed", "--max-steps", "1", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "16-mixed"
