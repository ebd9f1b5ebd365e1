"""pos: part-of-speech tagging (UPOS) of UD English-EWT with a word + character BiLSTM tagger.

Each word is the concatenation of its embedding (lower-cased form) and of what a character
BiLSTM reads from its spelling (Plank et al. 2016), so words never seen in training are
tagged from their prefixes, suffixes and shape. A bidirectional LSTM over the sentence then
gives y_t = softmax(V h_t + c) over the 17 UPOS tags at every word (time-synchronous
many-to-many), trained with the per-word cross-entropy. Word dropout replaces training words
by the unknown word, so its embedding learns what rare words look like.

UPOS is scored on syntactic words, as UD's evaluation does (a multi-word token "don't" is
the two words "do" and "n't"). Dev picks the checkpoint; test is for the end.

    rnnkit evaluate RUN --split test        accuracy, on unseen words too, confusion matrix picture
    rnnkit evaluate RUN --conllu FILE       the same on any UD English file
    rnnkit tag RUN "Some raw text."         tags raw text (rnnkit.data.tokenize)
    rnnkit tag RUN --conllu IN.conllu       CoNLL-U with UPOS filled in
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

import rnnkit
from rnnkit.arguments import fraction, positive_float, positive_int
from rnnkit.data import SequenceBatches, Vocabulary, by_length, pad, require
from rnnkit.data.conllu import TaggedSentence, read_conllu
from rnnkit.models import Tagger, TaggerConfig
from rnnkit.progress import bar
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, fit_and_score, progress, run_dir, task_trainer
from rnnkit.train import OptimizerConfig, ScheduleConfig
from rnnkit.train.distributed import is_main_process

NAME = "pos"
HELP = "part-of-speech tagging: UD English-EWT, word + character BiLSTM"
DEFAULT_EPOCHS = 20
FILES = {"train": "en_ewt-ud-train.conllu", "valid": "en_ewt-ud-dev.conllu", "test": "en_ewt-ud-test.conllu"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedding", type=positive_int, default=100, help="word embedding size")
    p.add_argument("--char-embedding", type=positive_int, default=32, help="character embedding size")
    p.add_argument("--char-hidden", type=positive_int, default=64, help="character BiLSTM units per direction")
    p.add_argument("--hidden", type=positive_int, default=200, help="sentence BiLSTM units per direction and layer")
    p.add_argument("--layers", type=positive_int, default=2, help="sentence BiLSTM layers")
    p.add_argument("--dropout", type=fraction, default=0.33, help="dropout on the BiLSTM's input and output")
    p.add_argument("--word-dropout", type=fraction, default=0.1, help="training words replaced by the unknown word")
    p.add_argument("--batch-size", type=positive_int, default=32, help="sentences per batch")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="Adam's learning rate")
    add_common_arguments(p, epochs=DEFAULT_EPOCHS)


def treebank(split: str, data_dir: str | None) -> list[TaggedSentence]:
    return read_conllu(require("ud_english_ewt", data_dir) / FILES[split])


def collate(model: Tagger, sentences: list[TaggedSentence]) -> dict[str, Any]:
    """The model's inputs for the sentences' words, and their tag ids as targets (-100 for a tag
    the model does not know, e.g. "_")."""
    index = {t: i for i, t in enumerate(model.config.labels)}
    batch = model.batch([s.words for s in sentences])
    batch["target"], _ = pad([torch.tensor([index.get(t, -100) for t in s.tags]) for s in sentences], -100)
    return batch


def build_model(train: list[TaggedSentence], args: argparse.Namespace) -> Tagger:
    """Vocabulary: every lower-cased training word; alphabet: every training character; tags: the
    training file's UPOS set."""
    chars = {c for s in train for w in s.words for c in w}
    tags = sorted({t for s in train for t in s.tags} - {"_"})
    vocab = Vocabulary.from_sentences(s.words for s in train)
    model = Tagger(TaggerConfig(
        num_tags=len(tags), vocab_size=len(vocab), embedding_size=args.embedding, labels=tags,
        rnn={"cell": "lstm", "hidden_size": args.hidden, "num_layers": args.layers, "bidirectional": True,
             "dropout": args.dropout},
        spelling={"alphabet": "".join(sorted(chars)), "embedding_size": args.char_embedding,
                  "hidden_size": args.char_hidden},
        dropout=args.dropout, word_dropout=args.word_dropout))
    model.vocab = vocab
    return model


def train(args: argparse.Namespace) -> RunDir:
    torch.manual_seed(args.seed)
    sentences = treebank("train", args.data_dir)
    valid = treebank("valid", args.data_dir)
    model = build_model(sentences, args)
    run = run_dir(NAME, args)
    if is_main_process():
        print(f"pos: {len(sentences):,} training sentences ({sum(len(s.words) for s in sentences):,} words), "
              f"{len(valid):,} dev; {len(model.vocab):,} words, {len(model.config.spelling['alphabet'])} characters, "
              f"{model.config.num_tags} tags; {sum(p.numel() for p in model.parameters()):,} parameters; "
              f"run directory {run.path}", file=sys.stderr)
    batches = [collate(model, b) for b in by_length(sentences, args.batch_size, lambda s: len(s.words))]
    valid_batches = [collate(model, b) for b in by_length(valid, 128, lambda s: len(s.words))]
    trainer = task_trainer(NAME, model, SequenceBatches.prebuilt(batches, seed=args.seed),
                           SequenceBatches.prebuilt(valid_batches, shuffle=False), run, args,
                           optimizer=OptimizerConfig("adam", lr=args.lr), schedule=ScheduleConfig("plateau", patience=1),
                           clip_norm=5.0, log_every=50)
    done = fit_and_score(trainer, run, lambda best: evaluate(best, "valid", args))
    if done is None:
        return run
    result, scores = done
    print(f"pos: {result['step']} steps in {result['seconds'] / 60:.1f} min; dev UPOS accuracy "
          f"{scores['accuracy']:.2%} (unseen words {scores['oov_accuracy']:.2%})", file=sys.stderr)
    return run


def score(model: Tagger, sentences: list[TaggedSentence], show_progress: bool | None = None,
          plot: Path | None = None, title: str = "") -> dict[str, Any]:
    """UPOS accuracy over syntactic words, on words not in the model's vocabulary (unseen in
    training), per gold tag; a confusion-matrix picture when ``plot``."""
    if not sentences:
        raise ValueError("no sentences to score")
    labels = model.config.labels
    index = {t: i for i, t in enumerate(labels)}
    unknown = sorted({t for s in sentences for t in s.tags} - set(index) - {"_"})
    if unknown:
        raise ValueError(f"the gold tags {unknown} are not among the model's tags {labels}")
    confusion = torch.zeros(len(labels), len(labels), dtype=torch.long)
    oov = [0, 0]
    with bar(len(sentences), show_progress, desc="sentences", unit="sent", leave=False) as shown:
        for i in range(0, len(sentences), 128):
            part = sentences[i : i + 128]
            for s, predicted in zip(part, model.tag([s.words for s in part])):
                for word, gold, guess in zip(s.words, s.tags, predicted):
                    if gold == "_":
                        continue
                    confusion[index[gold], index[guess]] += 1
                    if word.lower() not in model.vocab.index:
                        oov[0] += gold == guess
                        oov[1] += 1
            shown.update(len(part))
    words = int(confusion.sum())
    if words == 0:
        raise ValueError("the sentences have no gold UPOS tags to score")
    out: dict[str, Any] = {"sentences": len(sentences), "words": words,
                           "accuracy": float(confusion.diag().sum()) / words,
                           "oov_words": oov[1], "oov_accuracy": oov[0] / oov[1] if oov[1] else float("nan")}
    for k, tag in enumerate(labels):
        if int(confusion[k].sum()):
            out[f"accuracy_{tag}"] = float(confusion[k, k]) / int(confusion[k].sum())
    if plot is not None:
        from rnnkit.plots import confusion_matrix

        out["confusion_png"] = str(confusion_matrix(confusion, labels, plot, title))
    return out


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy on the dev or test file; plots/confusion_SPLIT.png in the checkpoint's run."""
    model = rnnkit.load(checkpoint.path, map_location=device(args.device))
    run = checkpoint.run()
    return score(model, treebank(split, args.data_dir), progress(args),
                 run.plots / f"confusion_{split}.png" if run is not None else None,
                 f"UPOS confusions on EWT {split} (rows: gold tag)")


def evaluate_file(checkpoint: Checkpoint, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Accuracy on any CoNLL-U file with gold UPOS."""
    model = rnnkit.load(checkpoint.path, map_location=device(args.device))
    return score(model, read_conllu(path), progress(args))


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("valid", "test"),
                     evaluate_file=evaluate_file))
