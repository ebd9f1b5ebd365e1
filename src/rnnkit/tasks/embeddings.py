"""embeddings: word vectors on PTB by skip-gram or CBOW with negative sampling (word2vec).

The projection P of one-hot words that every language model learns on the way, learnt here
on its own (:class:`rnnkit.models.WordEmbeddings`): each position of the PTB training text
is a centre word with the ``--window`` words on each side. Afterwards: the nearest
neighbours (cosine) of probe words, a small analogy check (a : b :: c : ?, 3CosAdd; a
hand-made set of 20 within PTB's vocabulary, not the Google set, which is not available
here), and a picture of the vectors of a few word groups projected on their two principal
components. :func:`rnnkit.models.copy_vectors` puts the vectors into any model's embedding.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from matplotlib.figure import Figure

import rnnkit
from rnnkit.arguments import positive_float, positive_int
from rnnkit.data import SequenceBatches
from rnnkit.data.text import ptb
from rnnkit.models import WordEmbeddings, WordEmbeddingsConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, run_dir, task_trainer
from rnnkit.train import OptimizerConfig
from rnnkit.train.distributed import is_main_process

NAME = "embeddings"
HELP = "word vectors on PTB: skip-gram or CBOW with negative sampling; neighbours, analogies, PCA picture"
PROBES = ("monday", "company", "stock", "president", "japan", "billion", "bought", "she", "good", "computer")
ANALOGIES = [  # a : b :: c : d, every word in PTB's 10k vocabulary
    ("he", "she", "his", "her"), ("he", "she", "him", "her"), ("man", "woman", "men", "women"),
    ("buy", "bought", "sell", "sold"), ("pay", "paid", "say", "said"), ("rise", "rose", "fall", "fell"),
    ("go", "went", "take", "took"), ("big", "bigger", "small", "smaller"), ("high", "higher", "low", "lower"),
    ("large", "largest", "big", "biggest"), ("company", "companies", "bank", "banks"),
    ("share", "shares", "price", "prices"), ("year", "years", "month", "months"),
    ("china", "chinese", "japan", "japanese"), ("france", "french", "germany", "german"),
    ("monday", "tuesday", "thursday", "friday"), ("january", "february", "march", "april"),
    ("one", "two", "three", "four"), ("increase", "increased", "decline", "declined"),
    ("good", "better", "bad", "worse"),
]
GROUPS = {
    "days": ["monday", "tuesday", "wednesday", "thursday", "friday"],
    "months": ["january", "february", "march", "april", "june", "july", "september", "october"],
    "countries": ["japan", "china", "france", "germany", "britain", "canada", "mexico"],
    "market moves": ["rose", "fell", "gained", "dropped", "declined", "jumped", "slipped"],
    "numbers": ["one", "two", "three", "four", "five", "six", "ten"],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", default="skipgram", choices=("skipgram", "cbow"), help="what predicts what")
    p.add_argument("--dim", type=positive_int, default=100, help="size of the vectors")
    p.add_argument("--window", type=positive_int, default=3, help="words on each side of the centre")
    p.add_argument("--negatives", type=positive_int, default=5, help="noise words per positive pair")
    p.add_argument("--batch-size", type=positive_int, default=256, help="centre words per batch")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="Adam's learning rate")
    add_common_arguments(p, max_steps=12000)


def windows(ids: torch.Tensor, W: int):
    """collate(positions) -> {"input": centre ids (B,), "target": window ids (B, 2W), -1 off the text}."""
    offsets = torch.cat([torch.arange(-W, 0), torch.arange(1, W + 1)])

    def collate(positions: list[int]) -> dict[str, torch.Tensor]:
        p = torch.tensor(positions)
        where = p[:, None] + offsets[None]
        inside = (where >= 0) & (where < len(ids))
        return {"input": ids[p], "target": torch.where(inside, ids[where.clamp(0, len(ids) - 1)], -1)}

    return collate


def report(model: WordEmbeddings, tokens: list[str]) -> dict:
    """Neighbours of the probes and the analogy accuracy (words missing from the vocabulary are skipped)."""
    index = {t: i for i, t in enumerate(tokens)}
    probes = [w for w in PROBES if w in index]
    near = model.nearest(torch.tensor([index[w] for w in probes]), 5)
    neighbours = {w: [tokens[int(i)] for i in row] for w, row in zip(probes, near)}
    usable = [q for q in ANALOGIES if all(w in index for w in q)]
    a, b, c, d = (torch.tensor([index[q[k]] for q in usable]) for k in range(4))
    right = (model.analogy(a, b, c) == d).float()
    return {"neighbours": neighbours, "analogies": len(usable), "analogy_accuracy": float(right.mean()),
            "analogies_right": [" : ".join(q) for q, r in zip(usable, right) if r]}


def pca_picture(model: WordEmbeddings, tokens: list[str], out) -> None:
    """The groups' vectors on their first two principal components."""
    index = {t: i for i, t in enumerate(tokens)}
    words = [(g, w) for g, ws in GROUPS.items() for w in ws if w in index]
    v = model.input.weight.detach()[[index[w] for _, w in words]].double()
    v = v - v.mean(0)
    _, _, basis = torch.linalg.svd(v, full_matrices=False)
    xy = (v @ basis[:2].T).numpy()
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.subplots()
    for k, group in enumerate(GROUPS):
        rows = [i for i, (g, _) in enumerate(words) if g == group]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=18, color=f"C{k}", label=group)
        for i in rows:
            ax.annotate(words[i][1], xy[i], fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set(title="word vectors, first two principal components", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def train(args: argparse.Namespace) -> RunDir:
    vocab, splits = ptb(args.data_dir)
    torch.manual_seed(args.seed)
    model = WordEmbeddings(WordEmbeddingsConfig(vocab_size=len(vocab), embedding_size=args.dim, mode=args.mode,
                                                negatives=args.negatives))
    model.set_noise(torch.bincount(splits["train"], minlength=len(vocab)).float())
    model.vocab = vocab
    run = run_dir(NAME, args)
    if is_main_process():
        print(f"embeddings: {args.mode}, {len(splits['train']):,} training words, {len(vocab):,} in the vocabulary; "
              f"run directory {run.path}", file=sys.stderr)
    collate = windows(splits["train"], args.window)
    valid_positions = list(range(0, len(splits["valid"]), 7))  # a fixed sample of the dev text
    result = task_trainer(
        NAME, model, SequenceBatches(list(range(len(splits["train"]))), args.batch_size, collate, seed=args.seed),
        SequenceBatches(valid_positions, 1024, windows(splits["valid"], args.window), shuffle=False), run, args,
        optimizer=OptimizerConfig("adam", lr=args.lr), eval_every=1000, log_every=100).fit()
    if not is_main_process() or result["already_finished"]:
        return run
    best = rnnkit.load(run.path)
    summary = report(best, vocab.tokens)
    pca_picture(best, vocab.tokens, run.plots / "embeddings_pca.png")
    run.results.write_text(json.dumps({"mode": args.mode, "minutes": result["seconds"] / 60, **summary}, indent=2))
    print(f"embeddings: analogies {summary['analogy_accuracy']:.0%} of {summary['analogies']} (hand-made set); "
          "nearest neighbours:", file=sys.stderr)
    for word, near in summary["neighbours"].items():
        print(f"  {word:<10} {', '.join(near)}", file=sys.stderr)
    return run


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict:
    """Neighbours and analogies of a checkpoint's vectors (they do not depend on a split)."""
    model = rnnkit.load(checkpoint.path)
    summary = report(model, model.vocab.tokens)
    return {"analogies": summary["analogies"], "analogy_accuracy": summary["analogy_accuracy"],
            **{f"near_{w}": ", ".join(n) for w, n in summary["neighbours"].items()}}


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("vectors",)))
