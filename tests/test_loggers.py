"""Run logging (rnnkit.train.loggers): TensorBoard event files read back, resume, outputs, errors."""

from __future__ import annotations

import shutil

import matplotlib
import numpy as np
import pytest
import torch

from rnnkit.data import StreamBatches
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.run_dir import RunDir, read_metrics
from rnnkit.train import StoppingConfig, TrainConfig, Trainer
from rnnkit.train import loggers
from rnnkit.train.loggers import RunLogger, log_outputs

pytest.importorskip("tensorboard", reason="the tensorboard package is part of rnnkit[dev]")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def events(run: RunDir) -> EventAccumulator:
    return EventAccumulator(str(run.path / "tensorboard"),
                            size_guidance={"scalars": 0, "images": 0, "audio": 0, "tensors": 0}).Reload()


def fit(run: RunDir, steps: int, resume: bool = False, logger: str | RunLogger = "auto") -> None:
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=8, rnn={"cell": "gru", "hidden_size": 8}))
    data = StreamBatches(torch.arange(400) % 5, 4, 10)
    config = TrainConfig(stopping=StoppingConfig(max_steps=steps), checkpoint_every=3, eval_every=3, log_every=1)
    Trainer(model, data, config, valid=StreamBatches(torch.arange(100) % 5, 2, 10), run_dir=run, resume=resume,
            progress=False, logger=logger).fit()


def test_event_file_holds_every_metrics_record(tmp_path):
    run = RunDir(tmp_path / "run")
    fit(run, 6)
    records = read_metrics(run.metrics)
    acc = events(run)
    for split in ("train", "valid"):
        expected = [(r["step"], r["loss"]) for r in records if r["split"] == split]
        got = [(e.step, e.value) for e in acc.Scalars(f"{split}/loss")]
        assert [s for s, _ in got] == [s for s, _ in expected] and len(got) == (6 if split == "train" else 2)
        np.testing.assert_allclose([v for _, v in got], [v for _, v in expected], rtol=1e-6)
    assert {"train/lr", "train/grad_norm", "valid/ppl"} <= set(acc.Tags()["scalars"])


def test_a_resumed_run_logs_each_step_once(tmp_path):
    """A kill after step 6 was logged but before it was saved: the resumed run hides the lost
    session's steps 4-6 and logs them again, as metrics.jsonl does."""
    run = RunDir(tmp_path / "run")
    fit(run, 6)
    shutil.rmtree(run.checkpoint(6).path)
    fit(run, 9, resume=True)
    steps = [e.step for e in events(run).Scalars("train/loss")]
    assert steps == list(range(1, 10))
    assert [r["step"] for r in read_metrics(run.metrics) if r["split"] == "train"] == steps


def test_outputs_become_images_text_and_audio(tmp_path):
    pytest.importorskip("soundfile", reason="the audio extra (rnnkit[audio]) writes the test's WAV file")
    from rnnkit.audio import write_audio

    run = RunDir(tmp_path)
    run.plots.mkdir(parents=True)
    run.samples.mkdir()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.figure(figsize=(2, 1)).savefig(run.plots / "picture.png")
    plt.close("all")
    (run.samples / "sample_1.txt").write_text("ROMEO: but soft")
    write_audio(run.samples / "utterance.wav", np.sin(np.arange(800) / 5.0) * 0.5, 8000)
    run.results.write_text('{"wer": 0.02}')
    assert log_outputs("tensorboard", run) == 4
    acc = events(run)
    assert acc.Tags()["images"] == ["plots/picture"]
    assert acc.Tags()["audio"] == ["samples/utterance"]
    assert acc.Audio("samples/utterance")[0].sample_rate == 8000
    text = acc.Tensors("samples/sample_1/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "ROMEO: but soft" in text


def test_a_logger_of_your_own_and_none(tmp_path):
    class Recorder(RunLogger):
        def __init__(self) -> None:
            self.seen: list[tuple[str, int]] = []
            self.closed = False

        def scalars(self, split, step, values):
            self.seen.append((split, step))

        def close(self):
            self.closed = True

    recorder = Recorder()
    fit(RunDir(tmp_path / "own"), 3, logger=recorder)
    assert recorder.seen == [("train", 1), ("train", 2), ("train", 3), ("valid", 3)] and recorder.closed
    fit(RunDir(tmp_path / "none"), 3, logger="none")
    assert not (tmp_path / "none" / "tensorboard").exists()


def test_asking_for_a_missing_logger_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(loggers, "_installed", lambda module: False)
    with pytest.raises(ImportError, match=r"pip install 'rnnkit\[tensorboard\]'"):
        fit(RunDir(tmp_path / "a"), 3, logger="tensorboard")
    fit(RunDir(tmp_path / "b"), 3)  # auto: nothing, quietly
    assert not (tmp_path / "b" / "tensorboard").exists()
    with pytest.raises(ValueError, match="logger must be one of"):
        fit(RunDir(tmp_path / "c"), 3, logger="mlflow")


def test_wandb_gets_one_run_per_rnnkit_run(tmp_path, monkeypatch):
    """Against a stand-in for the wandb package (its documented calls: init, log with a step,
    Image, Audio, Html, finish); one real offline run is described in the README."""
    import sys
    import types

    calls = []

    class Run:
        def log(self, values, step):
            calls.append(("log", sorted(values), step))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(("init", kw["id"], kw["resume"])) or Run()
    fake.Image = fake.Audio = fake.Html = lambda value: value
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr(loggers, "_installed", lambda module: True)
    run = RunDir(tmp_path / "charlm-1")
    fit(run, 3, logger="wandb")
    run.results.write_text("{}")
    assert log_outputs("wandb", run) == 1
    assert calls[0] == ("init", "charlm-1", "allow") and calls[-1] == ("finish",)
    assert ("log", ["valid/eval_seconds", "valid/loss", "valid/ppl"], 3) in calls
    assert ("log", ["results"], 3) in calls and calls.count(("finish",)) == 2
