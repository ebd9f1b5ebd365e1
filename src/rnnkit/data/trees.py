"""Labelled constituency trees in Penn Treebank bracketing, as the Stanford Sentiment Treebank has them.

``(3 (2 The) (4 (3 gorgeously) (2 elaborate)))``: every node is ``(LABEL CHILD ...)`` and a
leaf is ``(LABEL word)``; in SST the label is a sentiment class 0-4 and every node, from a
single word to the whole sentence, carries one (phrase-level labels). Words are given back as
raw text has them: PTB's escapes -LRB- -RRB- (and the square and curly ones), \\/ and \\*,
and its `` '' quotes become ( ) / * and ".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rnnkit.files import read_utf8

__all__ = ["Tree", "parse_tree", "read_trees"]

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
        return [self.word] if self.word is not None else [w for c in self.children for w in c.words()]

    def nodes(self) -> Iterator[Tree]:
        """Every node, parents before children (the root first)."""
        yield self
        for c in self.children:
            yield from c.nodes()

    def height(self) -> int:
        """1 for a leaf; 1 + the tallest child otherwise."""
        return 1 if self.is_leaf else 1 + max(c.height() for c in self.children)


def parse_tree(text: str, source: str = "tree") -> Tree:
    """One bracketed tree; PTB escapes in words (-LRB-, ``, ...) become the characters they stand
    for. Anything malformed is a ValueError naming ``source`` and what is wrong."""
    tokens = _TOKEN.findall(text)
    position = 0

    def fail(problem: str) -> ValueError:
        return ValueError(f"{source}: {problem} (token {position + 1} of {len(tokens)}: "
                          f"{' '.join(tokens[max(0, position - 3) : position + 3])!r})")

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
