"""Labelled constituency trees in Penn Treebank bracketing, as the Stanford Sentiment Treebank has them.

``(3 (2 The) (4 (3 gorgeously) (2 elaborate)))``: every node is ``(LABEL CHILD ...)`` and a
leaf is ``(LABEL word)``; in SST the label is a sentiment class 0-4 and every node, from a
single word to the whole sentence, carries one (phrase-level labels). Words are given back as
raw text has them: PTB's escapes -LRB- -RRB- (and the square and curly ones), \\/ and \\*,
and its `` '' quotes become ( ) / * and ".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.files import read_utf8

__all__ = ["Tree", "parse_tree", "read_trees", "right_branching", "flatten", "classifier_inputs"]

_TOKEN = re.compile(r"\(|\)|[^ \t\r\n()]+")  # ASCII whitespace only: SST has a word with a no-break space
#: PTB escapes and quotes, given back as the characters raw text has
_UNESCAPE = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}", "``": '"', "''": '"'}


@dataclass(frozen=True)
class Tree:
    """A node: its label and either children (an inner node) or a word (a leaf)."""

    label: str
    children: tuple[Tree, ...] = ()
    word: str | None = None

    @property
    def is_leaf(self) -> bool:
        return self.word is not None

    def words(self) -> list[str]:
        """The leaves' words, left to right."""
        return [node.word for node, _ in _postorder(self) if node.word is not None]

    def nodes(self) -> Iterator[Tree]:
        """Every node, parents before children (the root first)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def height(self) -> int:
        """1 for a leaf; 1 + the tallest child otherwise."""
        return max(_heights(_postorder(self)))


def _postorder(tree: Tree) -> list[tuple[Tree, list[int]]]:
    """Every node, children before parents, with its children's positions in the list (no
    recursion: a tree may be deeper than Python's stack)."""
    out: list[tuple[Tree, list[int]]] = []
    position: dict[int, int] = {}
    stack = [(tree, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded or node.is_leaf:
            out.append((node, [position[id(c)] for c in node.children]))
            position[id(node)] = len(out) - 1
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(node.children))
    return out


def _heights(nodes: list[tuple[Tree, list[int]]]) -> list[int]:
    heights: list[int] = []
    for _, children in nodes:
        heights.append(1 + max((heights[k] for k in children), default=0))
    return heights


def right_branching(words: Sequence[str], label: str = "") -> Tree:
    """The right-branching binary tree over ``words``: (w1 (w2 (... wn))), each node labelled ``label``."""
    if not words:
        raise ValueError("right_branching: a tree needs at least one word. Received: no words")
    tree = Tree(label, word=words[-1])
    for word in reversed(words[:-1]):
        tree = Tree(label, (Tree(label, word=word), tree))
    return tree


def flatten(trees: Sequence[Tree], encode: Callable[[list[str]], list[int]],
            label: Callable[[Tree], int | None], arity: int | None = None) -> dict[str, Tensor]:
    """A batch of trees as the arrays a level-by-level tree net reads (:class:`rnnkit.models.TreeEncoder`).

    The N nodes of all trees are ordered by height (leaves first), then tree, then left to
    right. Returns ``words`` (N,) each node's word id (``encode`` of a tree's words), -1 for an
    inner node; ``children`` (N, A) each child's node index + 1, 0 where a node has fewer
    than A children (A: ``arity``, or the most any node has); ``level_sizes`` (L,) nodes per
    height; ``target`` (N,) ``label(node)``, -1 where None; ``roots`` (B,) each tree's root.
    A node with more than ``arity`` children is a ValueError naming the tree.
    """
    if not trees:
        raise ValueError("flatten: no trees given")
    rows = []  # (height, tree, position, word id, label, children as (tree, position))
    roots = []  # (tree, position): a tree's root comes last in post-order
    for t, tree in enumerate(trees):
        nodes = _postorder(tree)
        roots.append((t, len(nodes) - 1))
        words = iter(encode([node.word for node, _ in nodes if node.word is not None]))
        for k, ((node, children), height) in enumerate(zip(nodes, _heights(nodes))):
            if arity is not None and len(children) > arity:
                raise ValueError(f"tree {t}: a node has {len(children)} children, but this composition takes at "
                                 f"most {arity} (node {node.label!r} over {' '.join(node.words()[:8])!r})")
            y = label(node)
            rows.append((height, t, k, next(words) if node.is_leaf else -1, -1 if y is None else y, children))
    rows.sort(key=lambda r: r[:3])
    index = {(r[1], r[2]): n for n, r in enumerate(rows)}
    width = arity or max(1, max(len(r[5]) for r in rows))
    children = torch.zeros(len(rows), width, dtype=torch.long)
    for n, r in enumerate(rows):
        for a, k in enumerate(r[5]):
            children[n, a] = index[(r[1], k)] + 1
    heights = torch.tensor([r[0] for r in rows])
    return {"words": torch.tensor([r[3] for r in rows], dtype=torch.long), "children": children,
            "level_sizes": torch.bincount(heights)[1:], "target": torch.tensor([r[4] for r in rows], dtype=torch.long),
            "roots": torch.tensor([index[root] for root in roots])}


def parse_tree(text: str, source: str = "tree") -> Tree:
    """One bracketed tree; PTB escapes in words (-LRB-, ``, ...) become the characters they stand
    for. Anything malformed is a ValueError naming ``source`` and what is wrong."""
    tokens = _TOKEN.findall(text)
    position = 0

    def fail(problem: str) -> ValueError:
        where = f"token {position + 1} of {len(tokens)}" if position < len(tokens) else "at the end"
        return ValueError(f"{source}: {problem} ({where}: {' '.join(tokens[max(0, position - 3) : position + 3])!r})")

    def node() -> Tree:
        nonlocal position
        if position >= len(tokens) or tokens[position] != "(":
            raise fail("expected '('")
        position += 1
        if position >= len(tokens) or tokens[position] in "()":
            raise fail("a node needs a label after '('")
        label = tokens[position]
        position += 1
        if position < len(tokens) and tokens[position] not in "()":
            word = tokens[position]
            position += 1
            if position >= len(tokens) or tokens[position] != ")":
                raise fail("a leaf holds one word, then ')'")
            position += 1
            return Tree(label, word=_UNESCAPE.get(word, word.replace("\\/", "/").replace("\\*", "*")))
        children = []
        while position < len(tokens) and tokens[position] == "(":
            children.append(node())
        if not children:
            raise fail("a node needs a word or children")
        if position >= len(tokens) or tokens[position] != ")":
            raise fail("unbalanced brackets: expected ')'")
        position += 1
        return Tree(label, tuple(children))

    if not tokens:
        raise ValueError(f"{source}: empty tree")
    tree = node()
    if position != len(tokens):
        raise fail("text after the tree's closing bracket")
    return tree


def read_trees(path: str | Path) -> list[Tree]:
    """One tree per non-empty line of a file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such tree file")
    return [parse_tree(line, f"{path}:{n}") for n, line in enumerate(read_utf8(path, str(path)).splitlines(), 1)
            if line.strip()]


#: what a tree net does with text that is not a bracketed parse
PLAIN_TEXT_NOTE = ("a tree net reads parse trees; text without brackets is read as the right-branching tree over "
                   "its words (give a bracketed parse, e.g. '(3 (2 a) (3 (3 witty) (2 film)))', for the real "
                   "structure)")


def classifier_inputs(lines: Sequence[str], reads_trees: bool) -> tuple[list[Tree | list[str]], str | None]:
    """What a classifier reads for each line of text: a line starting with "(" is a bracketed
    parse (its tree for a tree net, its words otherwise); any other line is its words, tokenised
    as UD English (:func:`rnnkit.data.tokenize.english_sentences`). The note says when a tree
    net was given plain text (None otherwise)."""
    from rnnkit.data.tokenize import english_sentences

    items: list[Tree | list[str]] = []
    for n, line in enumerate(lines, 1):
        if line.lstrip().startswith("("):
            tree = parse_tree(line, f"TEXT (sentence {n})")
            items.append(tree if reads_trees else tree.words())
        else:
            items.append([w for s in english_sentences(line) for w in s])
    plain = reads_trees and not all(isinstance(item, Tree) for item in items)
    return items, PLAIN_TEXT_NOTE if plain else None
