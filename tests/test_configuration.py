"""rnnkit train TASK --config FILE, key=value overrides and --print-config (rnnkit.configuration)."""

import json

import pytest
from safetensors.torch import load_file

from rnnkit.cli import main
from rnnkit.tasks.common import read_task

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 30
TINY = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--batch-size", "4", "--bptt", "10", "--eval-every", "3",
        "--samples", "0", "--no-progress"]


def printed(capsys, *argv):
    assert main(["train", *argv, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_print_config_shows_the_defaults_that_depend_on_another_option(capsys):
    assert printed(capsys, "sentiment")["hidden"] == 168
    tree = printed(capsys, "sentiment", "--model", "treelstm")
    assert (tree["hidden"], tree["batch_size"], tree["monitor"]) == (150, 25, "accuracy")
    assert printed(capsys, "charlm")["max_steps"] == 1200
    assert printed(capsys, "charlm", "--minutes", "2")["max_steps"] is None
    assert printed(capsys, "wordlm", "--preset", "medium")["epochs"] == 39


def test_file_then_overrides_then_options(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"model": "childsum", "lr": 0.01, "hidden": 40}))
    (tmp_path / "a.yaml").write_text("model: childsum\nlr: 0.01\nhidden: 40\nphrases: false\n")
    for name in ("a.json", "a.yaml"):
        got = printed(capsys, "sentiment", "--config", str(tmp_path / name))
        assert (got["model"], got["lr"], got["hidden"], got["batch_size"]) == ("childsum", 0.01, 40, 25)
    assert printed(capsys, "sentiment", "--config", str(tmp_path / "a.yaml"))["phrases"] is False
    got = printed(capsys, "sentiment", "--config", str(tmp_path / "a.json"), "hidden=50", "word-dropout=0.1",
                  "--lr", "0.02")
    assert (got["hidden"], got["word_dropout"], got["lr"]) == (50, 0.1, 0.02)
    assert printed(capsys, "sentiment", "bidirectional=true", "phrases=no")["bidirectional"] is True


@pytest.mark.parametrize("content, argv, message", [
    ('{"hiden": 3}', [], "--config CFG: hiden is not an option of this task; did you mean hidden?"),
    ('{"hidden": 0}', [], "--config CFG: hidden: must be >= 1. Received: 0"),
    ('{"hidden": true}', [], "--config CFG: hidden: expected one value. Received: True"),
    ('{"model": "gru"}', [], "--config CFG: model: expected one of lstm, recursive, treelstm, childsum. Received: 'gru'"),
    ('{"phrases": "maybe"}', [], "--config CFG: phrases: expected true or false. Received: 'maybe'"),
    ('[1, 2]', [], "--config CFG: expected a mapping of option names to values. Received: list"),
    ('{"lr": 0.1', [], "--config CFG is not valid JSON"),
    ('{"task": "charlm", "args": {"hidden": 3}}', [], "those are the settings of a charlm run, not sentiment"),
    ('{}', ["hidden=3", "--hidden", "4"], "given twice with different values: hidden=3 and --hidden 4"),
    ('{}', ["hidden"], "unrecognised argument 'hidden': not an option of this task"),
    ('{}', ["--resume", "somewhere"], "--resume continues a run with its own settings"),
])
def test_bad_settings_are_one_clear_error(tmp_path, capsys, content, argv, message):
    path = tmp_path / "cfg.json"
    path.write_text(content)
    assert main(["train", "sentiment", "--config", str(path), *argv, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1
    assert message.replace("CFG", str(path)) in err


def test_a_run_fed_back_as_its_config_is_the_same_run(tmp_path):
    text = tmp_path / "austen.txt"
    text.write_text(TEXT)
    assert main(["train", "charlm", "--text", str(text), "--max-steps", "6", "--runs", str(tmp_path / "a"),
                 "lr=0.01", *TINY]) == 0
    (first,) = (tmp_path / "a").iterdir()
    assert main(["train", "charlm", "--config", str(first / "config.json"), "--runs", str(tmp_path / "b")]) == 0
    (second,) = (tmp_path / "b").iterdir()
    a, b = (read_task(run / "task.json")["args"] for run in (first, second))
    assert a.pop("runs") != b.pop("runs") and b.pop("config") == str(first / "config.json")
    assert a.pop("config") is None
    assert a == b and a["lr"] == 0.01
    weights = [load_file(run / "best" / "model.safetensors") for run in (first, second)]
    assert weights[0].keys() == weights[1].keys()
    assert all((weights[0][k] == weights[1][k]).all() for k in weights[0])


def test_a_wordlm_run_of_rnnkit_0_2_reads_its_config_as_the_preset(tmp_path):
    path = tmp_path / "task.json"
    path.write_text(json.dumps({"task": "wordlm", "args": {"config": "medium", "epochs": None}}))
    assert read_task(path)["args"] == {"preset": "medium", "epochs": None}
