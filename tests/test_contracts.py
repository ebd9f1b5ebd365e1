"""The seams between the layers: path choice, nested states, run directories, configs, tasks,
the decoder object, and run directories written by rnnkit 0.1.0."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit
from rnnkit import nested
from rnnkit.cells import ElmanCell, GRUCell, LeakyCell, LSTMCell, TemporalSkip
from rnnkit.data import SequenceBatches, StreamBatches
from rnnkit.decode import BeamSearchOptions, CTCBeamDecoder, Lexicon, ctc_beam_search
from rnnkit.dispatch import choose_path
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks import TASKS, Task, register
from rnnkit.train import OptimizerConfig, ScheduleConfig, StoppingConfig, TrainConfig, Trainer
from rnnkit.train.trainer import evaluate

FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"

# ----------------------------------------------------------------------------- path choice


@pytest.mark.parametrize("cells, device, training, path, says", [
    ([LSTMCell(3, 4)], "cpu", True, "native", "torch's LSTM op, the faster one on cpu"),
    ([GRUCell(3, 4)], "cpu", True, "compiled", "faster than torch's GRU op on cpu"),
    ([GRUCell(3, 4)], "cuda", True, "native", "torch's GRU op"),
    ([ElmanCell(3, 4, activation="sigmoid")], "cuda", True, "fused", "torch has no op equal to ElmanCell"),
    ([LeakyCell(3, 4)], "cpu", False, "compiled", "torch has no op equal to LeakyCell"),
    ([LeakyCell(3, 4)], "cuda", False, "fused", "torch has no op equal to LeakyCell"),
    ([ElmanCell(3, 4)], "cpu", True, "compiled", "compiled for batches of at most 1, larger ones on its Python loop, "
                                                  "faster than torch's RNN_TANH op on cpu"),
    ([LSTMCell(3, 4, recurrent_dropout=0.3)], "cpu", True, "compiled", "recurrent dropout in training"),
    ([LSTMCell(3, 4, recurrent_dropout=0.3)], "cuda", True, "fused", "recurrent dropout in training"),
    ([LSTMCell(3, 4, recurrent_dropout=0.3)], "cpu", False, "native", "torch's LSTM op"),
    ([LSTMCell(3, 4, layer_norm=True)], "cpu", True, "compiled", "time loop compiled for batches of at most"),
    ([LSTMCell(3, 4), LSTMCell(3, 4, bias=False, forget_bias=None)], "cpu", True, "compiled", "directions differ"),
    ([TemporalSkip(LSTMCell(7, 4), 2)], "cpu", True, "loop", "TemporalSkip has no fused kernel"),
])
def test_choose_path_decides_and_says_why(cells, device, training, path, says):
    choice = choose_path(cells, device, training)
    assert choice.path == path and says in choice.reason


def test_forced_paths_and_their_refusals():
    assert choose_path([LSTMCell(3, 4)], "cpu", True, "fused").path == "fused"
    assert choose_path([LSTMCell(3, 4)], "cpu", True, "loop").path == "loop"
    with pytest.raises(ValueError, match="implementation='native' needs plain .* layer 2 has LSTMCell"):
        choose_path([LSTMCell(3, 4, peephole=True)], "cpu", False, "native", layer=2)
    with pytest.raises(ValueError, match="cannot apply recurrent_dropout"):
        choose_path([GRUCell(3, 4, recurrent_dropout=0.2)], "cpu", True, "native")
    with pytest.raises(ValueError, match="implementation must be one of"):
        choose_path([GRUCell(3, 4)], "cpu", True, "fast")


def test_the_path_is_decided_once_per_device_mode_and_implementation(monkeypatch):
    from rnnkit import recurrent

    rnn = rnnkit.GRU(3, 4, num_layers=2)
    decisions = []
    monkeypatch.setattr(recurrent, "choose_path", lambda *a, **k: decisions.append(a) or choose_path(*a, **k))
    x = torch.randn(2, 5, 3)
    for _ in range(3):
        rnn(x)
    assert len(decisions) == 2  # one per layer, at the first forward in training mode on the CPU
    rnn.eval()(x)
    rnn(x)
    assert len(decisions) == 2  # evaluation mode on the CPU was decided at construction
    rnn.implementation = "loop"  # a changed implementation is a new decision, not a stale one
    assert rnn.layer_path(0, "cpu") == "loop" and len(decisions) == 4


# ----------------------------------------------------------------------------- nested states


def test_nested_state_walks_keep_structure():
    state = ((torch.ones(2, 3), torch.zeros(2, 1)), [torch.arange(4.0).view(2, 2)], None)
    tensors, structure = nested.flatten(state)
    back = nested.unflatten(tensors, json.loads(json.dumps(structure)), "cpu")
    assert all(torch.equal(a, b) for a, b in zip(back[0], state[0])) and back[2] is None
    picked = nested.select_rows(state, torch.tensor([1, 1, 0]))
    assert picked[0][0].shape == (3, 3) and isinstance(picked[1], list)
    rows = nested.split(state[:2], 2)
    assert len(rows) == 2 and torch.equal(nested.stack(rows)[1][0], state[1][0])
    with pytest.raises(TypeError, match="detach expects tensors"):
        nested.detach({"h": torch.ones(1)})


# ----------------------------------------------------------------------------- configs


def test_train_config_round_trips_through_json_and_reads_the_flat_0_1_0_form():
    config = TrainConfig(OptimizerConfig("sgd", lr=20.0), ScheduleConfig("step", decay_start=4),
                         StoppingConfig(epochs=13, minutes=2.5), clip_norm=0.25, teacher_forcing={"schedule": "linear",
                                                                                                  "steps": 9})
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    flat = json.loads((FIXTURE / "config.json").read_text())["train"]
    old = TrainConfig.from_dict(flat)
    assert old.optimizer == OptimizerConfig("adam", lr=0.003) and old.schedule.kind == "plateau"
    assert old.stopping == StoppingConfig(epochs=1, minutes=3.0) and old.eval_every == 20 and old.clip_norm == 5.0
    with pytest.raises(ValueError, match=r"optimizer has unknown fields \['beta'\]"):
        TrainConfig.from_dict({"optimizer": {"beta": 0.9}})


def test_trainer_refuses_what_is_not_a_batch_source_or_a_model():
    model = LanguageModel(LanguageModelConfig(vocab_size=4, embedding_size=3, rnn={"cell": "gru", "hidden_size": 3}))
    with pytest.raises(ValueError, match="train must be an rnnkit.data.BatchSource"):
        Trainer(model, [{"input": torch.zeros(1, 2, dtype=torch.long)}], TrainConfig(stopping=StoppingConfig(epochs=1)))
    with pytest.raises(ValueError, match="model must be an rnnkit.models.Model"):
        Trainer(torch.nn.Linear(2, 2), StreamBatches(torch.arange(40) % 4, 2, 5),
                TrainConfig(stopping=StoppingConfig(epochs=1)))


def test_batch_sources_declare_how_state_is_carried():
    stream = StreamBatches(torch.arange(60) % 5, 2, 5)
    carried = object()
    states = [stream.state_in(batch, carried) for batch in stream]
    assert states[0] is None and all(s is carried for s in states[1:])
    items = SequenceBatches(list(range(6)), 2, lambda xs: {"input": torch.tensor(xs)})
    assert all(items.state_in(batch, carried) is None for batch in items)


def test_evaluate_reads_a_plain_list_of_batches_as_independent_sequences():
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=3, rnn={"cell": "lstm", "hidden_size": 4}))
    ids = torch.arange(41) % 5
    as_list = [{"input": ids[None, :-1], "target": ids[None, 1:]}]
    whole = evaluate(model, as_list)
    assert whole["ppl"] == pytest.approx(torch.tensor(whole["loss"]).exp().item())
    assert whole["loss"] == pytest.approx(evaluate(model, StreamBatches(ids, 1, 40))["loss"], abs=1e-6)


# ----------------------------------------------------------------------------- run directories


def test_run_dir_layout(tmp_path):
    run = RunDir.new(tmp_path, "charlm")
    assert run.path.parent == tmp_path and run.path.name.startswith("charlm-") and not run.is_run()
    assert run.checkpoint(12).path == run.path / "checkpoints" / "step-00000012"
    for step in (3, 12):
        (run.checkpoint(step).path).mkdir(parents=True)
    (run.checkpoint_root / "step-00000020.tmp").mkdir()  # a checkpoint being written
    assert [c.path.name for c in run.checkpoints()] == ["step-00000003", "step-00000012"]
    assert Checkpoint.resolve(run.path).path.name == "step-00000012"  # no best/: the last one
    with pytest.raises(FileNotFoundError, match="no checkpoint here"):
        Checkpoint.resolve(tmp_path)
    assert Checkpoint.resolve(FIXTURE).path == FIXTURE / "best"
    assert Checkpoint.resolve(FIXTURE / "checkpoints" / "step-00000080").path.name == "step-00000080"


def test_a_run_directory_written_by_0_1_0_loads_evaluates_and_resumes_exactly(tmp_path, capsys):
    """The fixture is one epoch of `rnnkit train charlm` by rnnkit 0.1.0; resuming it to two
    epochs gives the weights 0.1.0's uninterrupted two-epoch run ended with."""
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    assert isinstance(rnnkit.load(run / "best"), LanguageModel)
    from rnnkit.cli import main

    args = json.loads((FIXTURE / "best" / "task.json").read_text())["args"]
    old_cwd = Path.cwd()
    try:
        import os

        os.chdir(run)  # the run was trained on tiny.txt, named relative to its working directory
        assert main(["evaluate", str(run), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["split"] == "valid"
        assert main(["train", "charlm", "--text", args["text"], "--hidden", "8", "--layers", "1", "--embedding", "4",
                     "--batch-size", "4", "--bptt", "16", "--eval-every", "20", "--epochs", "2", "--samples", "0",
                     "--no-progress", "--resume", str(run)]) == 0
    finally:
        os.chdir(old_cwd)
    last = RunDir(run).checkpoints()[-1]
    assert last.path.name == "step-00000166"
    ours = load_file(str(last.path / "model.safetensors"))
    theirs = load_file(str(FIXTURE.parent / "run-0.1.0-epoch2-weights.safetensors"))
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- tasks


def test_every_task_meets_the_contract_and_the_cli_names_none():
    assert {"charlm", "wordlm", "addition"} <= set(TASKS)
    for name, task in TASKS.items():
        assert isinstance(task, Task) and task.name == name and task.help and task.description
        task.add_arguments(argparse.ArgumentParser())
    with pytest.raises(ValueError, match="already registered"):
        register(TASKS["charlm"])
    from rnnkit.cli import VERBS

    cli = (Path(rnnkit.__file__).parent / "cli.py").read_text()
    for verb in VERBS:  # a verb may share a task's name (rnnkit translate, rnnkit train translate)
        cli = re.sub(rf"([\[\s]\"{verb}\"[:\]]|p\[\"{verb}\"\])", "", cli)
    assert not [name for name in TASKS if re.search(rf"[\"']{name}[\"']", cli)]  # no task name as a string


def test_the_package_imports_in_layer_order():
    """Nothing below tasks/ imports tasks or the CLI; nothing below train/ imports train."""
    code = ("import sys, rnnkit, rnnkit.decode, rnnkit.train; "
            "bad = [m for m in sys.modules if m.startswith(('rnnkit.tasks', 'rnnkit.cli'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- the decoder object


def test_a_decoder_built_once_equals_the_one_line_search_on_every_call():
    tokens = ["_", " ", "a", "b", "c"]
    lexicon = Lexicon(["ab", "cab", "a"], tokens=tokens, word_delimiter=1, unknown_penalty=-3.0)
    decoder = CTCBeamDecoder(BeamSearchOptions(beam_width=8, nbest=2), tokens=tokens, word_delimiter=1,
                             lexicon=lexicon, hotwords=["cab"])
    g = torch.Generator().manual_seed(3)
    for _ in range(3):
        lp = (torch.randn(2, 12, len(tokens), generator=g) * 3).log_softmax(-1)
        ours = decoder(lp, [12, 9])
        one_line = ctc_beam_search(lp, [12, 9], beam_width=8, nbest=2, tokens=tokens, word_delimiter=1,
                                   lexicon=lexicon, hotwords=["cab"])
        assert [[(h.ids, h.score) for h in row] for row in ours] == [[(h.ids, h.score) for h in row]
                                                                    for row in one_line]
    with pytest.raises(ValueError, match="nbest must be an integer in"):
        BeamSearchOptions(beam_width=2, nbest=3)
