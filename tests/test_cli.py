"""The console script: every verb on tiny data, in seconds; one-line errors."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data import registry

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.\n") * 30
SMALL = ["--hidden", "16", "--layers", "1", "--embedding", "8", "--batch-size", "4", "--bptt", "20",
         "--eval-every", "5", "--no-progress"]


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "rnnkit.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"rnnkit {rnnkit.__version__}"
    for verb in (["info"], ["train", "charlm"], ["train", "wordlm"], ["generate"], ["data"], ["analyze", "gradients"]):
        out = subprocess.run([sys.executable, "-m", "rnnkit.cli", *verb, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "usage: rnnkit" in out.stdout and "(default:" in out.stdout or verb == ["info"]


def test_info_reports_the_path_each_layer_takes(capsys):
    assert main(["info"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line[:20].strip(): line.split()[-1] for line in lines[2:]}
    assert table["LSTM"] == "native" and table["LSTM layer_norm"] == "compiled" and table["LSTM skip_delay=2"] == "loop"
    assert "  cpu, LSTM skip_delay=2: TemporalSkip has no fused kernel: autograd through the cell" in lines
    (threads,) = [line for line in lines if line.startswith("compiled LSTM loop on cpu")]
    assert "rnnkit.threads" in threads and ("parts on numba's threads" in threads or "one thread" in threads)


@pytest.fixture(scope="module")
def charlm_run(tmp_path_factory):
    """One tiny charlm run shared by the tests that need a checkpoint."""
    tmp = tmp_path_factory.mktemp("charlm")
    text = tmp / "austen.txt"
    text.write_text(TEXT)
    assert main(["train", "charlm", "--text", str(text), "--minutes", "0.03", "--runs", str(tmp / "runs"),
                 "--samples", "1", "--sample-length", "20", *SMALL]) == 0
    (run,) = (tmp / "runs").iterdir()
    return run


def test_train_writes_a_complete_run_directory(charlm_run):
    assert (charlm_run / "config.json").is_file() and (charlm_run / "metrics.jsonl").is_file()
    assert (charlm_run / "plots" / "learning_curves.png").is_file()
    assert (charlm_run / "best" / "vocab.json").is_file() and (charlm_run / "best" / "task.json").is_file()
    assert any((charlm_run / "checkpoints").iterdir())
    assert isinstance(rnnkit.load(charlm_run / "best"), rnnkit.models.LanguageModel)


def test_make_run_main_job_in_fast_mode(tmp_path, capsys):
    """`make run` trains charlm on the standard library's sources; here for a few seconds."""
    assert main(["train", "charlm", "--minutes", "0.03", "--max-chars", "20000", "--runs", str(tmp_path),
                 "--samples", "1", "--sample-length", "30", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "--- sample 1" in out and "def " in out and "Generate more with:" in out


def test_generate_streams_and_reproduces_with_a_seed(charlm_run, capsys):
    args = ["generate", str(charlm_run), "--prompt", "It is", "--length", "40", "--temperature", "0.9", "--seed", "3"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first and first.startswith("It is") and len(first) > 40
    assert main(args[:-1] + ["4"]) == 0
    assert capsys.readouterr().out != first


def test_evaluate_and_plot(charlm_run, capsys):
    assert main(["evaluate", str(charlm_run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "valid" and result["loss"] > 0 and result["task"] == "charlm"
    assert main(["evaluate", str(charlm_run)]) == 0
    table = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert table["task"] == "charlm" and float(table["loss"]) == pytest.approx(result["loss"], abs=1e-4)
    assert main(["evaluate", str(charlm_run), "--split", "test"]) == 2
    assert "the charlm task has the splits valid" in capsys.readouterr().err
    assert main(["evaluate", str(charlm_run), "--normalise", "speaker"]) == 2
    assert "--normalise speaker: the charlm task's features are not normalised per speaker" in capsys.readouterr().err
    assert main(["plot", str(charlm_run)]) == 0
    assert capsys.readouterr().out.strip().endswith("learning_curves.png")


def test_train_under_torchrun_with_a_time_bound(tmp_path):
    """Two processes, one run directory written by rank 0; the --minutes bound stops both at the same step."""
    text = tmp_path / "text.txt"
    text.write_text(TEXT)
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "rnnkit.cli", "train", "charlm",
                           "--text", str(text), "--minutes", "0.05", "--runs", str(tmp_path / "runs"), "--samples", "0",
                           *SMALL], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert done.stderr.count("run directory") == 2  # announced and reported once, by rank 0


def test_resume_continues_a_run_with_its_own_settings(charlm_run, capsys):
    """The fixture's run stopped at its time bound; a larger step bound continues it, with the saved --text."""
    step = max(json.loads(line)["step"] for line in (charlm_run / "metrics.jsonl").read_text().splitlines())
    assert main(["train", "charlm", "--resume", str(charlm_run), "--minutes", "5", "--max-steps", str(step + 10),
                 "--samples", "0", "--no-progress"]) == 0
    steps = [json.loads(line)["step"] for line in (charlm_run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == step + 10


def test_wordlm_and_its_test_split(tmp_path, capsys, fake_dataset):
    root = fake_dataset("ptb", {f"ptb.{split}.txt": " the cat sat on the N mat <unk>\n" * n
                                for split, n in (("train", 300), ("valid", 30), ("test", 30))})
    assert main(["train", "wordlm", "--preset", "small", "--minutes", "0.02", "--data-dir", str(root),
                 "--runs", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["published_test_ppl"] == 114.5 and results["test_ppl"] > 1
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ppl"] > 1 and result["words"] == 30 * 9


def test_addition_task(tmp_path):
    assert main(["train", "addition", "--bits", "3", "--epochs", "2", "--train-size", "128", "--test-size", "20", "--mlp-steps", "20",
                 "--runs", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    rows = json.loads((run / "results.json").read_text())["results"]
    assert [r["bits"] for r in rows] == [3, 4, 6, 12]
    assert all(0 <= r["rnn_exact"] <= 1 and 0 <= r["mlp_exact"] <= 1 for r in rows)


def test_analyze_gradients(tmp_path):
    assert main(["analyze", "gradients", "--length", "6", "--steps", "3", "--hidden", "4", "--runs", str(tmp_path)]) == 0
    (run,) = tmp_path.iterdir()
    assert (run / "plots" / "gradients.png").is_file()
    norms = json.loads((run / "results.json").read_text())["norms"]
    assert set(norms) == {"Elman sigmoid", "Elman tanh", "Elman relu", "GRU", "LSTM"}
    assert all(len(v["at initialisation"]) == 6 for v in norms.values())
    sigmoid = norms["Elman sigmoid"]["at initialisation"]  # index = distance from the loss: sigmoid' <= 1/4
    assert all(far < near for near, far in zip(sigmoid, sigmoid[1:]))


# ----------------------------------------------------------------------------- data


@pytest.fixture
def toy_dataset(tmp_path, monkeypatch) -> tuple[str, Path]:
    """A registered dataset "toy" of one 200 kB file, and a local mirror to fetch it from (no network)."""
    data = bytes(torch.randint(0, 256, (200_000,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8).tolist())
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "input.txt").write_bytes(data)
    entry = registry.Dataset("toy", "test data", (registry.DataFile("input.txt", "https://example.invalid/toy/input.txt",
                                                                    hashlib.sha256(data).hexdigest()),))
    monkeypatch.setitem(registry.DATASETS, "toy", entry)
    return "toy", mirror


def test_data_fetch_resumes_and_verifies_from_a_file_url(toy_dataset, tmp_path, capsys):
    name, mirror = toy_dataset
    root = tmp_path / "root"
    target, staging = root / name, root / f".{name}.partial"
    staging.mkdir(parents=True)
    data = (mirror / "input.txt").read_bytes()
    (staging / "input.txt.part").write_bytes(data[:1000])  # an interrupted earlier download
    assert main(["data", "fetch", name, "--data-dir", str(root), "--base-url", mirror.as_uri()]) == 0
    assert (target / "input.txt").read_bytes() == data and not staging.exists()
    assert main(["data", "verify", name, "--data-dir", str(root)]) == 0
    assert re.search(r"input.txt +ok", capsys.readouterr().out)


def test_data_verify_detects_a_tampered_file(toy_dataset, tmp_path, capsys):
    name, mirror = toy_dataset
    root = tmp_path / "root"
    registry.fetch(name, root, mirror.as_uri())
    path = root / name / "input.txt"
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    assert main(["data", "verify", name, "--data-dir", str(root)]) == 2
    captured = capsys.readouterr()
    assert "checksum mismatch" in captured.out and f"rnnkit data fetch {name}" in captured.err


def test_fetch_refuses_a_corrupt_download(tmp_path):
    mirror = tmp_path / "bad"
    mirror.mkdir()
    (mirror / "input.txt").write_text("not shakespeare")
    with pytest.raises(ValueError, match="checksum mismatch"):
        registry.fetch("tinyshakespeare", tmp_path / "root", mirror.as_uri())
    assert not (tmp_path / "root" / "tinyshakespeare" / "input.txt").exists()


def test_missing_dataset_names_the_fetch_command(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "data_roots", lambda data_dir=None: [tmp_path])
    with pytest.raises(FileNotFoundError, match="Get it with: rnnkit data fetch ptb"):
        registry.require("ptb")


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "tinyshakespeare" in out and "ptb" in out and "data roots, in order" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "charlm", "--text", "/nonexistent.txt", "--minutes", "0.01"], "--text /nonexistent.txt: no such file"),
    (["generate", "/nonexistent"], "no checkpoint here"),
    (["data", "verify"], "needs a dataset NAME"),
    (["data", "fetch", "imagenet"], "unknown dataset 'imagenet'"),
    (["train", "charlm", "--resume", "/nonexistent", "--minutes", "0.01"], "not a run directory"),
])
def test_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_forecast_task_beats_persistence_and_reports_calibration(tmp_path, capsys):
    assert main(["train", "forecast", "--train-steps", "3000", "--eval-steps", "400", "--max-steps", "150",
                 "--hidden", "16", "--runs", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    test = json.loads((run / "results.json").read_text())["test"]
    assert test["rmse"] < test["persistence_rmse"] and 0.3 < test["within_1_sigma"] < 0.95
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rmse"] == pytest.approx(test["rmse"], abs=1e-6)


def test_embeddings_task_reports_neighbours_analogies_and_a_picture(tmp_path, capsys, fake_dataset):
    words = "monday tuesday company stock rose fell one two three four he she his her japan china"
    root = fake_dataset("ptb", {f"ptb.{split}.txt": (words + "\n") * n for split, n in
                                (("train", 60), ("valid", 10), ("test", 10))})
    assert main(["train", "embeddings", "--max-steps", "20", "--dim", "8", "--data-dir", str(root),
                 "--runs", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["analogies"] == 2 and set(results["neighbours"]) >= {"monday", "company", "she"}
    assert (run / "plots" / "embeddings_pca.png").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["analogies"] == 2
