"""The training engine: exact resume after kill -9, data parallelism, checkpoints, schedules."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit
from rnnkit.files import write_manifest
from rnnkit.data import SequenceBatches, StreamBatches
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.train import (LRSchedule, OptimizerConfig, ScheduleConfig, StoppingConfig, TrainConfig, Trainer, evaluate,
                          teacher_forcing_ratio)
from rnnkit.run_dir import RunDir

JOB = Path(__file__).with_name("train_job.py")


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(JOB), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(RunDir(run_dir).checkpoints()[-1].path / "model.safetensors"))


def test_killed_run_resumes_to_the_same_weights_bit_for_bit(tmp_path):
    whole = _run(str(tmp_path / "whole"), "--steps", "20")
    assert whole.returncode == 0, whole.stderr
    killed = _run(str(tmp_path / "cut"), "--steps", "20", "--kill-at", "11")
    assert killed.returncode == -9, "the job died by SIGKILL"
    assert [c.path.name for c in RunDir(tmp_path / "cut").checkpoints()][-1] == "step-00000009"
    resumed = _run(str(tmp_path / "cut"), "--steps", "20", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = _final_weights(tmp_path / "whole"), _final_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the records the killed run wrote after its last checkpoint are not duplicated by the resumed run
    steps = [(r["split"], r["step"]) for r in map(json.loads, (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines())]
    whole_steps = [(r["split"], r["step"]) for r in map(json.loads, (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines())]
    assert steps == whole_steps


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import torch, train_job\n"
        "t = train_job.build(sys.argv[1], False, 6)\n"
        "t.model.drop.p = 0.0  # dropout draws different masks in each process\n"
        "t.fit()\n" % str(JOB.parent)
    )
    script = tmp_path / "job.py"
    script.write_text(code)
    torchrun = Path(sys.executable).with_name("torchrun")
    two = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = _final_weights(tmp_path / "one"), _final_weights(tmp_path / "two")
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    assert json.loads((tmp_path / "one" / "config.json").read_text())["world_size"] == 1


# ----------------------------------------------------------------------------- checkpoints

def _tiny_run(tmp_path) -> Path:
    vocab_size, ids = 5, torch.randint(0, 5, (400,))
    model = LanguageModel(LanguageModelConfig(vocab_size=vocab_size, embedding_size=8,
                                              rnn={"cell": "gru", "hidden_size": 8}))
    Trainer(model, StreamBatches(ids, 4, 10), TrainConfig(stopping=StoppingConfig(max_steps=4), checkpoint_every=2), run_dir=tmp_path,
            progress=False).fit()
    return RunDir(tmp_path).checkpoints()[-1].path


def test_finish_ends_the_process_group(tmp_path, monkeypatch):
    """rnnkit.train.distributed.finish (called by `rnnkit train` after the task's training on
    every process) destroys the group, so gloo's threads are stopped before the interpreter exits."""
    import torch.distributed as dist

    from rnnkit.train import distributed

    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    assert dist.is_initialized()
    distributed.finish()
    assert not dist.is_initialized()
    distributed.finish()  # without a group: nothing to do


def test_checkpoint_loads_as_a_model_and_bad_ones_are_refused(tmp_path):
    path = _tiny_run(tmp_path)
    model = rnnkit.load(path)
    assert isinstance(model, LanguageModel)
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ValueError, match="model.safetensors was altered or damaged after it was saved"):
        rnnkit.load(path)
    (path / "manifest.json").unlink()  # as in a directory of rnnkit 0.1: the file itself is checked
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        rnnkit.load(path)
    weights.write_bytes(pickle.dumps({"weight": torch.zeros(3)}))  # a pickle in disguise
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        rnnkit.load(path)
    tampered = bytearray(data)
    tampered[10:20] = b"\xff" * 10  # a damaged header
    weights.write_bytes(bytes(tampered))
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        rnnkit.load(path)
    (path / "config.json").write_text('{"format": "rnnkit-model", "class": "Nope", "config": {}}')
    with pytest.raises(ValueError, match="unknown model class 'Nope'"):
        rnnkit.load(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an rnnkit model directory"):
        rnnkit.load(tmp_path / "empty")


def test_training_time_adds_up_over_resumed_sessions(tmp_path):
    last = _tiny_run(tmp_path)
    state = json.loads((last / "trainer.json").read_text())
    assert 0 < state["seconds"] < 60
    state["seconds"] = 1000.0  # as if the first session had taken 1000 s
    (last / "trainer.json").write_text(json.dumps(state))
    write_manifest(last)
    model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=8, rnn={"cell": "gru", "hidden_size": 8}))
    started = time.time()
    result = Trainer(model, StreamBatches(torch.randint(0, 5, (400,)), 4, 10), TrainConfig(stopping=StoppingConfig(max_steps=6)),
                     run_dir=tmp_path, resume=True, progress=False).fit()
    assert result["step"] == 6
    assert 1000.0 < result["seconds"] <= 1000.0 + time.time() - started


def test_keep_last_and_no_temporary_directories(tmp_path):
    _tiny_run(tmp_path)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000002", "step-00000004"]


def test_nothing_calls_torch_load_without_weights_only():
    src = Path(rnnkit.__file__).parent
    for path in src.rglob("*.py"):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}:{lineno}: {line.strip()}"


# ----------------------------------------------------------------------------- loop details

def test_gradient_accumulation_equals_one_big_batch():
    torch.manual_seed(0)
    items = [torch.randint(0, 6, (7,)) for _ in range(8)]
    collate = lambda xs: {"input": torch.stack(xs)[:, :-1], "target": torch.stack(xs)[:, 1:]}  # noqa: E731

    def final(batch_size, accumulate):
        torch.manual_seed(1)
        model = LanguageModel(LanguageModelConfig(vocab_size=6, embedding_size=4, rnn={"cell": "rnn", "hidden_size": 5}))
        Trainer(model, SequenceBatches(items, batch_size, collate, shuffle=False),
                TrainConfig(OptimizerConfig("sgd", lr=0.5), stopping=StoppingConfig(max_steps=3), accumulate=accumulate), progress=False).fit()
        return model.decoder.weight.detach().clone()

    torch.testing.assert_close(final(8, 1), final(4, 2), atol=1e-6, rtol=1e-6)


def test_clipping_logs_the_norm_before_clipping():
    ids = torch.randint(0, 5, (300,))
    model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=4, rnn={"cell": "lstm", "hidden_size": 4}))
    trainer = Trainer(model, StreamBatches(ids, 2, 10), TrainConfig(OptimizerConfig("sgd", lr=0.1),
                                                                   stopping=StoppingConfig(max_steps=3), clip_norm=1e-3,
                                                                   log_every=1), progress=False)
    trainer.fit()
    assert all(h["grad_norm"] > 1e-3 for h in trainer.history if h["split"] == "train")


def test_stream_batches_layout_and_resume():
    tokens = torch.arange(25)
    b = StreamBatches(tokens, 4, 2)
    first = next(iter(b))
    assert first["input"].tolist() == [[0, 1], [6, 7], [12, 13], [18, 19]]
    assert first["target"].tolist() == [[1, 2], [7, 8], [13, 14], [19, 20]]
    assert first["new_stream"]
    state = b.state_dict()
    rest = [x["input"].tolist() for x in b]
    b.load_state_dict(state)
    assert [x["input"].tolist() for x in b] == rest
    r = StreamBatches(torch.arange(2000), 2, 30, random_length=True, seed=1)
    lengths = [x["input"].shape[1] for x in r]
    assert len(set(lengths)) > 3 and min(lengths) >= 5
    assert lengths == [x["input"].shape[1] for x in StreamBatches(torch.arange(2000), 2, 30, random_length=True, seed=1)]


def test_sequence_batches_shuffle_per_epoch_and_resume():
    b = SequenceBatches(list(range(10)), 3, lambda xs: {"input": torch.tensor(xs)}, seed=4)
    e0 = [x["input"].tolist() for x in b]
    e1 = [x["input"].tolist() for x in b]
    assert e0 != e1 and sorted(sum(e0, [])) == list(range(10)) and len(e0) == 4
    b.load_state_dict({"epoch": 1, "position": 2})
    assert [x["input"].tolist() for x in b] == e1[2:]


def test_lr_schedules():
    step = LRSchedule(ScheduleConfig("step", decay_start=4, decay_factor=0.5), base_lr=1.0)
    assert [step.lr(0, e) for e in range(7)] == [1, 1, 1, 1, 0.5, 0.25, 0.125]  # 4 epochs at the full rate
    cos = LRSchedule(ScheduleConfig("cosine", warmup_steps=10), base_lr=1.0, total_steps=110)
    assert cos.lr(0, 0) == pytest.approx(0.1) and cos.lr(9, 0) == pytest.approx(1.0)
    assert cos.lr(60, 0) == pytest.approx(0.5) and cos.lr(110, 0) == pytest.approx(0.0)
    plateau = LRSchedule(ScheduleConfig("plateau", patience=1, plateau_factor=0.1), base_lr=1.0)
    for metric in (5.0, 4.0, 4.5, 4.4):
        plateau.evaluated(metric)
    assert plateau.lr(0, 0) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule.kind must be one of"):
        LRSchedule(ScheduleConfig("linear"))


def _torch_lrs(scheduler_of, steps: int, epoch_of=lambda step: 0, metrics=None) -> list[float]:
    """The lr torch.optim.lr_scheduler gives at each of ``steps`` steps (an oracle)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = scheduler_of(optimizer)
    out = []
    for i in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(metrics[i]) if metrics is not None else scheduler.step()
    return out


def test_lr_schedules_equal_torchs_schedulers():
    """rnnkit's schedules are functions of (step, epoch) (plus plateau's small state), so a
    checkpoint resumes them exactly; each equals torch.optim.lr_scheduler's counterpart."""
    from torch.optim import lr_scheduler as S

    step = LRSchedule(ScheduleConfig("step", decay_start=4, decay_factor=0.5), base_lr=1.0)
    expected = _torch_lrs(lambda o: S.MultiStepLR(o, milestones=list(range(4, 12)), gamma=0.5), 12)  # one step per epoch
    assert [step.lr(0, e) for e in range(12)] == pytest.approx(expected, rel=1e-12)

    W, total, low = 10, 110, 0.01
    cos = LRSchedule(ScheduleConfig("cosine", warmup_steps=W, min_lr=low), base_lr=1.0, total_steps=total)
    expected = _torch_lrs(lambda o: S.SequentialLR(o, [S.LinearLR(o, 1 / W, 1.0, total_iters=W - 1),
                                                      S.CosineAnnealingLR(o, T_max=total - W, eta_min=low)],
                                                   milestones=[W]), total + 1)
    assert [cos.lr(i, 0) for i in range(total + 1)] == pytest.approx(expected, rel=1e-9, abs=1e-12)

    metrics = [5.0, 4.0, 4.5, 4.4, 4.3, 3.0, 3.0, 3.0, 3.0, 2.99999, 3.1, 3.2]
    plateau = LRSchedule(ScheduleConfig("plateau", patience=1, plateau_factor=0.1, min_lr=1e-3), base_lr=1.0)
    ours = []
    for m in metrics:
        plateau.evaluated(m)
        ours.append(plateau.lr(0, 0))
    expected = _torch_lrs(lambda o: S.ReduceLROnPlateau(o, factor=0.1, patience=1, min_lr=1e-3), len(metrics) + 1,
                          metrics=metrics + [0.0])[1:]
    assert ours == pytest.approx(expected, rel=1e-12)
    assert ours[-1] < ours[0]


def test_teacher_forcing_curricula():
    assert teacher_forcing_ratio(None, 10) == 1.0
    assert teacher_forcing_ratio({"schedule": "linear", "start": 1.0, "end": 0.2, "steps": 100}, 50) == pytest.approx(0.6)
    assert teacher_forcing_ratio({"schedule": "exponential", "k": 0.99}, 100) == pytest.approx(0.99**100)
    assert teacher_forcing_ratio({"schedule": "inverse_sigmoid", "k": 10}, 0) == pytest.approx(10 / 11)
    ratios = [teacher_forcing_ratio({"schedule": "inverse_sigmoid", "k": 10}, s) for s in range(0, 200, 20)]
    assert ratios == sorted(ratios, reverse=True) and ratios[-1] < 0.01


def test_early_stopping_and_best(tmp_path):
    ids = torch.randint(0, 4, (400,))  # noise: the dev loss stops improving quickly
    model = LanguageModel(LanguageModelConfig(vocab_size=4, embedding_size=8, rnn={"cell": "lstm", "hidden_size": 32}))
    result = Trainer(model, StreamBatches(ids[:300], 4, 10), TrainConfig(OptimizerConfig(lr=0.05), stopping=StoppingConfig(epochs=50, early_stopping=2)),
                     valid=StreamBatches(ids[300:], 2, 10), run_dir=tmp_path, progress=False).fit()
    assert result["stopped_early"] and result["epoch"] < 50
    assert (tmp_path / "best" / "model.safetensors").exists()
    valid = [h["loss"] for h in result["history"] if h["split"] == "valid"]
    assert result["best_valid_loss"] == pytest.approx(min(valid))


def test_monitoring_accuracy_keeps_the_most_accurate_checkpoint(tmp_path):
    from rnnkit.models import SequenceClassifier, SequenceClassifierConfig

    x = torch.randint(0, 6, (240, 5))
    batches = [{"input": x[i : i + 20], "target": x[i : i + 20, 0] % 3} for i in range(0, 240, 20)]
    model = SequenceClassifier(SequenceClassifierConfig(num_classes=3, vocab_size=6, embedding_size=4,
                                                        rnn={"cell": "gru", "hidden_size": 8}))
    result = Trainer(model, SequenceBatches.prebuilt(batches[:9]),
                     TrainConfig(OptimizerConfig(lr=0.03), stopping=StoppingConfig(epochs=8), monitor="accuracy"),
                     valid=SequenceBatches.prebuilt(batches[9:], shuffle=False), run_dir=tmp_path, progress=False).fit()
    valid = [h for h in result["history"] if h["split"] == "valid"]
    best = max(range(len(valid)), key=lambda i: (valid[i]["accuracy"], -i))  # the first of the most accurate
    assert result["best_valid_accuracy"] == pytest.approx(valid[best]["accuracy"])
    assert RunDir(tmp_path).best.step() == valid[best]["step"]
    assert len({h["accuracy"] for h in valid}) > 2  # the accuracy moved, so the choice meant something
    model.eval()
    never_right = [{"input": b["input"], "target": (model.predict(b["input"]) + 1) % 3} for b in batches[9:]]
    assert evaluate(model, never_right)["accuracy"] == 0.0  # reported, not left out
    with pytest.raises(ValueError, match="monitor must be one of"):
        TrainConfig(monitor="bleu")
    lm = LanguageModel(LanguageModelConfig(vocab_size=4, embedding_size=4, rnn={"hidden_size": 4}))
    ids = torch.randint(0, 4, (100,))
    with pytest.raises(ValueError, match="reports no accuracy"):
        Trainer(lm, StreamBatches(ids, 2, 10), TrainConfig(stopping=StoppingConfig(epochs=1), monitor="accuracy"),
                valid=StreamBatches(ids, 2, 10), progress=False).fit()


def test_trainer_refuses_unbounded_runs():
    model = LanguageModel(LanguageModelConfig(vocab_size=4))
    with pytest.raises(ValueError, match="give at least one bound"):
        Trainer(model, StreamBatches(torch.arange(100) % 4, 2, 5), TrainConfig())
    with pytest.raises(ValueError, match="optimizer.name must be one of"):
        OptimizerConfig("lbfgs")


def test_each_torchrun_process_gets_its_own_device(monkeypatch):
    """Under torchrun, auto/cuda mean cuda:LOCAL_RANK when every process has a GPU; auto falls
    back to the CPU (and cuda is a clear error) when processes would share one (NCCL cannot)."""
    from rnnkit.train.distributed import local_device

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert local_device("auto") == torch.device("cuda", 1) == local_device("cuda")
    assert local_device("cpu") == torch.device("cpu") and local_device("cuda:0") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert local_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="torchrun started 2 processes on this node and there are 1 CUDA devices"):
        local_device("cuda")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_device("auto") == torch.device("cpu")
