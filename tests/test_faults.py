"""Hostile inputs: each case is a clear one-line error naming what is wrong, or a documented,
tested behaviour. Nothing silent, nothing lost."""

from __future__ import annotations

import errno
import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import rnnkit
from rnnkit.cli import main
from rnnkit.ctc import ctc_loss, ctc_posteriors, forced_align, viterbi_loss
from rnnkit.data import StreamBatches, Vocabulary
from rnnkit.decode import (BeamSearchOptions, NGramLM, StopOnToken, beam_search, ctc_beam_search, ctc_greedy,
                           generate)
from rnnkit.divergence import sequence_cross_entropy
from rnnkit.files import write_manifest
from rnnkit.models import (CTCRecognizerConfig, LanguageModel, LanguageModelConfig, Seq2SeqConfig, Tagger,
                           TaggerConfig)
from rnnkit.models.ctc import CTCRecognizer
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.run_dir import RunDir
from rnnkit.tasks.common import read_task
from rnnkit.train import OptimizerConfig, ScheduleConfig, StoppingConfig, TrainConfig, Trainer

# ----------------------------------------------------------------------------- CTC and divergences


def _ctc_inputs(nan_rows=(1,), B=3, T=12, C=5):
    lp = torch.randn(B, T, C, dtype=torch.float64).log_softmax(-1)
    for b in nan_rows:
        lp[b, 4, 2] = float("nan")
    return lp, torch.tensor([[1, 2], [3, 4], [2, 2]]), torch.full((B,), T), torch.full((B,), 2)


CTC_NAN = [
    ("ctc_loss", lambda: ctc_loss(*_ctc_inputs())),
    ("ctc_loss zero_infinity", lambda: ctc_loss(*_ctc_inputs(), zero_infinity=True)),
    ("ctc_loss reduction none", lambda: ctc_loss(*_ctc_inputs(), reduction="none")),
    ("ctc_posteriors", lambda: ctc_posteriors(*_ctc_inputs())),
    ("forced_align", lambda: forced_align(*_ctc_inputs())),
    ("viterbi_loss", lambda: viterbi_loss(*_ctc_inputs())),
    ("ctc_greedy", lambda: ctc_greedy(_ctc_inputs()[0])),
    ("ctc_beam_search, one row", lambda: ctc_beam_search(_ctc_inputs()[0])),
    ("ctc_beam_search, every row", lambda: ctc_beam_search(_ctc_inputs(nan_rows=(0, 1, 2))[0])),
]


@pytest.mark.parametrize("name,call", CTC_NAN, ids=[c[0] for c in CTC_NAN])
def test_nan_in_ctc_inputs_is_an_error_naming_the_rows(name, call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and never the "no alignment" warning
        with pytest.raises(ValueError, match=r"log_probs contains NaN in rows \[(0, )?1"):
            call()


def test_nan_in_every_row_names_every_row():
    with pytest.raises(ValueError, match=r"NaN in rows \[0, 1, 2\]"):
        ctc_loss(*_ctc_inputs(nan_rows=(0, 1, 2)))


CTC_BAD = [
    ("empty batch", lambda: ctc_loss(torch.zeros(0, 5, 4), torch.zeros(0, 1, dtype=torch.long), [], []),
     "at least one row"),
    ("float targets tensor", lambda: ctc_loss(torch.randn(1, 8, 5).log_softmax(-1), torch.tensor([[1.7, 2.2, 3.9]]),
                                              [8], [3]), "targets must be integer class ids. Received: dtype float32"),
    ("float targets list", lambda: ctc_loss(torch.randn(1, 8, 5).log_softmax(-1), [1.7, 2.2, 3.9], [8], [3]),
     "targets must be integer class ids. Received: dtype float64"),
    ("logits instead of log-probabilities", lambda: ctc_loss(torch.randn(1, 8, 5) + 3, [[1, 2]], [8], [2]),
     "apply log_softmax"),
    ("blank in the targets", lambda: ctc_loss(torch.randn(1, 8, 5).log_softmax(-1), [[1, 0]], [8], [2]),
     "must not contain the blank"),
    ("target id out of range", lambda: ctc_loss(torch.randn(1, 8, 5).log_softmax(-1), [[1, 7]], [8], [2]),
     r"class ids in \[0, 5\)"),
    ("input length beyond the frames", lambda: ctc_loss(torch.randn(1, 8, 5).log_softmax(-1), [[1, 2]], [9], [2]),
     "input_lengths must be <= 8"),
    ("negative target length", lambda: ctc_loss(torch.randn(1, 8, 5).log_softmax(-1), [[1, 2]], [8], [-1]),
     "target_lengths must be >= 0"),
]


@pytest.mark.parametrize("name,call,message", CTC_BAD, ids=[c[0] for c in CTC_BAD])
def test_bad_ctc_inputs_are_refused(name, call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("case", ["every target ignored", "every weight zero"])
def test_nothing_to_count_gives_zero_loss_and_zero_gradient(case):
    logits = torch.randn(2, 4, 3, requires_grad=True)
    targets = torch.full((2, 4), -100) if case == "every target ignored" else torch.ones(2, 4, dtype=torch.long)
    weights = torch.zeros(4) if case == "every weight zero" else None
    loss = sequence_cross_entropy(logits, targets, weights=weights)
    loss.backward()
    value = float(loss.detach())
    assert value == 0.0 and not math.isnan(value) and bool((logits.grad == 0).all())


# ----------------------------------------------------------------------------- decoders and generation


def _step(kind: str, classes: int = 6):
    def step(tokens, state):
        scores = torch.randn(len(tokens), classes)
        if kind == "nan":
            scores[0, 1] = float("nan")
            return scores.log_softmax(-1), state
        if kind == "probabilities":
            return scores.softmax(-1), state
        if kind == "logits":
            return scores, state
        return scores.log_softmax(-1), state

    return step


START = torch.zeros(2, dtype=torch.long)
GENERATION = [
    ("generate, NaN", lambda: generate(_step("nan"), None, START, 5), "step returned NaN log-probabilities at step 0"),
    ("generate, probabilities", lambda: generate(_step("probabilities"), None, START, 5),
     "step must return log-probabilities"),
    ("generate, logits", lambda: generate(_step("logits"), None, START, 5), "step must return log-probabilities"),
    ("generate, greedy logits", lambda: generate(_step("logits"), None, START, 5, greedy=True),
     "step must return log-probabilities"),
    ("generate, stop token beyond the classes", lambda: generate(_step("ok"), None, START, 5, stop=StopOnToken(99)),
     "StopOnToken\\(99\\): the step gives 6 classes"),
    ("generate, stop id beyond the classes", lambda: generate(_step("ok"), None, START, 5, stop=99),
     "StopOnToken\\(99\\)"),
    ("generate, a step that returns a tuple", lambda: generate(lambda t, s: ([0.1], s), None, START, 5),
     "step must return \\(log_probs"),
    ("beam_search, NaN", lambda: beam_search(_step("nan"), None, START, 3, 5), "step returned NaN"),
    ("beam_search, logits", lambda: beam_search(_step("logits"), None, START, 3, 5),
     "step must return log-probabilities"),
    ("beam_search, stop token beyond the classes", lambda: beam_search(_step("ok"), None, START, 3, 5, stop=99),
     "StopOnToken\\(99\\)"),
    ("StopOnToken(-1)", lambda: StopOnToken(-1), "eos must be a token id >= 0"),
    ("beam options, lm_weight NaN", lambda: BeamSearchOptions(lm_weight=float("nan")), "lm_weight must be a finite"),
    ("beam options, word_score inf", lambda: BeamSearchOptions(word_score=math.inf), "word_score must be a finite"),
    ("beam options, token_min_logp NaN", lambda: BeamSearchOptions(token_min_logp=float("nan")),
     "token_min_logp must be a number or -inf"),
    ("beam options, positive prune margin", lambda: BeamSearchOptions(beam_prune_logp=1.0), "must be <= 0"),
    ("beam options, beam 0", lambda: BeamSearchOptions(beam_width=0), "beam_width must be an integer >= 1"),
    ("ctc_beam_search, token_min_logp None", lambda: ctc_beam_search(torch.randn(1, 5, 4).log_softmax(-1),
                                                                     token_min_logp=None),
     "token_min_logp must be a number or -inf. Received: None"),
    ("ctc_beam_search, blank None", lambda: ctc_beam_search(torch.randn(1, 5, 4).log_softmax(-1), blank=None),
     "blank must be a class id"),
    ("ctc_greedy, float lengths", lambda: ctc_greedy(torch.randn(1, 5, 4).log_softmax(-1), torch.tensor([4.5])),
     "lengths must be integer frame counts"),
    ("generate, temperature None", lambda: generate(_step("ok"), None, START, 5, temperature=None),
     "temperature must be a finite number > 0"),
    ("generate, temperature NaN", lambda: generate(_step("ok"), None, START, 5, temperature=float("nan")),
     "temperature must be a finite number > 0"),
    ("generate, temperature inf", lambda: generate(_step("ok"), None, START, 5, temperature=math.inf),
     "temperature must be a finite number > 0"),
    ("generate, top_k 2.5", lambda: generate(_step("ok"), None, START, 5, top_k=2.5), "top_k must be an integer"),
    ("generate, max_length None", lambda: generate(_step("ok"), None, START, None), "max_length must be an integer"),
    ("beam_search, max_length 2.5", lambda: beam_search(_step("ok"), None, START, 2, 2.5),
     "max_length must be an integer"),
    ("beam_search, length_normalization NaN", lambda: beam_search(_step("ok"), None, START, 2, 3,
                                                                  length_normalization=float("nan")),
     "length_normalization must be a finite number >= 0"),
    ("beam_search, length_penalty None", lambda: beam_search(_step("ok"), None, START, 2, 3, length_penalty=None),
     "length_penalty must be a finite number"),
    ("ctc_beam_search, lm_weight NaN", lambda: ctc_beam_search(torch.randn(1, 5, 4).log_softmax(-1),
                                                               lm_weight=float("nan")), "lm_weight must be a finite"),
]


@pytest.mark.parametrize("name,call,message", GENERATION, ids=[c[0] for c in GENERATION])
def test_decoders_and_generation_refuse_what_they_cannot_use(name, call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_minus_infinity_is_a_probability_of_zero_not_an_error():
    lp = torch.randn(1, 6, 4).log_softmax(-1)
    lp[0, :, 3] = -math.inf  # a class the model rules out
    assert ctc_greedy(lp)[0].score > -math.inf
    assert math.isfinite(float(ctc_loss(lp, [[1, 2]], [6], [2])))


# ----------------------------------------------------------------------------- configs


CONFIGS = [
    ("vocab_size 0", lambda: LanguageModel(LanguageModelConfig(vocab_size=0)), "LanguageModelConfig.vocab_size"),
    ("embedding_size 2.5", lambda: LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=2.5)),
     "embedding_size must be an integer >= 1"),
    ("dropout 1", lambda: LanguageModel(LanguageModelConfig(vocab_size=5, dropout=1.0)), "dropout must be in \\[0, 1\\)"),
    ("init_range 0", lambda: LanguageModel(LanguageModelConfig(vocab_size=5, init_range=0)), "init_range must be > 0"),
    ("num_tags 0", lambda: Tagger(TaggerConfig(num_tags=0, vocab_size=5)), "TaggerConfig.num_tags"),
    ("num_tokens 0", lambda: CTCRecognizer(CTCRecognizerConfig(input_size=3, num_tokens=0)), "num_tokens"),
    ("blank -1", lambda: CTCRecognizer(CTCRecognizerConfig(input_size=3, num_tokens=4, blank=-1)), "blank must be a token id"),
    ("src_vocab -1", lambda: Seq2Seq(Seq2SeqConfig(src_vocab=-1, tgt_vocab=5)), "src_vocab must be an integer >= 1"),
    ("clip_norm -1", lambda: TrainConfig(clip_norm=-1), "clip_norm must be a finite number > 0"),
    ("clip_value 0", lambda: TrainConfig(clip_value=0), "clip_value must be a finite number > 0"),
    ("accumulate 0", lambda: TrainConfig(accumulate=0), "accumulate must be an integer >= 1"),
    ("eval_every 0", lambda: TrainConfig(eval_every=0), "eval_every must be an integer >= 1"),
    ("eval_batches 0", lambda: TrainConfig(eval_batches=0), "eval_batches must be an integer >= 1"),
    ("keep_last 0", lambda: TrainConfig(keep_last=0), "keep_last must be an integer >= 1"),
    ("log_every 0", lambda: TrainConfig(log_every=0), "log_every must be an integer >= 1"),
    ("teacher_forcing 1.5", lambda: TrainConfig(teacher_forcing=1.5), "teacher_forcing must be a ratio"),
    ("lr 0", lambda: OptimizerConfig(lr=0), "optimizer.lr must be a finite number > 0"),
    ("lr NaN", lambda: OptimizerConfig(lr=float("nan")), "optimizer.lr must be a finite number > 0"),
    ("momentum 1", lambda: OptimizerConfig("sgd", momentum=1.0), "optimizer.momentum must be in \\[0, 1\\)"),
    ("weight_decay -1", lambda: OptimizerConfig(weight_decay=-1), "weight_decay must be a finite number >= 0"),
    ("unknown optimizer", lambda: OptimizerConfig("lbfgs"), "optimizer.name must be one of"),
    ("epochs 0", lambda: StoppingConfig(epochs=0), "stopping.epochs must be an integer >= 1"),
    ("minutes -1", lambda: StoppingConfig(minutes=-1), "stopping.minutes must be a finite number > 0"),
    ("max_steps 1.5", lambda: StoppingConfig(max_steps=1.5), "stopping.max_steps must be an integer >= 1"),
    ("schedule kind", lambda: ScheduleConfig("linear"), "schedule.kind must be one of"),
    ("decay_factor 0", lambda: ScheduleConfig("step", decay_factor=0), "schedule.decay_factor must be in \\(0, 1\\]"),
    ("patience -1", lambda: ScheduleConfig("plateau", patience=-1), "schedule.patience must be an integer >= 0"),
    ("a config of JSON with an unknown field", lambda: TrainConfig.from_dict({"clip": 5}), "unknown fields \\['clip'\\]"),
]


@pytest.mark.parametrize("name,call,message", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_configs_are_checked_when_built(name, call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- files


@pytest.fixture
def saved(tmp_path) -> Path:
    model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=4, rnn={"cell": "gru", "hidden_size": 4}))
    model.vocab = Vocabulary(["<unk>", "a", "b", "c", "d"], unk="<unk>")
    return model.save(tmp_path / "model")


def _edit_json(path: Path, change) -> None:
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))
    write_manifest(path.parent)  # as if saved so: the content, not the manifest, is what is wrong


def _flip_a_weight_byte(path: Path) -> None:
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-3] ^= 0x40  # a byte of the tensor data, not of the header: still a well-formed file
    (path / "model.safetensors").write_bytes(bytes(data))


def _retype_weights(path: Path, change) -> None:
    tensors = load_file(str(path / "model.safetensors"))
    save_file({k: change(v) for k, v in tensors.items()}, str(path / "model.safetensors"))
    write_manifest(path)


FILES = [
    ("a flipped byte in the weights", _flip_a_weight_byte, "model.safetensors was altered or damaged"),
    ("a deleted vocabulary", lambda p: (p / "vocab.json").unlink(), "vocab.json is missing"),
    ("a damaged manifest", lambda p: (p / "manifest.json").write_text("{"), "manifest.json is damaged"),
    ("integer weights", lambda p: _retype_weights(p, lambda t: t.long()), "is I64, not floating point"),
    ("NaN weights", lambda p: _retype_weights(p, lambda t: t * float("nan")), "holds NaN or infinite values"),
    ("a shorter vocabulary", lambda p: _edit_json(p / "vocab.json", lambda o: o["tokens"].pop()),
     "vocab.json has 4 tokens but the model has 5"),
    ("vocabulary tokens not a list", lambda p: _edit_json(p / "vocab.json", lambda o: o.update(tokens="abc")),
     "vocab.json: expected a JSON object with a list of \"tokens\""),
    ("a vocabulary with a bad type", lambda p: _edit_json(p / "vocab.json", lambda o: o.update(lowercase="yes")),
     "vocab.json: \"lowercase\" has the wrong type"),
    ("a config without its settings", lambda p: _edit_json(p / "config.json", lambda o: o.pop("config")),
     "config.json: \"config\" must be a JSON object"),
    ("a config with a wrong type", lambda p: _edit_json(p / "config.json", lambda o: o["config"].update(vocab_size="5")),
     "config.json: not a valid LanguageModel config \\(LanguageModelConfig.vocab_size must be an integer"),
    ("a config with an unknown field", lambda p: _edit_json(p / "config.json", lambda o: o["config"].update(size=3)),
     "unknown fields \\['size'\\]"),
]


@pytest.mark.parametrize("name,damage,message", FILES, ids=[c[0] for c in FILES])
def test_damaged_or_tampered_model_files_are_refused_by_name(name, damage, message, saved):
    damage(saved)
    with pytest.raises(ValueError, match=message):
        rnnkit.load(saved)


def test_a_task_json_of_the_wrong_shape_names_the_file(tmp_path):
    (tmp_path / "task.json").write_text(json.dumps({"task": "charlm", "args": ["--lr", "1"]}))
    with pytest.raises(ValueError, match="task.json: expected"):
        read_task(tmp_path / "task.json")


def _trainer(run: Path, steps: int, resume: bool = False) -> Trainer:
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_size=4, rnn={"cell": "gru", "hidden_size": 4}))
    ids = torch.randint(0, 5, (400,), generator=torch.Generator().manual_seed(1))
    return Trainer(model, StreamBatches(ids, 4, 10), TrainConfig(stopping=StoppingConfig(max_steps=steps),
                                                                checkpoint_every=2, keep_last=3, log_every=1),
                   run_dir=run, resume=resume, progress=False)


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_with_a_warning(tmp_path):
    _trainer(tmp_path / "run", 6).fit()
    newest = RunDir(tmp_path / "run").checkpoints()[-1].path
    _flip_a_weight_byte(newest)
    with pytest.warns(UserWarning, match="resuming from the checkpoint before it, step-00000004"):
        result = _trainer(tmp_path / "run", 8, resume=True).fit()
    assert result["step"] == 8
    reference = _trainer(tmp_path / "whole", 8).fit()
    assert result["history"][-1]["loss"] == reference["history"][-1]["loss"]


def test_a_kill_between_the_two_renames_of_best_loses_nothing(tmp_path):
    _trainer(tmp_path / "run", 4).fit()
    run = RunDir(tmp_path / "run")
    shutil.copytree(run.checkpoints()[-1].path, run.best.path)
    best = _weights_of(run.best.path)
    run.best.path.rename(run.path / "best.old")  # copy_as killed after moving the old copy aside
    _trainer(tmp_path / "run", 4, resume=True).fit()
    assert run.best.exists() and not (run.path / "best.old").exists()
    assert all(torch.equal(best[k], v) for k, v in _weights_of(run.best.path).items())


def _weights_of(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_metrics_with_a_damaged_line_before_the_last_name_the_file_and_line(tmp_path):
    _trainer(tmp_path / "run", 4).fit()
    metrics = tmp_path / "run" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], "{torn", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 2: not a metrics record"):
        _trainer(tmp_path / "run", 6, resume=True).fit()


def test_a_torn_last_metrics_line_is_dropped_and_the_run_resumes(tmp_path):
    _trainer(tmp_path / "run", 4).fit()
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"split": "train", "st')
    with pytest.warns(UserWarning, match="dropped a torn last line"):
        assert _trainer(tmp_path / "run", 6, resume=True).fit()["step"] == 6
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


# ----------------------------------------------------------------------------- ARPA files


ARPA = "\\data\\\nngram 1=3\n\n\\1-grams:\n{a}\t<s>\n-0.5\t</s>\n-0.5\tcat\n\n\\end\\\n"


@pytest.mark.parametrize("line,message", [
    ("nan", r"\.arpa:5: a log10 probability must be <= 0. Received: nan"),
    ("0.5", r"\.arpa:5: a log10 probability must be <= 0. Received: 0.5"),
    ("-1\tcat\t0.2 extra", r"\.arpa:5: a 1-gram line needs"),
])
def test_arpa_files_with_impossible_values_are_refused_by_line(tmp_path, line, message):
    path = tmp_path / "lm.arpa"
    path.write_text(ARPA.replace("{a}", line.replace("\tcat\t0.2 extra", "") if "extra" not in line else line))
    with pytest.raises(ValueError, match=message):
        NGramLM(path, backend="python")


def test_a_latin1_arpa_file_names_the_line(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_bytes(ARPA.replace("{a}", "-99").replace("cat", "caf\xe9").encode("latin-1"))
    with pytest.raises(ValueError, match=r"lm.arpa:7: not UTF-8 \(byte b'\\xe9'\)"):
        NGramLM(path, backend="python")


def test_kenlm_errors_are_one_line_naming_the_file(tmp_path):
    pytest.importorskip("kenlm")
    path = tmp_path / "lm.arpa"
    path.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\t<s>\n\\end\\\n")
    with pytest.raises(ValueError, match=r"lm.arpa: kenlm cannot read this ARPA file: ") as error:
        NGramLM(path, backend="kenlm")
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- the command line and the disk

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
TINY = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--batch-size", "4", "--bptt", "16", "--samples", "0",
        "--eval-every", "5", "--eval-batches", "2", "--no-progress"]


@pytest.fixture
def text(tmp_path) -> Path:
    path = tmp_path / "fox.txt"
    path.write_text(TEXT)
    return path


def test_runs_pointing_at_a_file_is_one_line(text, tmp_path, capsys):
    (tmp_path / "runs").write_text("not a folder")
    assert main(["train", "charlm", "--text", str(text), "--max-steps", "2", "--runs", str(tmp_path / "runs"),
                 *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnnkit: error: --runs {tmp_path / 'runs'}: cannot create the run directory")
    assert err.count("\n") == 1


def test_a_full_disk_is_one_line_and_the_last_good_checkpoint_stays_valid(text, tmp_path, capsys, monkeypatch):
    from rnnkit.train import checkpoint

    assert main(["train", "charlm", "--text", str(text), "--max-steps", "5", "--runs", str(tmp_path), *TINY]) == 0
    (run,) = tmp_path.glob("charlm-*")
    good = RunDir(run).checkpoints()[-1]
    before = {p.name: p.read_bytes() for p in good.path.iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    capsys.readouterr()
    assert main(["train", "charlm", "--resume", str(run), "--max-steps", "10", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "rnnkit: error: [Errno 28] No space left on device" and "Traceback" not in err
    assert RunDir(run).checkpoints()[-1] == good and {p.name: p.read_bytes() for p in good.path.iterdir()} == before
    monkeypatch.undo()
    assert isinstance(rnnkit.load(run), LanguageModel)
    assert main(["train", "charlm", "--resume", str(run), "--max-steps", "10", "--no-progress"]) == 0


@pytest.mark.parametrize("flag,value,message", [
    ("--hidden", "16", "--hidden 16 (the run has 8)"),
    ("--bptt", "32", "--bptt 32 (the run has 16)"),
    ("--batch-size", "8", "--batch-size 8 (the run has 4)"),
])
def test_resume_with_a_changed_model_or_data_setting_names_both_values(text, tmp_path, capsys, flag, value, message):
    assert main(["train", "charlm", "--text", str(text), "--max-steps", "2", "--runs", str(tmp_path), *TINY]) == 0
    (run,) = tmp_path.glob("charlm-*")
    capsys.readouterr()
    assert main(["train", "charlm", "--resume", str(run), flag, value, "--max-steps", "4"]) == 2
    err = capsys.readouterr().err
    assert message in err and "damaged" not in err and err.count("\n") == 1


def test_resuming_another_tasks_run_is_refused(text, tmp_path, capsys):
    assert main(["train", "charlm", "--text", str(text), "--max-steps", "2", "--runs", str(tmp_path), *TINY]) == 0
    (run,) = tmp_path.glob("charlm-*")
    capsys.readouterr()
    assert main(["train", "addition", "--resume", str(run), "--no-progress"]) == 2
    assert "that is a charlm run, not addition" in capsys.readouterr().err


def test_a_finished_run_resumed_is_left_as_it_was(text, tmp_path, capsys):
    assert main(["train", "charlm", "--text", str(text), "--max-steps", "6", "--runs", str(tmp_path), *TINY]) == 0
    (run,) = tmp_path.glob("charlm-*")
    files = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and "plots" not in p.parts}
    for _ in range(2):
        assert main(["train", "charlm", "--resume", str(run), "--no-progress"]) == 0
        assert "had already finished at step 6; nothing to do" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and "plots" not in p.parts} == files


def test_a_run_copied_elsewhere_still_loads(text, tmp_path):
    assert main(["train", "charlm", "--text", str(text), "--max-steps", "2", "--runs", str(tmp_path / "a"),
                 *TINY]) == 0
    (run,) = (tmp_path / "a").glob("charlm-*")
    shutil.copytree(run, tmp_path / "copy")
    assert isinstance(rnnkit.load(tmp_path / "copy"), LanguageModel)


def test_changing_a_setting_on_resume_is_explicit_and_recorded(text, tmp_path, capsys):
    assert main(["train", "charlm", "--text", str(text), "--max-steps", "2", "--runs", str(tmp_path), *TINY]) == 0
    (run,) = tmp_path.glob("charlm-*")
    capsys.readouterr()
    assert main(["train", "charlm", "--resume", str(run), "--lr", "0.001", "--max-steps", "4",
                 "--allow-changes", "--no-progress"]) == 0
    assert "rnnkit: warning: " in capsys.readouterr().err
    assert json.loads((run / "task.json").read_text())["args"]["lr"] == 0.001
    last = RunDir(run).checkpoints()[-1]
    assert last.step() == 4
    assert torch.load(last.path / "optimizer.pt", weights_only=True)["param_groups"][0]["lr"] == 0.001
