"""Recursive (tree) networks: the tree layout, the node functions, level-by-level batching, the tree classifier."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.cli import main
from rnnkit.data import Vocabulary
from rnnkit.data.trees import Tree, flatten, parse_tree, right_branching
from rnnkit.models import (ChildSumTreeLSTM, NaryTreeLSTM, Recursive, TreeClassifier, TreeClassifierConfig,
                           TreeEncoder)
from test_models import roundtrip


@contextlib.contextmanager
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def random_tree(rng: random.Random, leaves: int, max_children: int) -> Tree:
    """A random tree over ``leaves`` words w0, w1, ... with 1..max_children children per inner node."""
    nodes = [Tree(str(rng.randrange(5)), word=f"w{rng.randrange(6)}") for _ in range(leaves)]
    while len(nodes) > 1 or rng.random() < 0.2:  # sometimes a unary node on top
        k = min(len(nodes), rng.randint(1, max_children))
        at = rng.randrange(len(nodes) - k + 1)
        nodes[at:at + k] = [Tree(str(rng.randrange(5)), tuple(nodes[at:at + k]))]
        if len(nodes) == 1 and rng.random() < 0.8:
            break
    return nodes[0]


# ------------------------------------------------------------------ the oracle: one node at a time, from the equations


def oracle_state(cell: torch.nn.Module, tree: Tree, x_of: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, c) of ``tree``'s root by plain recursion, each composition written out from its equations."""
    H = cell.hidden_size
    x = x_of[tree.word] if tree.is_leaf else torch.zeros(cell.W.in_features)
    kids = [oracle_state(cell, child, x_of) for child in tree.children]
    sig = torch.sigmoid
    if isinstance(cell, Recursive):
        hs = [h for h, _ in kids] + [torch.zeros(H)] * (cell.arity - len(kids))
        h = torch.tanh(cell.W.weight @ x + cell.W.bias + cell.U.weight @ torch.cat(hs))
        return h, torch.zeros(H)
    Wx = cell.W.weight @ x + cell.W.bias
    if isinstance(cell, NaryTreeLSTM):
        A = cell.arity
        kids += [(torch.zeros(H), torch.zeros(H))] * (A - len(kids))
        U = cell.U.weight  # rows i, o, u, f_1..f_A; columns h_1..h_A
        Uh = U @ torch.cat([h for h, _ in kids])
        i, o, u = sig(Wx[:H] + Uh[:H]), sig(Wx[H:2 * H] + Uh[H:2 * H]), torch.tanh(Wx[2 * H:3 * H] + Uh[2 * H:3 * H])
        c = i * u
        for k, (_, c_k) in enumerate(kids):
            c = c + sig(Wx[(3 + k) * H:(4 + k) * H] + Uh[(3 + k) * H:(4 + k) * H]) * c_k
        return o * torch.tanh(c), c
    h_sum = sum((h for h, _ in kids), torch.zeros(H))
    iou = cell.U_iou.weight @ h_sum
    i, o, u = sig(Wx[:H] + iou[:H]), sig(Wx[H:2 * H] + iou[H:2 * H]), torch.tanh(Wx[2 * H:3 * H] + iou[2 * H:])
    c = i * u
    for h_k, c_k in kids:
        c = c + sig(Wx[3 * H:] + cell.U_f.weight @ h_k) * c_k
    return o * torch.tanh(c), c


def encoder_roots(cell: torch.nn.Module, trees: list[Tree], x_of: dict[str, torch.Tensor]) -> torch.Tensor:
    words = sorted(x_of)
    b = flatten(trees, lambda ws: [words.index(w) for w in ws], lambda node: None, cell.arity)
    table = torch.stack([x_of[w] for w in words] + [torch.zeros(cell.W.in_features)])
    states = TreeEncoder(cell)(table[b["words"]], b["children"], b["level_sizes"].tolist())
    return states[b["roots"]]


CELLS = [(Recursive, 2), (Recursive, 3), (NaryTreeLSTM, 2), (NaryTreeLSTM, 3), (ChildSumTreeLSTM, None)]


@pytest.mark.parametrize("make, arity", CELLS)
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 5))
def test_level_by_level_batch_equals_each_tree_alone_by_recursion(make, arity, seed, count):
    with float64():
        check_batch_equals_recursion(make, arity, seed, count)


def check_batch_equals_recursion(make, arity, seed, count):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    cell = make(4, 3, arity)
    for p in cell.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x_of = {f"w{k}": torch.randn(4) for k in range(6)}
    trees = [random_tree(rng, rng.randint(1, 9), arity or 4) for _ in range(count)]
    batched = encoder_roots(cell, trees, x_of)
    for tree, state in zip(trees, batched):
        h, c = oracle_state(cell, tree, x_of)
        alone = encoder_roots(cell, [tree], x_of)[0]
        torch.testing.assert_close(state, alone, rtol=0, atol=1e-10)
        torch.testing.assert_close(state[:3], h, rtol=0, atol=1e-10)
        if cell.state_size == 6:
            torch.testing.assert_close(state[3:], c, rtol=0, atol=1e-10)


@pytest.mark.parametrize("make, arity", CELLS)
def test_node_functions_gradcheck(make, arity):
    with float64():
        check_gradients(make, arity)


def check_gradients(make, arity):
    torch.manual_seed(0)
    cell = make(3, 2, arity)
    A = arity or 3
    wx = torch.randn(4, cell.W.out_features, requires_grad=True)
    children = torch.randn(4, A, cell.state_size, requires_grad=True)
    weights = [p for p in cell.parameters()]
    assert torch.autograd.gradcheck(lambda a, b, *_: cell(a, b), (wx, children, *weights))
    x = torch.randn(4, 3, requires_grad=True)
    assert torch.autograd.gradcheck(cell.project, (x,))


def test_encoder_gradcheck_through_the_levels():
    torch.manual_seed(1)
    cell = NaryTreeLSTM(3, 2).double()
    b = flatten([parse_tree("(0 (0 (0 a) (0 b)) (0 c))"), parse_tree("(0 d)")], lambda ws: list(range(len(ws))),
                lambda node: None, 2)
    x = torch.randn(len(b["words"]), 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: TreeEncoder(cell)(x, b["children"], b["level_sizes"].tolist()), (x,))


def test_flatten_orders_nodes_by_height_and_points_to_children():
    trees = [parse_tree("(3 (2 The) (4 (3 gorgeously) (2 elaborate)))"), parse_tree("(1 (0 bad))")]
    b = flatten(trees, lambda ws: [len(w) for w in ws], lambda node: int(node.label))
    assert b["level_sizes"].tolist() == [4, 2, 1]  # 4 leaves; (gorgeously elaborate) and (bad)'s parent; the root
    assert b["words"].tolist() == [3, 10, 9, 3, -1, -1, -1]
    assert b["children"].tolist() == [[0, 0]] * 4 + [[2, 3], [4, 0], [1, 5]]
    assert b["target"].tolist() == [2, 3, 2, 0, 4, 1, 3] and b["roots"].tolist() == [6, 5]
    assert trees[0].height() == 3


def test_trees_deeper_than_the_python_stack_are_flattened():
    tree = right_branching([f"w{k}" for k in range(5000)])
    assert tree.height() == 5000
    b = flatten([tree], lambda ws: [0] * len(ws), lambda node: None, 2)
    assert len(b["level_sizes"]) == 5000 and b["level_sizes"].sum() == 9999


@pytest.mark.parametrize("call, message", [
    (lambda: flatten([parse_tree("(0 (0 a) (0 b) (0 c))")], lambda ws: [0] * len(ws), lambda n: None, 2),
     "tree 0: a node has 3 children, but this composition takes at most 2"),
    (lambda: flatten([], lambda ws: [], lambda n: None), "no trees given"),
    (lambda: right_branching([]), "at least one word"),
    (lambda: parse_tree("(3 (2 a) (2 b)", "SST line 4"), "SST line 4: unbalanced brackets"),
    (lambda: TreeClassifier(TreeClassifierConfig(5, 10, composition="graph")), "composition must be one of"),
    (lambda: TreeClassifier(TreeClassifierConfig(5, 10, hidden_size=0)), "hidden_size must be an integer >= 1"),
])
def test_bad_trees_and_configs_give_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def negation_trees(rng: random.Random, count: int) -> list[Tree]:
    """Toy sentiment with structure: (good|bad) is 1|0, "not X" flips X, "and" keeps the left."""
    def phrase(depth: int) -> Tree:
        if depth == 0 or rng.random() < 0.3:
            word = rng.choice(["good", "bad"])
            return Tree(str(int(word == "good")), word=word)
        if rng.random() < 0.5:
            inner = phrase(depth - 1)
            return Tree(str(1 - int(inner.label)), (Tree("2", word="not"), inner))
        left, right = phrase(depth - 1), phrase(depth - 1)
        return Tree(left.label, (left, Tree("2", (Tree("2", word="and"), right))))
    return [phrase(3) for _ in range(count)]


def test_tree_lstm_learns_negation_from_every_node_in_seconds(tmp_path):
    rng = random.Random(0)
    torch.manual_seed(0)
    train, test = negation_trees(rng, 400), negation_trees(rng, 100)
    model = TreeClassifier(TreeClassifierConfig(2, 5, embedding_size=8, hidden_size=16))
    model.vocab = Vocabulary.from_sentences([["good", "bad", "not", "and"]])
    label = lambda node: int(node.label) if node.label in "01" else None  # noqa: E731
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for epoch in range(15):
        for k in range(0, 400, 25):
            loss = model.loss(model.batch(train[k:k + 25], label)).value
            opt.zero_grad()
            loss.backward()
            opt.step()
    model = roundtrip(model, tmp_path)  # and saves and reloads bit-identically, vocabulary included
    b = model.batch(test, label)
    assert float((model.predict(b) == b["target"][b["roots"]]).float().mean()) > 0.97
    root_only = model.loss(b)
    assert root_only.count == 100  # out of training, the root's divergence only
    probabilities = model.classify([parse_tree("(0 (2 not) (1 good))"), ["not", "bad"]])
    assert probabilities[0]["0"] > 0.9 and probabilities[1]["1"] > 0.9  # the second: right-branching (not bad)


def test_sentiment_task_trains_a_tree_lstm_and_classifies_trees(tmp_path, monkeypatch, capsys):
    from conftest import stand_in_dataset
    from test_tagging import sst_file

    with monkeypatch.context() as mp:
        stand_in_dataset(mp, tmp_path / "data", "sst_trees", {"train.txt": sst_file(40, 0), "dev.txt": sst_file(8, 1),
                                                             "test.txt": sst_file(8, 2)})
        argv = ["--data-dir", str(tmp_path / "data"), "--no-progress"]
        assert main(["train", "sentiment", "--model", "treelstm", "--labels", "binary", "--hidden", "8",
                     "--embedding", "8", "--epochs", "2", "--device", "cpu", "--runs", str(tmp_path / "runs"),
                     *argv]) == 0
        (run,) = (tmp_path / "runs").iterdir()
        config = json.loads((run / "best" / "config.json").read_text())
        assert config["class"] == "TreeClassifier" and config["config"]["composition"] == "treelstm"
        capsys.readouterr()
        assert main(["evaluate", str(run), "--split", "test", "--json", *argv]) == 0
        scores = json.loads(capsys.readouterr().out)
        assert 0 <= scores["accuracy"] <= 1 and scores["sentences"] <= 8
        assert "binary_accuracy" not in scores  # a binary run is scored once
        assert main(["classify", str(run), "(3 (2 a) (3 (3 witty) (2 film)))", "--json"]) == 0
        out = capsys.readouterr()
        assert set(json.loads(out.out)["probabilities"]) == {"negative", "positive"} and "note" not in out.err
        assert main(["classify", str(run), "a witty film"]) == 0
        assert "read as the right-branching tree" in capsys.readouterr().err
        assert main(["classify", str(run), "(3 (2 a) (3 witty"]) == 2
        assert "TEXT (sentence 1): a leaf holds one word, then ')' (at the end: " in capsys.readouterr().err
