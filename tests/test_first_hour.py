"""A new user's first hour: help, bounds, progress, resume, Ctrl-C, data, text in and out, plots."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rnnkit
from rnnkit.files import write_manifest
from rnnkit import progress
from rnnkit.cli import build_parser, main
from rnnkit.data import StreamBatches, Vocabulary, registry
from rnnkit.data.text import char_corpus
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.run_dir import RunDir
from rnnkit.train import StoppingConfig, TrainConfig, Trainer
from rnnkit.train.trainer import evaluate

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.\n") * 30
TINY = ["--hidden", "12", "--layers", "1", "--embedding", "6", "--batch-size", "4", "--bptt", "16", "--samples", "0",
        "--no-progress"]


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- the command line


def test_help_imports_no_torch_and_bare_rnnkit_prints_help_and_exits_2():
    done = _run("import sys\nfrom rnnkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                "print('torch imported' if 'torch' in sys.modules else 'no torch')")
    assert "usage: rnnkit" in done.stdout and done.stdout.strip().endswith("no torch")
    bare = subprocess.run([sys.executable, "-m", "rnnkit"], capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and "usage: rnnkit" in bare.stderr
    version = subprocess.run([sys.executable, "-m", "rnnkit", "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == f"rnnkit {rnnkit.__version__}"


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_has_help_that_shows_its_default():
    checked = 0
    for parser in _parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or action.dest in ("help", "version"):
                continue
            assert action.help, f"{parser.prog} {action.option_strings[0]} has no help"
            checked += 1
        if any(a.option_strings and a.dest not in ("help", "version") for a in parser._actions):
            assert "(default:" in text, parser.prog
    assert checked > 60


@pytest.mark.parametrize("argv,message", [
    (["train", "charlm", "--temperature", "0"], "argument --temperature: must be a finite number > 0 (for the most "
                                                "probable token use --greedy). Received: 0"),
    (["train", "charlm", "--minutes", "0"], "argument --minutes: must be a finite number > 0. Received: 0"),
    (["train", "charlm", "--epochs", "-1"], "argument --epochs: must be >= 1. Received: -1"),
    (["train", "charlm", "--max-steps", "0"], "argument --max-steps: must be >= 1. Received: 0"),
    (["train", "charlm", "--dropout", "1.5"], "argument --dropout: must be in [0, 1). Received: 1.5"),
    (["train", "charlm", "--hidden", "many"], "argument --hidden: expected an integer. Received: 'many'"),
    (["train", "charlm", "--device", "tpu"], "argument --device: expected auto, cpu, cuda, cuda:N or mps"),
    (["train", "addition", "--bits", "0"], "argument --bits: must be >= 1. Received: 0"),
    (["train", "addition", "--bits", "16"], "argument --bits: must be at most 15"),
    (["generate", "RUN", "--top-p", "0"], "argument --top-p: must be in (0, 1]. Received: 0"),
    (["generate", "RUN", "--temperature", "-1"], "argument --temperature: must be a finite number > 0"),
])
def test_bad_values_name_the_flag_before_any_data_is_read(argv, message, capsys, monkeypatch):
    from rnnkit.tasks import charlm

    monkeypatch.setattr(charlm, "corpus", lambda args: pytest.fail("data was read before the arguments were checked"))
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_missing_cuda_device_is_refused_when_parsing(capsys, monkeypatch):
    from rnnkit.tasks import charlm

    monkeypatch.setattr(charlm, "corpus", lambda args: pytest.fail("data was read before the device was checked"))
    with pytest.raises(SystemExit):
        main(["train", "charlm", "--device", "cuda"])
    assert "argument --device: no CUDA device is available here; use --device cpu" in capsys.readouterr().err


# ----------------------------------------------------------------------------- runs, resume, Ctrl-C


@pytest.fixture(scope="module")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "austen.txt"
    path.write_text(TEXT)
    return path


def test_resume_refuses_a_changed_setting_and_names_both_values(text_file, tmp_path, capsys):
    assert main(["train", "charlm", "--text", str(text_file), "--max-steps", "4", "--runs", str(tmp_path), *TINY]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "task.json").read_text())["args"]["text"] == str(text_file)
    capsys.readouterr()
    assert main(["train", "charlm", "--resume", str(run), "--lr", "0.5", "--max-steps", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--lr 0.5 (the run has 0.003)" in err and err.count("\n") == 1
    assert main(["train", "charlm", "--resume", str(run), "--no-progress"]) == 0  # its bound is reached: a no-op
    assert "had already finished at step 4; nothing to do" in capsys.readouterr().err
    assert len(RunDir(run).checkpoints()) == 1


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(RunDir(run).checkpoints()[-1].path / "model.safetensors"))


def _records(run: Path) -> list[dict]:
    timing = ("units_per_s", "eval_seconds")
    return [{k: v for k, v in json.loads(line).items() if k not in timing}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_equals_an_uninterrupted_one(text_file, tmp_path):
    args = ["train", "charlm", "--text", str(text_file), "--max-steps", "300", "--eval-every", "40",
            "--eval-batches", "2", "--dropout", "0.2", *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit", *args, "--runs", str(tmp_path / "a")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "a").glob("*/metrics.jsonl")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    (run,) = (tmp_path / "a").iterdir()
    step = RunDir(run).checkpoints()[-1].step()
    assert 0 < step < 300 and f"interrupted at step {step}; saved" in err, err[-3000:]
    assert f"rnnkit train charlm --resume {run}" in err
    assert main(["train", "charlm", "--resume", str(run), "--no-progress"]) == 0
    assert main([*args, "--runs", str(tmp_path / "b")]) == 0
    (whole,) = (tmp_path / "b").iterdir()
    ours, theirs = _weights(run), _weights(whole)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert _records(run) == _records(whole)  # the loss accumulator was saved with the checkpoint


def test_progress_bar_counts_steps_to_the_bound_and_resumes_from_the_step(tmp_path, capsys):
    ids = torch.randint(0, 5, (400,))

    def trainer(steps: int, resume: bool) -> Trainer:
        model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=4, rnn={"cell": "gru", "hidden_size": 4}))
        return Trainer(model, StreamBatches(ids, 4, 10), TrainConfig(stopping=StoppingConfig(max_steps=steps),
                                                                    checkpoint_every=3), run_dir=tmp_path,
                       resume=resume, progress=True)

    first = trainer(6, False)
    first.fit()
    assert (first._bar.total, first._bar.n, first._bar.unit) == (6, 6, "step")
    second = trainer(9, True)
    second.fit()
    assert (second._bar.total, second._bar.n) == (9, 9)
    assert "train:  67%" in capsys.readouterr().err  # the resumed bar starts at step 6 of 9
    by_epochs = Trainer(LanguageModel(LanguageModelConfig(vocab_size=5)), StreamBatches(ids, 4, 10),
                        TrainConfig(stopping=StoppingConfig(epochs=3), accumulate=2), progress=False)
    assert by_epochs._bar_total() == (3 * 5, "step")  # 10 chunks per epoch, one step per 2
    by_time = Trainer(LanguageModel(LanguageModelConfig(vocab_size=5)), StreamBatches(ids, 4, 10),
                      TrainConfig(stopping=StoppingConfig(minutes=0.5)), progress=False)
    assert by_time._bar_total() == (30, "s")


def test_progress_policy_shows_bars_in_notebooks_and_on_terminals(monkeypatch):
    assert progress.shown(True) and not progress.shown(False)

    class FakeStderr:
        def isatty(self) -> bool:
            return False

    monkeypatch.setattr(sys, "stderr", FakeStderr())
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not progress.shown(None)

    class ZMQInteractiveShell:  # the kernel of a Jupyter notebook
        pass

    fake = type(sys)("IPython")
    fake.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert progress.shown(None)


def test_the_time_bound_counts_every_session_and_a_dev_slice_reads_only_its_batches(tmp_path, capsys):
    ids = torch.randint(0, 5, (400,))
    model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=4, rnn={"cell": "gru", "hidden_size": 4}))
    Trainer(model, StreamBatches(ids, 4, 10), TrainConfig(stopping=StoppingConfig(max_steps=3)), run_dir=tmp_path,
            progress=False).fit()
    last = RunDir(tmp_path).checkpoints()[-1].path
    state = json.loads((last / "trainer.json").read_text())
    (last / "trainer.json").write_text(json.dumps({**state, "seconds": 120.0}))  # two minutes already spent
    write_manifest(last)
    result = Trainer(model, StreamBatches(ids, 4, 10), TrainConfig(stopping=StoppingConfig(minutes=1.5)),
                     run_dir=tmp_path, resume=True, progress=False).fit()
    assert result["step"] == 3 and "already finished" in capsys.readouterr().err

    read = []

    def batches():
        for batch in StreamBatches(ids, 4, 10):
            read.append(1)
            yield batch

    full = evaluate(model, list(StreamBatches(ids, 4, 10)))
    part = evaluate(model, batches(), max_batches=2)
    assert len(read) == 3 and part["loss"] != full["loss"]  # the third batch is fetched, not read


# ----------------------------------------------------------------------------- data


def test_a_failed_fetch_is_one_line_and_leaves_nothing_that_looks_like_the_dataset(tmp_path, monkeypatch, capsys):
    entry = registry.Dataset("toy", "test data", (registry.DataFile("input.txt", "http://127.0.0.1:9/input.txt", "0" * 64),))
    monkeypatch.setitem(registry.DATASETS, "toy", entry)
    assert main(["data", "fetch", "toy", "--data-dir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: rnnkit data fetch toy: cannot download http://127.0.0.1:9/input.txt")
    assert err.count("\n") == 1 and not (tmp_path / "toy").exists()
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    assert "not present (rnnkit data fetch toy)" in capsys.readouterr().out


def test_the_first_verified_copy_wins_over_an_empty_or_altered_one(tmp_path, fake_dataset, monkeypatch):
    good = fake_dataset("toy", {"a.txt": "alpha", "b.txt": "beta"})
    first = tmp_path / "first"
    (first / "toy").mkdir(parents=True)  # an empty folder, as a failed fetch of rnnkit 0.1 left
    monkeypatch.setattr(registry, "data_roots", lambda data_dir=None: [first, good])
    assert registry.locate("toy") == good / "toy" and registry.require("toy") == good / "toy"
    (first / "toy" / "a.txt").write_text("alpha")
    (first / "toy" / "b.txt").write_text("beta!")
    assert registry.require("toy") == good / "toy"
    (good / "toy" / "b.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"incomplete or altered in .*first/toy: b.txt \(checksum mismatch\)"):
        registry.require("toy")


def test_data_list_shows_every_dataset_the_tasks_use(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("tinyshakespeare", "ptb", "ud_english_ewt", "fsdd", "eng_fra", "sst_trees", "mnist_test"):
        assert re.search(rf"^{name} ", out, re.M), name


def test_a_text_file_that_is_not_utf8_is_refused_with_the_byte_offset(tmp_path, capsys):
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("caf\xe9 " * 400).encode("latin-1"))
    assert main(["train", "charlm", "--text", str(latin), "--max-steps", "2", "--runs", str(tmp_path), *TINY]) == 2
    assert f"--text {latin}: not UTF-8 text (byte 3 is b'\\xe9')" in capsys.readouterr().err


# ----------------------------------------------------------------------------- text in, text out


def _word_lm() -> LanguageModel:
    vocab = Vocabulary.from_words("the company said it expects N shares to rise".split(), lowercase=True,
                                  number_token="N")
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_size=8,
                                              rnn={"cell": "gru", "hidden_size": 8}))
    model.vocab = vocab
    return model


def test_word_prompts_are_normalised_as_the_corpus_and_unknown_words_are_named():
    model = _word_lm()
    assert model.vocab.tokenize("The Company said 1,000") == ["the", "company", "said", "N"]
    text = model.generate("The company said", 6, generator=torch.Generator().manual_seed(0))
    assert text.startswith("The company said ") and len(text.split()) > 3  # words apart, none glued to the prompt
    with pytest.warns(UserWarning, match=r"1 unit\(s\) of the prompt are not in the model's vocabulary and read as "
                                         r"'<unk>': 'zebras'"):
        model.generate("the zebras", 2)


def test_a_vocabulary_of_another_size_is_refused(tmp_path):
    model = _word_lm()
    model.save(tmp_path)
    short = json.loads((tmp_path / "vocab.json").read_text())
    short["tokens"] = short["tokens"][:-1]
    (tmp_path / "vocab.json").write_text(json.dumps(short))
    with pytest.raises(ValueError, match=r"vocab.json was altered or damaged after it was saved"):
        rnnkit.load(tmp_path)
    write_manifest(tmp_path)  # a vocabulary saved (with its manifest) beside weights it does not fit
    with pytest.raises(ValueError, match=r"vocab.json has 10 tokens but the model has 11"):
        rnnkit.load(tmp_path)
    model.vocab = Vocabulary.from_text("abc")
    with pytest.raises(ValueError, match="model.vocab has 4 tokens but the model has vocab_size 11"):
        model.generate("a", 3)


def test_a_run_made_with_the_trainer_works_with_load_generate_and_evaluate(tmp_path, capsys):
    vocab, train_ids, valid_ids = char_corpus(TEXT)
    model = LanguageModel(LanguageModelConfig(vocab_size=len(vocab), embedding_size=8,
                                              rnn={"cell": "lstm", "hidden_size": 16}))
    model.vocab = vocab
    Trainer(model, StreamBatches(train_ids, 4, 20), TrainConfig(stopping=StoppingConfig(max_steps=5)),
            valid=StreamBatches(valid_ids, 2, 20), run_dir=tmp_path / "run", progress=False).fit()
    loaded = rnnkit.load(tmp_path / "run")  # a run directory: its best checkpoint, vocabulary attached
    assert loaded.vocab == vocab
    text = loaded.generate("It is", 30, generator=torch.Generator().manual_seed(1))
    assert isinstance(text, str) and text.startswith("It is") and len(text) >= 35
    assert main(["generate", str(tmp_path / "run"), "--prompt", "It is", "--length", "30", "--seed", "1"]) == 0
    assert capsys.readouterr().out == text + "\n"
    (tmp_path / "valid.txt").write_text(TEXT[-500:])
    assert main(["evaluate", str(tmp_path / "run"), "--text", str(tmp_path / "valid.txt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tokens"] == 500 and result["loss"] > 0 and result["step"] == 5
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    assert "give --text FILE" in capsys.readouterr().err


def test_saved_files_have_the_permissions_of_any_new_file(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    _word_lm().save(tmp_path)
    for name in ("config.json", "model.safetensors", "vocab.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# ----------------------------------------------------------------------------- pictures


def test_importing_the_plots_leaves_a_notebooks_backend_alone():
    done = _run("import matplotlib\nmatplotlib.use('svg')\nimport rnnkit.plots\nprint(matplotlib.get_backend())")
    assert done.stdout.strip() == "svg", done.stderr


def test_short_runs_get_every_panel_with_points_and_an_accuracy_curve(tmp_path):
    from PIL import Image

    from rnnkit.plots import learning_curves

    records = [{"split": "train", "step": s, "loss": 1.0 / s, "lr": 0.01, "grad_norm": 2.0, "accuracy": 0.5}
               for s in (1, 2, 3)]
    records.append({"split": "valid", "step": 3, "loss": 0.4, "accuracy": 0.9})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"split": "tr')
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        out = learning_curves(tmp_path)
    assert Image.open(out).size[0] == round(4.2 * 90) * 4  # loss, accuracy, gradient norm, learning rate


def test_a_busy_machine_lets_the_threads_sleep_while_they_wait(monkeypatch):
    from rnnkit import cli

    busy = cli._busy_cores(0.05)
    assert busy is None or 0 <= busy <= os.cpu_count()
    monkeypatch.delitem(sys.modules, "torch")  # as in a fresh `rnnkit` process, before torch is imported
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.3, 0.2, 0.1))
    cli._yield_cores_when_busy()
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(os, "getloadavg", lambda: (2.1, 2.0, 1.5))
    monkeypatch.setattr(cli, "_busy_cores", lambda: 0.2)  # the load average still counts a job that just ended
    cli._yield_cores_when_busy()
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(cli, "_busy_cores", lambda: 1.9)
    cli._yield_cores_when_busy()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice stays
    cli._yield_cores_when_busy()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
