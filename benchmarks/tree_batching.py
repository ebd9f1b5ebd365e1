"""Tree-LSTM training speed: level-by-level batching against one node at a time, same run.

The sentiment task's tree net at its defaults (binary Tree-LSTM, embeddings 200, 150 units,
5 classes, a divergence at every node) on batches of 25 SST training trees; one optimiser
step = forward, backward and Adam.

    level by level   rnnkit: the nodes of one height across the 25 trees in one product
                     (TreeEncoder); a batch costs as many steps as its tallest tree
    tree by tree     the same encoder on one tree at a time (25 calls per batch)
    node by node     the peer: the recursion most Tree-LSTM code writes (Tai et al.'s Lua, the
                     common PyTorch ports): the composition called on each node, children first

Rounds run back to back; the ratio is the median of the rounds' ratios (the machine is shared).

    python benchmarks/tree_batching.py [--batches 8] [--rounds 3]

Needs the sst_trees dataset. Writes benchmarks/results/tree_batching-cpu.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.data import Vocabulary, require
from rnnkit.data.trees import Tree, read_trees
from rnnkit.models import TreeClassifier, TreeClassifierConfig
from rounds import report

TREES_PER_BATCH = 25


def node_by_node(model: TreeClassifier, tree: Tree, vocab: Vocabulary) -> torch.Tensor:
    """The summed cross-entropy of every node, recursing from the root (children first)."""
    cell, H = model.encoder.composition, model.config.hidden_size
    losses = []

    def state(node: Tree) -> torch.Tensor:
        if node.is_leaf:
            x = model.embedding(vocab.encode([node.word.lower()]))
            kids = torch.zeros(1, cell.arity, cell.state_size)
        else:
            x = torch.zeros(1, model.config.embedding_size)
            kids = torch.stack([state(c)[0] for c in node.children]
                               + [torch.zeros(cell.state_size)] * (cell.arity - len(node.children)))[None]
        s = cell(cell.project(x), kids)
        losses.append(F.cross_entropy(model.output(s[:, :H]), torch.tensor([int(node.label)]), reduction="sum"))
        return s

    state(tree)
    return torch.stack(losses).sum()


def steps_per_second(model: TreeClassifier, step, batches: list, rounds_of: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step(model, batches[0]).backward()  # warm-up
    t0 = time.perf_counter()
    for i in range(rounds_of):
        loss = step(model, batches[i % len(batches)])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rounds_of / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=8, help="optimiser steps timed per model and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    trees = read_trees(require("sst_trees", args.data_dir) / "train.txt")
    vocab = Vocabulary.from_sentences(tree.words() for tree in trees)
    torch.manual_seed(0)
    model = TreeClassifier(TreeClassifierConfig(5, len(vocab), embedding_size=200, hidden_size=150))
    model.vocab = vocab
    groups = [trees[k:k + TREES_PER_BATCH] for k in range(0, TREES_PER_BATCH * args.batches, TREES_PER_BATCH)]
    label = lambda node: int(node.label)  # noqa: E731
    flat = [(group, model.batch(group, label), [model.batch([t], label) for t in group]) for group in groups]

    def level(m, item):
        return m.loss(item[1]).value

    def tree_by_tree(m, item):
        return sum(F.cross_entropy(m(b), b["target"], reduction="sum") for b in item[2]) / len(item[1]["target"])

    def nodes(m, item):
        return sum(node_by_node(m, tree, vocab) for tree in item[0]) / len(item[1]["target"])

    runs = {"node by node": nodes, "tree by tree": tree_by_tree, "level by level": level}
    with torch.no_grad():  # the three compute one loss
        values = [float(step(model, flat[0])) for step in runs.values()]
    assert max(values) - min(values) < 1e-5, values
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, step in runs.items():
            results[name].append(steps_per_second(model, step, flat, args.batches))
    levels = sum(len(item[1]["level_sizes"]) for item in flat) / len(flat)
    nodes_per_batch = sum(len(item[1]["words"]) for item in flat) / len(flat)
    header = (f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; optimiser "
              f"steps/s on batches of {TREES_PER_BATCH} SST trees ({nodes_per_batch:.0f} nodes, {levels:.1f} levels on "
              f"average), medians of {args.rounds} rounds")
    report(results, "node by node", "steps/s", header,
           args.json or Path(__file__).parent / "results" / "tree_batching-cpu.json",
           {"batches": args.batches, "rounds": args.rounds, "nodes_per_batch": nodes_per_batch,
            "levels_per_batch": levels})


if __name__ == "__main__":
    main()
