"""Translation: pairs, the split by source sentence, subwords, the encoder-decoder's two decoding paths, the task."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import demo_client, stand_in_dataset
from rnnkit.cli import main
from rnnkit.data.subwords import SubwordTokenizer
from rnnkit.data.translation import (SUBSETS, normalize, read_pairs, split_by_source, tutorial_tokens,
                                     with_references)
from rnnkit.models import Seq2Seq, Seq2SeqConfig
from rnnkit.models.attention import Attention

SUBJECTS = [("I am", "Je suis"), ("I'm", "Je suis"), ("He is", "Il est"), ("She's", "Elle est"),
            ("We are", "Nous sommes"), ("They're", "Ils sont"), ("You are", "Vous êtes")]
ADJECTIVES = [("cold", "froid"), ("tall", "grand"), ("happy", "heureux"), ("tired", "fatigué"), ("late", "en retard"),
              ("ready", "prêt"), ("busy", "occupé"), ("sad", "triste"), ("rich", "riche"), ("calm", "calme")]


def fra_text() -> str:
    """Pairs the tutorial filter keeps (some English with two translations), and pairs it drops."""
    lines = []
    for en, fr in SUBJECTS:
        for a, b in ADJECTIVES:
            lines.append(f"{en} {a}.\t{fr}\u202f{b}.")
            if en == "You are":
                lines.append(f"{en} {a}.\tTu es {b}.")
    lines += ["Go.\tVa !", "Run!\tCours !", "Run!\tCourez !", "It is cold today and tomorrow it will be colder "
              "than ever before in the whole long history of this small town.\tIl fait froid."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- pairs and splits

def test_read_pairs_normalises_and_names_a_bad_line(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa\u202f!\tCC-BY 2.0 (France) Attribution\nI'm  late.\tJe suis\u00a0en retard.\u200b\n",
                    encoding="utf-8")
    assert read_pairs(path) == [("Go.", "Va !"), ("I'm late.", "Je suis en retard.")]
    path.write_text("Go.\tVa !\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"fra.txt:2: expected two non-empty tab-separated columns"):
        read_pairs(path)


def test_tutorial_subset_is_the_tutorials_filter():
    keep = SUBSETS["tutorial"]
    assert tutorial_tokens("I'm cold, Tom!") == ["i", "m", "cold", "tom", "!"]
    assert keep(("I'm cold.", "J'ai froid.")) and keep(("They're late.", "Ils sont en retard."))
    assert keep(("He's tall.", "Il est grand.")) and not keep(("Hello.", "Salut."))
    assert not keep(("Heston is here.", "Heston est ici."))  # "he s " needs the word break
    assert not keep(("I am " + "very " * 7 + "cold.", "J'ai froid."))  # 10 tokens: not fewer than 10
    assert SUBSETS["all"](("a " * 19 + "b", "c")) and not SUBSETS["all"](("a " * 20 + "b", "c"))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefghij"), st.sampled_from("uvwxyz")), min_size=1, max_size=60),
       st.integers(0, 10))
def test_split_never_puts_one_source_in_two_splits(pairs, seed):
    split = split_by_source(pairs, seed)
    where = {}
    for name, items in split.items():
        for source, _ in items:
            assert where.setdefault(source, name) == name
    assert sorted(p for items in split.values() for p in items) == sorted(pairs)  # nothing lost or added
    assert split == split_by_source(pairs, seed)


def test_split_fractions_and_references():
    pairs = [(f"s{i}", f"t{i}") for i in range(1000)] + [("s1", "t1b")]
    split = split_by_source(pairs, 0)
    assert [len({s for s, _ in split[n]}) for n in ("train", "valid", "test")] == [900, 50, 50]
    sources, references = with_references([("a", "x"), ("b", "y"), ("a", "z")])
    assert sources == ["a", "b"] and references == [["x", "z"], ["y"]]


# ----------------------------------------------------------------------------- subwords

TRAIN_TEXT = [f"{en} {a}." for en, _ in SUBJECTS for a, _ in ADJECTIVES] + ["Où est-ce ? Ça va, l'œuf.", "Déjà vu !"]
ALPHABET = sorted({ch for s in TRAIN_TEXT for ch in s} - {" "})


@pytest.fixture(scope="module")
def tokenizer():
    return SubwordTokenizer.train(TRAIN_TEXT, 60)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(ALPHABET, min_size=1, max_size=8), min_size=1, max_size=6))
def test_subwords_round_trip(tokenizer, words):
    text = " ".join(words)
    ids = tokenizer.encode(text)
    assert 0 not in ids and tokenizer.decode(ids) == text


def test_subword_model_is_deterministic_saved_and_checked(tokenizer, tmp_path):
    assert SubwordTokenizer.train(TRAIN_TEXT, 60).model == tokenizer.model
    tokenizer.save(tmp_path / "m.spm")
    again = SubwordTokenizer.load(tmp_path / "m.spm")
    assert again.encode("I am cold.") == tokenizer.encode("I am cold.") and len(again) == len(tokenizer)
    (tmp_path / "bad.spm").write_bytes(b"\x80\x04not a model")
    with pytest.raises(ValueError, match="bad.spm: not a sentencepiece model"):
        SubwordTokenizer.load(tmp_path / "bad.spm")
    assert 0 in tokenizer.encode("我")  # an unseen character: the unknown piece
    assert tokenizer.characters() == set(ALPHABET)  # not "<", "/", ">" of the special symbols' names


# ----------------------------------------------------------------------------- the model's two paths

@pytest.mark.parametrize("attention", ["none", "dot", "general", "additive"])
@pytest.mark.parametrize("layers", [1, 2])
def test_whole_target_decoding_equals_step_by_step(attention, layers):
    """Without input feeding, teacher-forced training runs the decoder stack over the whole
    target at once: the same numbers as the step function beam search uses."""
    torch.manual_seed(0)
    enc = {"cell": "lstm", "hidden_size": 8, "bidirectional": attention != "dot"}
    model = Seq2Seq(Seq2SeqConfig(src_vocab=9, tgt_vocab=7, embedding_size=6, encoder=enc, decoder_hidden=8,
                                  decoder_layers=layers, attention=attention, input_feeding=False)).double().eval()
    src, lengths, tgt = torch.randint(0, 9, (3, 5)), torch.tensor([5, 2, 4]), torch.randint(0, 7, (3, 4))
    whole, alpha = model(src, lengths, tgt)
    state, steps, alphas = model.encode(src, lengths), [], []
    for t in range(tgt.shape[1]):
        out, a, state = model._decode(tgt[:, t], state)
        steps.append(out)
        alphas.append(a)
    torch.testing.assert_close(whole, torch.stack(steps, 1), rtol=0, atol=1e-12)
    if attention != "none":
        torch.testing.assert_close(alpha, torch.stack(alphas, 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("score", ["dot", "general", "additive"])
def test_attention_over_many_queries_gradcheck_and_equals_one_at_a_time(score):
    torch.manual_seed(1)
    att = Attention(score, 4, 4).double()
    q = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    memory = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    context, alpha = att(q, att.keys(memory), memory, mask)
    for t in range(3):
        c, a = att(q[:, t], att.keys(memory), memory, mask)
        torch.testing.assert_close(context[:, t], c, rtol=0, atol=1e-14)
        torch.testing.assert_close(alpha[:, t], a, rtol=0, atol=1e-14)
    assert torch.all(alpha[1, :, 2:] == 0)
    assert torch.autograd.gradcheck(lambda q, m: att(q, att.keys(m), m, mask), (q, memory))


def test_tied_embeddings_survive_saving(tmp_path):
    import rnnkit

    config = Seq2SeqConfig(src_vocab=5, tgt_vocab=6, embedding_size=8, decoder_hidden=8, tie_embeddings=True,
                           encoder={"cell": "lstm", "hidden_size": 4, "bidirectional": True})
    model = Seq2Seq(config)
    assert model.output.weight is model.tgt_embedding.weight
    again = rnnkit.load(model.save(tmp_path / "m"))
    assert again.output.weight is again.tgt_embedding.weight
    torch.testing.assert_close(again.output.weight, model.output.weight)
    with pytest.raises(ValueError, match="tie_embeddings needs embedding_size == decoder_hidden"):
        Seq2Seq(Seq2SeqConfig(src_vocab=5, tgt_vocab=6, embedding_size=8, decoder_hidden=16, tie_embeddings=True))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        Seq2Seq(Seq2SeqConfig(src_vocab=5, tgt_vocab=6, label_smoothing=1.5))


# ----------------------------------------------------------------------------- the task and its verbs

@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        stand_in_dataset(mp, root, "eng_fra", {"fra.txt": fra_text()})
        yield root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "translate", "--runs", str(root), "--data-dir", str(data), "--device", "cpu",
                 "--no-progress", "--max-steps", "40", "--embedding", "16", "--hidden", "16", "--decoder-hidden", "16",
                 "--vocab-size", "70", "--batch-size", "16", "--beam", "3", "--lr", "1e-2"]) == 0
    return next(root.iterdir())


def test_translate_trains_evaluates_and_translates(run, data, tmp_path, capsys):
    valid = json.loads((run / "results.json").read_text())["valid"]
    assert valid["sources"] >= 1 and 0 <= valid["bleu_beam"] <= 100 and "nrefs" in valid["signature"]
    assert {p.name for p in (run / "best").iterdir()} >= {"source.spm", "target.spm", "model.safetensors"}
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--data-dir", str(data), "--no-progress"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["split"] == "test" and scores["pairs"] >= scores["sources"] >= 1
    assert {"bleu_greedy", "chrf_greedy", "bleu_beam", "chrf_beam", "bleu_single_beam"} <= set(scores)
    assert main(["evaluate", str(run), "--split", "test:tutorial", "--json", "--data-dir", str(data),
                 "--no-progress"]) == 0  # a tutorial run: the same sentences
    assert json.loads(capsys.readouterr().out)["bleu_beam"] == scores["bleu_beam"]
    png = tmp_path / "att.png"
    assert main(["translate", str(run), "You are tired.", "--json", "--attention", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "You are tired." and isinstance(out["translation"], str) and out["log_prob"] <= 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_translator_handles_long_and_partly_unknown_input(run):
    from rnnkit.translation import Translator

    translator = Translator.load(run)
    long = " ".join(["I am cold and tired and happy"] * 12) + "."  # longer than any training sentence
    done = translator.translate([long, "I am cold 🙂.", "I am cold."], beam=3, attention=True)
    assert len(done[0].target_pieces) <= 2 * len(done[0].source_pieces) + 10
    for t in done:
        assert t.attention.shape == (len(t.target_pieces) + 1, len(t.source_pieces))
        torch.testing.assert_close(t.attention.sum(1), torch.ones(len(t.target_pieces) + 1))
    assert done[2].text == translator.translate(["I  am cold.\u200b"], beam=3)[0].text  # normalised the same way


@pytest.mark.parametrize("argv, message", [
    (["translate", "{run}", " "], "TEXT: no words given"),
    (["translate", "{run}", "我是学生"], r"sentence 1 \('我是学生'\): none of its characters were in the training text"),
    (["translate", "{tmp}", "I am cold."], "not a run directory|is not an rnnkit model directory|no checkpoint"),
    (["train", "translate", "--subset", "medium"], "invalid choice: 'medium'"),
])
def test_translate_verbs_give_one_line_errors(run, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, run=run) for a in argv]
    with pytest.raises(SystemExit) if argv[0] == "train" else contextlib.nullcontext():
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert len([line for line in err.splitlines() if line.startswith("rnnkit") or "error" in line]) == 1


def test_empty_sentence_in_a_list_is_named(run):
    from rnnkit.translation import Translator

    with pytest.raises(ValueError, match="sentence 2 is empty: nothing to translate"):
        Translator.load(run).translate(["I am cold.", "  "])
    assert normalize(" a\u00a0 b ") == "a b"


def test_the_demo_translates_with_the_attention_map(run):
    from rnnkit.translation import Translator

    client = demo_client(run)
    answer = client.post("/api/run/0", json={"text": "I am cold.", "beam": 3}).json()
    assert answer["translation"] == Translator.load(run).translate(["I am cold."], beam=3)[0].text
    assert answer["picture"].startswith("data:image/png;base64,")
    assert client.post("/api/run/0", json={"text": "I am cold.", "beam": 0}).status_code == 400


def test_fine_tuning_starts_from_another_runs_model_and_subwords(run, data, tmp_path):
    """--init-from: the new run starts from the other run's best weights (a tiny learning rate
    leaves them almost unchanged), reads with its subword models, and records its architecture."""
    from safetensors.torch import load_file

    assert main(["train", "translate", "--init-from", str(run), "--runs", str(tmp_path), "--data-dir", str(data),
                 "--device", "cpu", "--no-progress", "--max-steps", "1", "--lr", "1e-9", "--hidden", "999",
                 "--dropout", "0.2", "--logger", "none"]) == 0
    (tuned,) = tmp_path.iterdir()
    before, after = load_file(run / "best" / "model.safetensors"), load_file(tuned / "best" / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    for name in ("source.spm", "target.spm"):
        assert (tuned / "best" / name).read_bytes() == (run / "best" / name).read_bytes()
    args = json.loads((tuned / "task.json").read_text())["args"]
    assert args["hidden"] == 16 and args["dropout"] == 0.2 and args["init_from"] == str(run)
    assert json.loads((tuned / "best" / "config.json").read_text())["config"]["dropout"] == 0.2
    assert main(["train", "translate", "--init-from", str(tmp_path / "nowhere"), "--runs", str(tmp_path / "x"),
                 "--data-dir", str(data), "--no-progress"]) == 2
