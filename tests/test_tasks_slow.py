"""The tasks' published-result goals, as long runs outside the default suite (make test-slow).

Each runs the command the README reports and checks the goal the README states.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rnnkit.cli import main

pytestmark = pytest.mark.slow


def _results(runs: Path) -> dict:
    (run,) = runs.iterdir()
    return json.loads((run / "results.json").read_text())


def test_addition_rnn_generalises_to_4n_bits_and_the_mlp_does_not(tmp_path):
    """rnnkit train addition (under a minute): 100% exact at 4N bits, the MLP baseline fails beyond N."""
    assert main(["train", "addition", "--runs", str(tmp_path), "--no-progress"]) == 0
    rows = {r["bits"]: r for r in _results(tmp_path)["results"]}
    assert rows[32]["rnn_exact"] == 1.0
    assert rows[8]["mlp_exact"] > 0.5 and all(rows[b]["mlp_exact"] < 0.05 for b in (9, 16, 32))


def test_charlm_tinyshakespeare_reaches_1_50_nats_in_30_minutes(tmp_path):
    """The README's tiny-shakespeare command (30 minutes): the best checkpoint's loss on the whole
    validation text <= 1.50 nats/char."""
    assert main(["train", "charlm", "--dataset", "tinyshakespeare", "--minutes", "30", "--hidden", "384",
                 "--dropout", "0.2", "--eval-every", "1000", "--eval-batches", "1000", "--runs", str(tmp_path),
                 "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "results.json").read_text())["valid_loss"] <= 1.50


def test_digits_standard_split_reaches_the_readme_word_error_rates(tmp_path, capsys):
    """The README's speech command (about 20 minutes): valid WER with the lexicon <= 5%, and the
    test WER of beam search + lexicon + LM <= 5%."""
    assert main(["train", "digits", "--runs", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "results.json").read_text())["valid"]["wer_lexicon"] <= 0.05
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["wer_lexicon_lm"] <= 0.05


def test_pos_reaches_the_readme_upos_accuracy(tmp_path, capsys):
    """The README's tagging command (11 minutes idle): UPOS test accuracy >= 95.0%."""
    assert main(["train", "pos", "--runs", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.95


def test_sentiment_bidirectional_reaches_the_readme_accuracy(tmp_path, capsys):
    """The README's sentiment command (about 12 minutes): fine-grained test accuracy >= 46% and,
    from the same run, binary >= 85% (the issue's goals; measured: 49.77% and 88.36%)."""
    assert main(["train", "sentiment", "--bidirectional", "--runs", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--no-progress"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["accuracy"] >= 0.46 and scores["binary_accuracy"] >= 0.85


def test_sentiment_tree_lstm_reaches_the_readme_accuracy(tmp_path, capsys):
    """The README's tree-net command (about 6 minutes with another job): fine-grained test
    accuracy >= 48% (the issue's goal; measured: 49.37%)."""
    assert main(["train", "sentiment", "--model", "treelstm", "--runs", str(tmp_path), "--no-progress"]) == 0
    (run,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] >= 0.48


@pytest.mark.parametrize("task, trained, beyond", [("copy", 20, 40), ("recall", 6, 12)])
def test_the_ntm_generalises_beyond_its_training_sizes_and_the_lstm_does_not(tmp_path, task, trained, beyond):
    """The README's copy and recall commands (10 minutes each): the machine gets at most 1 bit
    wrong per problem at twice the largest training size, the LSTM baseline, trained as long,
    many more."""
    for model in ("ntm", "lstm"):
        assert main(["train", task, "--model", model, "--runs", str(tmp_path / model), "--no-progress"]) == 0
    ntm, lstm = (_results(tmp_path / model)["test"] for model in ("ntm", "lstm"))
    assert ntm[f"bits_wrong_{trained}"] <= 1 and ntm[f"bits_wrong_{beyond}"] <= 1
    assert lstm[f"bits_wrong_{beyond}"] > 3


def _test_bleu(run, capsys) -> float:
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--no-progress"]) == 0
    return json.loads(capsys.readouterr().out)["bleu_beam"]


def test_translate_reaches_the_readme_bleu(tmp_path, capsys):
    """The README's translation commands: `all` (25 minutes of training), then the tutorial run
    fine-tuned from it (--init-from, about 4 minutes): test BLEU with beam search and all
    references (measured: 39.3 and 54.4; goals 35 and 50)."""
    assert main(["train", "translate", "--subset", "all", "--runs", str(tmp_path / "all"), "--no-progress"]) == 0
    (run,) = (tmp_path / "all").iterdir()
    assert _test_bleu(run, capsys) >= 35.0
    assert main(["train", "translate", "--subset", "tutorial", "--init-from", str(run), "--dropout", "0.1", "--lr",
                 "1e-3", "--runs", str(tmp_path / "tutorial"), "--no-progress"]) == 0
    (tuned,) = (tmp_path / "tutorial").iterdir()
    assert _test_bleu(tuned, capsys) >= 50.0
