"""Tagging and classification on text: CoNLL-U, the tokeniser, spelling, the pos and sentiment tasks, their verbs."""

from __future__ import annotations

import contextlib
import json
import random
import re

import pytest
import torch

import rnnkit

from conftest import demo_client, stand_in_dataset
from rnnkit.cli import main
from rnnkit.data import SequenceBatches, Vocabulary, by_length
from rnnkit.data.conllu import fill_upos, parse_conllu
from rnnkit.data.tokenize import english_sentences
from rnnkit.data.trees import parse_tree, read_trees
from rnnkit.models import SequenceClassifier, SequenceClassifierConfig, Tagger, TaggerConfig
from rnnkit.models.spelling import SpellingConfig, SpellingEncoder

CONLLU = """# sent_id = a-1
# text = I don't swim.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
3.1\tswims\tswim\tVERB\tVBZ\t_\t_\t_\t0:root\t_
4\tswim\tswim\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

"""


# ----------------------------------------------------------------------------- reading text


def test_conllu_tags_syntactic_words_and_writes_back_everything_else():
    (s,) = parse_conllu(CONLLU)
    assert s.words == ["I", "do", "n't", "swim", "."]  # the range line 2-3 and the empty node 3.1 are not words
    assert s.tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    out = fill_upos(s, ["X", "X", "X", "X", "X"])
    lines = out.splitlines()
    assert lines[0] == "# sent_id = a-1" and lines[3].startswith("2-3\tdon't\t_\t_")
    assert [line.split("\t")[3] for line in lines[2:] if line and line.split("\t")[0].isdigit()] == ["X"] * 5
    assert "3.1\tswims\tswim\tVERB" in out and "SpaceAfter=No" in out  # the empty node and MISC untouched
    with pytest.raises(ValueError, match="one tag per syntactic word"):
        fill_upos(s, ["X"])


@pytest.mark.parametrize("text, message", [
    ("1\tonly three\tcolumns\n\n", "bad.conllu: not valid CoNLL-U"),
    ("1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n\n", "bad.conllu: sentence 1 has no syntactic words"),
])
def test_malformed_conllu_is_one_error_naming_the_file(text, message):
    with pytest.raises(ValueError, match=message):
        parse_conllu(text, "bad.conllu")


def test_tokeniser_follows_ud_english_for_clitics_and_punctuation():
    assert english_sentences("I don't know, he said \"gonna\" (maybe).  We'll see!\nIt's 3.5 km.") == [
        ["I", "do", "n't", "know", ",", "he", "said", '"', "gon", "na", '"', "(", "maybe", ")", "."],
        ["We", "'ll", "see", "!"], ["It", "'s", "3.5", "km", "."]]
    assert english_sentences("  \n ") == []


def test_trees_parse_labels_words_and_ptb_escapes():
    tree = parse_tree("(3 (2 -LRB-) (4 (3 8\u00a01\\/2) (2 ``fine'')))")
    assert tree.label == "3" and tree.words() == ["(", "8\u00a01/2", "``fine''"]
    assert [n.label for n in tree.nodes()] == ["3", "2", "4", "3", "2"] and tree.height() == 3
    assert parse_tree("(2 ``)").words() == ['"']


@pytest.mark.parametrize("text, message", [
    ("", "empty tree"), ("(3 (2 a)", "expected '\\)'"), ("(3 (2 a) (2 b)) (1 c)", "text after"),
    ("(3 a b)", "one word, then"), ("((2 a))", "needs a label"), ("(3)", "a word or children"), ("2 a", "expected '\\('"),
])
def test_malformed_trees_are_one_error_naming_the_source(text, message):
    with pytest.raises(ValueError, match=f"^line 7: .*{message}"):
        parse_tree(text, "line 7")


def test_sentences_encode_as_the_corpus_was_normalised_and_group_by_length():
    vocab = Vocabulary.from_sentences([["The", "cat"], ["the", "Cat", "the"], ["a"]])
    assert vocab.tokens == ["<unk>", "the", "cat", "a"] and vocab.eos is None and vocab.lowercase
    assert Vocabulary.from_sentences([["B", "a", "b"]], lowercase=False).tokens == ["<unk>", "B", "a", "b"]
    vocab = Vocabulary(["<unk>", "the", "cat"], unk="<unk>", level="word", lowercase=True)
    x, lengths = vocab.encode_sentences([["The", "CAT"], ["dog"]])
    assert x.tolist() == [[1, 2], [0, 0]] and lengths.tolist() == [2, 1]
    for bad in ([], [["the"], []]):
        with pytest.raises(ValueError, match="non-empty lists of words"):
            vocab.encode_sentences(bad)
    assert by_length(["aaa", "a", "aa", "aaaa", "b"], 2) == [["a", "b"], ["aa", "aaa"], ["aaaa"]]
    batches = SequenceBatches.prebuilt([{"n": k} for k in range(5)], seed=3)
    assert sorted(b["n"] for b in batches) == list(range(5))


# ----------------------------------------------------------------------------- spelling


def test_spelling_spells_each_distinct_word_once_and_a_word_alone_reads_the_same():
    torch.manual_seed(0)
    enc = SpellingEncoder(SpellingConfig(alphabet="abcdefghij", embedding_size=4, hidden_size=3, max_length=6)).double()
    s = enc.spell([["abc", "b", "abc"], ["jjjjjjjjjjj", "zz"]])
    assert s.chars.shape[0] == 4 and s.index.tolist() == [[0, 1, 0], [2, 3, 0]]
    assert s.chars[2, :6].tolist() == [11] * 6 and int(s.lengths[2]) == 6  # long words: first and last 3 characters
    assert s.chars[3, :2].tolist() == [1, 1]  # characters outside the alphabet
    together = enc(s)
    for b, t, word in [(0, 0, "abc"), (0, 1, "b"), (1, 0, "jjjjjjjjjjj"), (1, 1, "zz")]:
        torch.testing.assert_close(together[b, t], enc(enc.spell([[word]]))[0, 0], atol=1e-12, rtol=0)


def test_spelling_gradcheck_float64():
    torch.manual_seed(0)
    enc = SpellingEncoder(SpellingConfig(alphabet="abc", embedding_size=3, hidden_size=2)).double()
    s = enc.spell([["ab", "cab"], ["c", "ab"]])
    weight = enc.embedding.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda w: torch.func.functional_call(enc, {"embedding.weight": w}, (s,)),
                                    (weight,))
    with pytest.raises(ValueError, match="alphabet must be"):
        SpellingEncoder(SpellingConfig(alphabet="aa"))


def suffix_sentences(n: int, seed: int, stems: list[str]) -> list[tuple[list[str], list[str]]]:
    """DET ADJ NOUN VERB ADV PUNCT sentences whose classes show only in the suffixes."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(["the", "a"]), rng.choice(stems) + "ous", rng.choice(stems) + "tion",
                 rng.choice(stems) + "ize", rng.choice(stems) + "ly", "."]
        out.append((words, ["DET", "ADJ", "NOUN", "VERB", "ADV", "PUNCT"]))
    return out


def test_a_tagger_with_spelling_tags_unseen_words_from_their_suffixes():
    torch.manual_seed(0)
    train = suffix_sentences(200, 0, ["mar", "pel", "sot", "vik", "dun", "rab"])
    unseen = suffix_sentences(40, 1, ["kor", "lum", "tep"])  # stems never seen in training
    labels = ["ADJ", "ADV", "DET", "NOUN", "PUNCT", "VERB"]
    vocab = Vocabulary(["<unk>", *sorted({w for s, _ in train for w in s})], unk="<unk>", level="word", lowercase=True)
    model = Tagger(TaggerConfig(num_tags=6, vocab_size=len(vocab), embedding_size=8, labels=labels,
                                spelling={"alphabet": "".join(sorted({c for s, _ in train for w in s for c in w})),
                                          "embedding_size": 8, "hidden_size": 16},
                                rnn={"cell": "lstm", "hidden_size": 16, "bidirectional": True}, word_dropout=0.3))
    model.vocab = vocab
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for step in range(60):
        part = train[(step % 10) * 20 : (step % 10) * 20 + 20]
        batch = model.batch([s for s, _ in part])
        batch["target"] = torch.tensor([[labels.index(t) for t in tags] for _, tags in part])
        opt.zero_grad()
        model.loss(batch).value.backward()
        opt.step()
    predicted = model.tag([s for s, _ in unseen])
    correct = sum(p == g for (_, tags), row in zip(unseen, predicted) for p, g in zip(row, tags))
    assert correct / (6 * len(unseen)) > 0.95
    with pytest.raises(ValueError, match="non-empty lists of words"):
        model.tag([["the"], []])
    with pytest.raises(ValueError, match="reads spellings too"):
        model(batch["input"], batch["lengths"])


def test_word_dropout_replaces_words_by_the_unknown_word_in_training_only():
    from rnnkit.models.base import InputLayer

    layer = InputLayer(10, None, 3, word_dropout=0.5)
    x = torch.randint(1, 10, (200, 50))
    with torch.no_grad():
        unknown = (layer(x) == layer.embedding.weight[0]).all(-1).float().mean()
        assert 0.45 < float(unknown) < 0.55
        torch.testing.assert_close(layer.eval()(x), layer.embedding(x))
    with pytest.raises(ValueError, match="SequenceClassifierConfig.word_dropout"):
        SequenceClassifier(SequenceClassifierConfig(num_classes=2, vocab_size=5, word_dropout=1.0))
    with pytest.raises(ValueError, match="needs token inputs"):
        InputLayer(None, 4, 3, word_dropout=0.1)


def test_a_bidirectional_classifier_reads_the_backward_direction_at_the_first_word():
    torch.manual_seed(0)
    model = SequenceClassifier(SequenceClassifierConfig(num_classes=3, vocab_size=7, embedding_size=4,
                                                        rnn={"cell": "lstm", "hidden_size": 5, "bidirectional": True}))
    x, lengths = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]]), torch.tensor([4, 2])
    h, _ = model.rnn(model.inputs(x), lengths)
    logits = model(x, lengths)
    expected = model.output(torch.cat([h[1, 1, :5], h[1, 0, 5:]]))
    torch.testing.assert_close(logits[1, 1], expected)
    torch.testing.assert_close(logits[0, 1], model.output(h[0, 1]))  # not the last step: [h_t(fw); h_t(bw)]
    with pytest.raises(ValueError, match="labels must be 3 class names"):
        SequenceClassifier(SequenceClassifierConfig(num_classes=3, vocab_size=7, labels=["a", "b"]))


# ----------------------------------------------------------------------------- the tasks, end to end


def conllu_file(sentences: list[tuple[list[str], list[str]]], prefix: str) -> str:
    lines = []
    for n, (words, tags) in enumerate(sentences):
        lines.append(f"# sent_id = {prefix}-{n}")
        lines += [f"{i}\t{w}\t_\t{t}\t_\t_\t0\tdep\t_\t_" for i, (w, t) in enumerate(zip(words, tags), 1)]
        lines.append("")
    return "\n".join(lines) + "\n"


def sst_file(n: int, seed: int, classes: tuple[int, ...] = (0, 1, 3, 4)) -> str:
    rng = random.Random(seed)
    good, bad, plain = ["great", "fine", "witty"], ["dull", "bad", "flat"], ["long", "french"]
    lines = []
    for _ in range(n):
        k = rng.choice(classes)
        word = rng.choice(plain if k == 2 else good if k > 2 else bad)
        lines.append(f"({k} (2 (2 the) (2 film)) ({k} (2 is) ({k} {word})))")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    stems = ["mar", "pel", "sot", "vik"]
    with pytest.MonkeyPatch.context() as mp:
        stand_in_dataset(mp, root, "ud_english_ewt", {
            "en_ewt-ud-train.conllu": conllu_file(suffix_sentences(60, 0, stems), "train"),
            "en_ewt-ud-dev.conllu": conllu_file(suffix_sentences(10, 1, stems), "dev"),
            "en_ewt-ud-test.conllu": conllu_file(suffix_sentences(10, 2, ["kor", "lum"]), "test")})
        stand_in_dataset(mp, root, "sst_trees", {"train.txt": sst_file(60, 0), "dev.txt": sst_file(10, 1),
                                                 "test.txt": sst_file(10, 2, classes=(0, 1, 2, 3, 4))})
        yield root


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = ["--data-dir", str(data), "--device", "cpu", "--no-progress", "--epochs", "2"]
    assert main(["train", "pos", "--runs", str(root / "pos"), "--hidden", "8", "--char-hidden", "8", "--embedding", "8",
                 "--batch-size", "8", *common]) == 0
    for name, seed in (("sentiment", "0"), ("sentiment2", "1")):
        assert main(["train", "sentiment", "--runs", str(root / name), "--hidden", "8", "--embedding", "8",
                     "--divergence", "every-linear", "--bidirectional", "--seed", seed, *common]) == 0
    return {task: next((root / task).iterdir()) for task in ("pos", "sentiment", "sentiment2")}


def test_pos_trains_evaluates_and_tags(runs, data, tmp_path, capsys):
    run = runs["pos"]
    valid = json.loads((run / "results.json").read_text())["valid"]
    assert valid["words"] == 60 and 0 <= valid["accuracy"] <= 1
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--data-dir", str(data), "--no-progress"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["split"] == "test" and scores["words"] == 60
    assert scores["oov_words"] == 40  # every adjective, noun, verb and adverb has an unseen stem
    assert (run / "plots" / "confusion_test.png").read_bytes()[:4] == b"\x89PNG"

    gold = tmp_path / "gold.conllu"
    gold.write_text(conllu_file(suffix_sentences(3, 5, ["mar"]), "gold"))
    assert main(["evaluate", str(run), "--conllu", str(gold), "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["words"] == 18
    gold.write_text(CONLLU)
    assert main(["evaluate", str(run), "--conllu", str(gold), "--no-progress"]) == 2
    assert "the gold tags ['AUX', 'PART', 'PRON'] are not among the model's tags" in capsys.readouterr().err

    out = tmp_path / "tagged.conllu"
    assert main(["tag", str(run), "--conllu", str(gold), "--out", str(out)]) == 0
    (tagged,) = parse_conllu(out.read_text())
    assert tagged.words == ["I", "do", "n't", "swim", "."] and "2-3\tdon't" in out.read_text()
    model_tags = set(json.loads((run / "best" / "config.json").read_text())["config"]["labels"])
    assert set(tagged.tags) <= model_tags

    assert main(["tag", str(run), "The vikous martion.", "A", "pelize!", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["words"] for r in rows] == [["The", "vikous", "martion", "."], ["A", "pelize", "!"]]
    assert all(t in model_tags for r in rows for t in r["upos"])


def test_sentiment_trains_evaluates_and_classifies(runs, data, capsys):
    run = runs["sentiment"]
    config = json.loads((run / "best" / "config.json").read_text())["config"]
    assert config["everywhere"] and config["step_weights"] == "linear" and config["rnn"]["bidirectional"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--json", "--data-dir", str(data), "--no-progress"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["sentences"] == 10 and 0 <= scores["accuracy"] <= 1
    # a fine-grained model scored on the binary task too: neutral sentences dropped, the two
    # negative and the two positive classes' probabilities summed (checked one sentence at a time)
    trees = read_trees(data / "sst_trees" / "test.txt")
    probabilities = rnnkit.load(run / "best").classify([tree.words() for tree in trees])
    polar = [(p, int(tree.label) > 2) for p, tree in zip(probabilities, trees) if tree.label != "2"]
    assert 0 < len(polar) < 10 and scores["binary_sentences"] == len(polar)
    right = [(p["positive"] + p["very positive"] > p["negative"] + p["very negative"]) == positive
             for p, positive in polar]
    assert scores["binary_accuracy"] == pytest.approx(sum(right) / len(polar))
    assert main(["classify", str(run), "the film is witty", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["probabilities"]) == {"very negative", "negative", "neutral", "positive", "very positive"}
    assert abs(sum(out["probabilities"].values()) - 1) < 1e-6 and out["class"] in out["probabilities"]


def test_sentiment_scores_an_ensemble(runs, data, capsys):
    """rnnkit evaluate RUN --with RUN2: the runs' class probabilities averaged, then scored
    (checked against each run's classify, one sentence at a time), and each member's own score."""
    from rnnkit.tasks.sentiment import LABELS

    capsys.readouterr()
    assert main(["evaluate", str(runs["sentiment"]), "--with", str(runs["sentiment2"]), "--split", "test", "--json",
                 "--data-dir", str(data), "--no-progress"]) == 0
    scores = json.loads(capsys.readouterr().out)
    trees = read_trees(data / "sst_trees" / "test.txt")
    gold = [int(tree.label) for tree in trees]
    members = [rnnkit.load(runs[name] / "best").classify([tree.words() for tree in trees])
               for name in ("sentiment", "sentiment2")]
    names = LABELS["fine"]

    def accuracy(rows):
        return sum(max(range(len(names)), key=lambda k: row[names[k]]) == g for row, g in zip(rows, gold)) / len(gold)

    averaged = [{n: (a[n] + b[n]) / 2 for n in names} for a, b in zip(*members)]
    assert scores["accuracy"] == pytest.approx(accuracy(averaged))
    assert [scores["accuracy_member_0"], scores["accuracy_member_1"]] == pytest.approx([accuracy(m) for m in members])


@pytest.mark.parametrize("argv, message", [
    (["tag", "{pos}", "--conllu", "{tmp}/missing.conllu"], "missing.conllu: no such CoNLL-U file"),
    (["tag", "{pos}", " "], "TEXT: no words given"),
    (["tag", "{sentiment}", "a film"], "holds a SequenceClassifier, not a tagger"),
    (["classify", "{pos}", "a film"], "holds a Tagger, not a sequence classifier"),
    (["evaluate", "{sentiment}", "--conllu", "{tmp}/x.conllu"], "the sentiment task does not score CoNLL-U"),
    (["train", "sentiment", "--labels", "three"], "invalid choice: 'three'"),
    (["evaluate", "{sentiment}", "--with", "{pos}"], "a run of the 'sentiment' task is needed. Received: the 'pos'"),
    (["evaluate", "{pos}", "--with", "{pos}"], "the pos task does not score ensembles"),
    (["evaluate", "{sentiment}", "--with", "{sentiment2}", "--text", "{tmp}/x.txt"], "not with --text or --conllu"),
])
def test_text_verbs_give_one_line_errors(runs, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, **runs) for a in argv]
    with pytest.raises(SystemExit) if argv[0] == "train" else contextlib.nullcontext():
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert len([line for line in err.splitlines() if line.startswith("rnnkit") or "error" in line]) == 1



def test_the_demo_tags_and_classifies(runs):
    client = demo_client(runs["pos"], runs["sentiment"])
    assert [r["kind"] for r in client.get("/api/runs").json()] == ["tag", "classify"]
    tagged = client.post("/api/run/0", json={"text": "The mar sat. It pel."}).json()["sentences"]
    assert [s["words"] for s in tagged] == english_sentences("The mar sat. It pel.")
    assert all(len(s["tags"]) == len(s["words"]) for s in tagged)
    classified = client.post("/api/run/1", json={"text": "the film is great"}).json()
    assert abs(sum(classified["probabilities"].values()) - 1) < 1e-5
    assert classified["class"] == max(classified["probabilities"], key=classified["probabilities"].get)
    assert client.post("/api/run/0", json={"text": "  "}).json() == {"error": "type a sentence first"}
    assert "unbalanced brackets" in client.post("/api/run/1", json={"text": "(3 (2 a) (2 b)"}).json()["error"]
