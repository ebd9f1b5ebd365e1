"""sentiment: sentence sentiment on the Stanford Sentiment Treebank: a sequence classifier (many-to-one) or a tree net.

``--model lstm`` (the default): an LSTM reads the sentence's words and y_t = softmax(V h_t + c) gives the class; the
sentence's class is read at its last word. ``--divergence`` chooses where the target is
applied in training — the course's question:

    final         DIV = Xent(class, y_L), the last step only
    every         DIV = mean_t Xent(class, y_t), every step, uniform weights
    every-linear  DIV = sum_t w_t Xent(class, y_t) / sum_t w_t with w_t = t / L: later steps
                  count more, as the evidence accumulates

Dev accuracy picks the best checkpoint; the dev loss (``--monitor loss`` picks by it instead) is
always the final-step divergence, so runs trained either way are compared on one measure.
``--labels fine`` is the 5-way root label, and a fine-grained run is scored on the binary task
too (the two negative and the two positive classes' probabilities summed); ``binary`` drops
neutral sentences (0-1 negative, 3-4 positive) and trains on the two classes. With ``--phrases``
(the default) every labelled phrase of the training trees is a training sequence too
(distinct phrases once each); dev and test score whole sentences only.

``--model treelstm`` (Tai et al. 2015's binary Tree-LSTM), ``childsum`` or ``recursive``
(:mod:`rnnkit.models.recursive`) compose the sentence along its parse tree instead, every node
predicting its phrase's class; ``--phrases`` then means the divergence at every labelled node
(each tree once, its phrases inside it), ``--no-phrases`` at the root only. ``--divergence``
is the sequence model's.

    rnnkit evaluate RUN --split test     root accuracy
    rnnkit classify RUN "a gorgeous, witty film"
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

import rnnkit
from rnnkit.arguments import fraction, positive_float, positive_int
from rnnkit.data import SequenceBatches, Vocabulary, by_length, require
from rnnkit.data.trees import Tree, read_trees
from rnnkit.models import SequenceClassifier, SequenceClassifierConfig, TreeClassifier, TreeClassifierConfig
from rnnkit.models.recursive import COMPOSITIONS
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, fit_and_score, run_dir, task_trainer
from rnnkit.train import OptimizerConfig, ScheduleConfig
from rnnkit.train.distributed import is_main_process
from rnnkit.train.trainer import MONITORS

NAME = "sentiment"
HELP = "sentiment classification: Stanford Sentiment Treebank, final-step vs every-step divergence"
FILES = {"train": "train.txt", "valid": "dev.txt", "test": "test.txt"}
LABELS = {"fine": ["very negative", "negative", "neutral", "positive", "very positive"],
          "binary": ["negative", "positive"]}
DIVERGENCES = {"final": (False, "uniform"), "every": (True, "uniform"), "every-linear": (True, "linear")}
MODELS = ("lstm", *COMPOSITIONS)
#: the defaults that differ by model (the tree nets': Tai et al.'s 150 units and 25 trees a batch; the
#: embedding size, epochs and learning rate chosen on dev)
DEFAULTS = {"lstm": {"hidden": 168, "batch_size": 64, "embedding": 200, "epochs": 6, "lr": 1e-3},
            "tree": {"hidden": 150, "batch_size": 25, "embedding": 300, "epochs": 15, "lr": 2e-3}}


def model_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The defaults of --model's kind (see :data:`DEFAULTS`)."""
    return DEFAULTS["lstm" if args.model == "lstm" else "tree"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODELS, default="lstm",
                   help="lstm: a sequence classifier over the words; treelstm, childsum, recursive: a tree net over "
                        "the parse")
    p.add_argument("--labels", choices=sorted(LABELS), default="fine",
                   help="fine: the 5 root classes; binary: neutral dropped, negative vs positive")
    p.add_argument("--divergence", choices=list(DIVERGENCES), default="final",
                   help="where the target is applied in training: the last step, or every step")
    p.add_argument("--phrases", action=argparse.BooleanOptionalAction, default=True,
                   help="train on every labelled phrase of the training trees too, not only sentences")
    p.add_argument("--embedding", type=positive_int, default=None,
                   help="word embedding size (default: 200 lstm, 300 tree nets)")
    p.add_argument("--hidden", type=positive_int, default=None,
                   help="LSTM units (per direction) or tree-node units (default: 168 lstm, 150 tree nets)")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=False,
                   help="a bidirectional LSTM (the class then reads [h_L(forward); h_1(backward)])")
    p.add_argument("--dropout", type=fraction, default=0.5, help="dropout on the embeddings and the LSTM's output")
    p.add_argument("--word-dropout", type=fraction, default=0.0, help="training words replaced by the unknown word")
    p.add_argument("--monitor", choices=MONITORS, default="accuracy",
                   help="what picks the best checkpoint and drives the lr schedule: dev loss (final step or root) "
                        "or dev accuracy")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="sequences (or trees) per batch (default: 64 lstm, 25 tree nets)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="Adam's learning rate (default: 1e-3 lstm, 2e-3 tree nets)")
    p.add_argument("--weight-decay", type=float, default=1e-5, help="Adam's L2 weight decay")
    add_common_arguments(p)


def label_of(tree: Tree, labels: str) -> int | None:
    """The class id of a node under ``labels`` (None: a neutral node in the binary task)."""
    k = int(tree.label)
    if labels == "fine":
        return k
    return None if k == 2 else int(k > 2)


def examples(trees: list[Tree], labels: str, phrases: bool) -> list[tuple[list[str], int]]:
    """(words, class) of every root (neutral ones dropped in the binary task); with ``phrases``,
    of every distinct labelled phrase instead (each root is one of them)."""
    if not phrases:
        return [(tree.words(), k) for tree in trees if (k := label_of(tree, labels)) is not None]
    out: dict[tuple[str, ...], int] = {}
    for tree in trees:
        for node in tree.nodes():
            k = label_of(node, labels)
            words = tuple(node.words())
            if k is not None and words not in out:
                out[words] = k
    return [(list(w), k) for w, k in out.items()]


def treebank(split: str, data_dir: str | None) -> list[Tree]:
    return read_trees(require("sst_trees", data_dir) / FILES[split])


def batches(model: SequenceClassifier | TreeClassifier, trees: list[Tree], labels: str, phrases: bool,
            size: int) -> list[dict[str, Any]]:
    """Batches of similar length or height (little padding, few levels), shortest first: of
    (words, class) items for a sequence classifier (:func:`examples`), of whole trees with every
    node's class for a tree net (trees whose root is neutral kept only for their phrases)."""
    if isinstance(model, TreeClassifier):
        kept = trees if phrases else [tree for tree in trees if label_of(tree, labels) is not None]
        return [model.batch(part, lambda node: label_of(node, labels)) for part in by_length(kept, size, Tree.height)]
    out = []
    for part in by_length(examples(trees, labels, phrases), size, lambda item: len(item[0])):
        b = model.batch([words for words, _ in part])
        b["target"] = torch.tensor([k for _, k in part])
        out.append(b)
    return out


def build_model(args: argparse.Namespace, vocab: Vocabulary) -> SequenceClassifier | TreeClassifier:
    names = LABELS[args.labels]
    if args.model == "lstm":
        everywhere, weights = DIVERGENCES[args.divergence]
        model: SequenceClassifier | TreeClassifier = SequenceClassifier(SequenceClassifierConfig(
            num_classes=len(names), vocab_size=len(vocab), embedding_size=args.embedding,
            rnn={"cell": "lstm", "hidden_size": args.hidden, "bidirectional": args.bidirectional},
            dropout=args.dropout, everywhere=everywhere, step_weights=weights, labels=names,
            word_dropout=args.word_dropout))
    else:
        model = TreeClassifier(TreeClassifierConfig(
            num_classes=len(names), vocab_size=len(vocab), embedding_size=args.embedding, hidden_size=args.hidden,
            composition=args.model, everywhere=args.phrases, dropout=args.dropout, labels=names))
    model.vocab = vocab
    return model


def train(args: argparse.Namespace) -> RunDir:
    torch.manual_seed(args.seed)
    trees = treebank("train", args.data_dir)
    vocab = Vocabulary.from_sentences(tree.words() for tree in trees)
    model = build_model(args, vocab)
    train_batches = batches(model, trees, args.labels, args.phrases, args.batch_size)
    valid_batches = batches(model, treebank("valid", args.data_dir), args.labels, False, 256)
    run = run_dir(NAME, args)
    if is_main_process():
        trained_on = "every labelled node" if args.phrases else "the root"
        what = (f"{args.model} ({args.labels}, divergence {args.divergence})" if args.model == "lstm" else
                f"{args.model} tree net ({args.labels}, divergence at {trained_on})")
        print(f"sentiment {what}: {sum(len(b['target']) for b in train_batches):,} training "
              f"{'sequences' if args.model == 'lstm' else 'nodes'} from {len(trees):,} trees; {len(vocab):,} words; "
              f"{sum(p.numel() for p in model.parameters()):,} parameters; run directory {run.path}", file=sys.stderr)
    trainer = task_trainer(NAME, model, SequenceBatches.prebuilt(train_batches, seed=args.seed),
                           SequenceBatches.prebuilt(valid_batches, shuffle=False), run, args,
                           optimizer=OptimizerConfig("adam", lr=args.lr, weight_decay=args.weight_decay),
                           schedule=ScheduleConfig("plateau", patience=0), clip_norm=5.0, log_every=100,
                           monitor=args.monitor)
    done = fit_and_score(trainer, run, lambda best: evaluate(best, "valid", args))
    if done is None:
        return run
    result, scores = done
    print(f"sentiment: {result['step']} steps in {result['seconds'] / 60:.1f} min; dev accuracy "
          f"{scores['accuracy']:.2%}", file=sys.stderr)
    return run


def root_probabilities(model: SequenceClassifier | TreeClassifier, batch: dict[str, Any],
                       dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(P(class | sentence) (B, K), gold class (B,)) of a batch's labelled sentences (roots)."""
    with torch.no_grad():
        if isinstance(model, TreeClassifier):
            target = batch["target"][batch["roots"]]
            logits = model({k: v.to(dev) for k, v in batch.items()})[batch["roots"].to(dev)]
        else:
            target = batch["target"]
            logits = model.final_logits(batch["input"].to(dev), batch["lengths"].to(dev))
    kept = target >= 0
    return logits.softmax(-1).cpu()[kept], target[kept]


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, Any]:
    """Root (sentence) accuracy on dev or test and the accuracy per gold class; a fine-grained
    model is also scored on the binary task (``binary_accuracy``: the non-neutral sentences,
    positive when P(positive) + P(very positive) > P(negative) + P(very negative)), the same
    sentences a ``--labels binary`` run is scored on. With ``args.ensemble`` (other runs of the
    same model kind and labels) the runs' class probabilities are averaged, then scored; the
    members' own accuracies are reported too (``accuracy_member_k``)."""
    dev = device(args.device)
    trees = treebank(split, args.data_dir)
    members = []
    for ckpt in [checkpoint, *(getattr(args, "ensemble", None) or [])]:
        model = rnnkit.load(ckpt.path, map_location=dev).eval()
        members.append(tuple(map(torch.cat, zip(*(root_probabilities(model, b, dev)
                                                 for b in batches(model, trees, args.labels, False, 256))))))
    gold = members[0][1]  # the same kind of model batches the trees in the same order
    probabilities = torch.stack([p for p, _ in members]).mean(0)
    predicted = probabilities.argmax(-1)
    total = torch.bincount(gold, minlength=model.config.num_classes)
    correct = torch.bincount(gold[predicted == gold], minlength=model.config.num_classes)
    out: dict[str, Any] = {"sentences": len(gold), "accuracy": float(correct.sum() / total.sum())}
    if len(members) > 1:
        for k, (p, _) in enumerate(members):
            out[f"accuracy_member_{k}"] = float((p.argmax(-1) == gold).float().mean())
    for name, c, n in zip(model.config.labels, correct.tolist(), total.tolist()):
        out[f"accuracy_{name.replace(' ', '_')}"] = c / n if n else float("nan")
    if args.labels == "fine":
        polar = gold != 2
        positive = probabilities[:, 3:].sum(-1) > probabilities[:, :2].sum(-1)
        out["binary_sentences"] = int(polar.sum())
        out["binary_accuracy"] = float((positive[polar] == (gold[polar] > 2)).float().mean())
    return out


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("valid", "test"),
                     dependent_defaults=model_defaults, ensembles=True))
