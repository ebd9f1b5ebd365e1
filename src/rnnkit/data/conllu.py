"""CoNLL-U treebanks (Universal Dependencies), read and written with the ``conllu`` package.

UPOS belongs to syntactic words: a multi-word token such as "don't" (line ``3-4``) is two
words, "do" and "n't" (lines 3 and 4), and those two are what is tagged and scored; the
range line and empty nodes (``8.1``, enhanced dependencies only) carry no UPOS and are
skipped, as UD's evaluation script does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rnnkit.files import read_utf8

__all__ = ["TaggedSentence", "read_conllu", "parse_conllu", "fill_upos", "is_word"]


def _conllu():  # noqa: ANN202 - the module, imported where needed (an optional dependency)
    try:
        import conllu
    except ImportError:
        raise ImportError("reading CoNLL-U needs the conllu package: pip install 'rnnkit[text]'") from None
    return conllu


def is_word(token: dict) -> bool:
    """A syntactic word: an integer id (not a multi-word range ``3-4``, not an empty node ``8.1``)."""
    return isinstance(token["id"], int)


@dataclass
class TaggedSentence:
    """One sentence's syntactic words and their UPOS tags ("_" where the file has none);
    ``tokens``: the parsed conllu TokenList, kept so that it can be written back."""

    words: list[str]
    tags: list[str]
    tokens: object


def parse_conllu(text: str, source: str = "CoNLL-U") -> list[TaggedSentence]:
    """The sentences of CoNLL-U ``text``; a malformed line is a ValueError naming ``source``."""
    conllu = _conllu()
    try:
        sentences = conllu.parse(text)
    except Exception as e:  # the parser raises its own ParseException and ValueError subclasses
        raise ValueError(f"{source}: not valid CoNLL-U ({e})") from None
    out = []
    for n, tokens in enumerate(sentences, 1):
        words = [t for t in tokens if is_word(t)]
        if not words:
            raise ValueError(f"{source}: sentence {n} has no syntactic words")
        short = next((t for t in tokens if len(t) != 10), None)
        if short is not None:
            raise ValueError(f"{source}: not valid CoNLL-U (sentence {n}, word {short['id']} has {len(short)} "
                             "columns; CoNLL-U has 10, tab-separated)")
        out.append(TaggedSentence([t["form"] for t in words], [t["upos"] or "_" for t in words], tokens))
    return out


def read_conllu(path: str | Path) -> list[TaggedSentence]:
    """The sentences of a CoNLL-U file (see :func:`parse_conllu`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such CoNLL-U file")
    return parse_conllu(read_utf8(path, str(path)), str(path))


def fill_upos(sentence: TaggedSentence, tags: Sequence[str]) -> str:
    """The sentence as CoNLL-U text with column 4 (UPOS) replaced by ``tags``, one per syntactic
    word; every other column, comment, multi-word token and empty node as it was."""
    words = [t for t in sentence.tokens if is_word(t)]
    if len(tags) != len(words):
        raise ValueError(f"tags must have one tag per syntactic word ({len(words)}). Received: {len(tags)}")
    for token, tag in zip(words, tags):
        token["upos"] = tag
    return sentence.tokens.serialize()
