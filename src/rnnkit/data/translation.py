"""Sentence pairs for translation: reading a tab-separated file, its subsets, a split by source sentence.

The file (the Tatoeba export of manythings.org, ``eng_fra/fra.txt``) has one pair per line,
``English<TAB>French`` (later exports add a third, attribution column, which is ignored).
Both sides are normalised the same way for training and for scoring: Unicode NFKC (the
French typographic no-break spaces become spaces), invisible format characters (zero-width
space, soft hyphen) removed, runs of white space made one space.

Subsets, decided on the PyTorch tutorial's normalisation of each side (:func:`tutorial_tokens`:
lower case, accents stripped, ``.!?`` split off, every other non-letter a space):

    tutorial   fewer than 10 tokens a side and the English starts with one of
               :data:`TUTORIAL_PREFIXES` — the tutorial's own filter, unchanged
    all        at most 20 tokens a side

:func:`split_by_source` splits the *distinct English sentences*, seeded, so every translation
of one source sentence lies in one split: a test source was never seen in training. The
split is made over the whole file and the subset filter applied inside each split, so the
tutorial subset's test sources are also test sources of ``all``.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

from rnnkit.files import read_utf8

__all__ = ["Pair", "normalize", "read_pairs", "tutorial_tokens", "TUTORIAL_PREFIXES", "SUBSETS", "split_by_source",
           "with_references"]

Pair = tuple[str, str]

#: the English prefixes of the tutorial subset, after :func:`tutorial_tokens` (``I'm`` -> ``i m``)
TUTORIAL_PREFIXES = ("i am ", "i m ", "he is", "he s ", "she is", "she s ", "you are", "you re ", "we are", "we re ",
                     "they are", "they re ")

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC, format characters (category Cf) dropped, white space collapsed and stripped."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _SPACE.sub(" ", text).strip()


def read_pairs(path: str | Path) -> list[Pair]:
    """The (source, target) pairs of a ``source<TAB>target[<TAB>...]`` file, normalised; a line
    without two non-empty columns is an error naming the file and line."""
    pairs = []
    for number, line in enumerate(read_utf8(Path(path), str(path)).splitlines(), 1):
        if not line.strip():
            continue
        columns = line.split("\t")
        pair = (normalize(columns[0]), normalize(columns[1])) if len(columns) >= 2 else ("", "")
        if not all(pair):
            raise ValueError(f"{path}:{number}: expected two non-empty tab-separated columns "
                             f"(source<TAB>target). Received: {line[:80]!r}")
        pairs.append(pair)
    return pairs


def tutorial_tokens(text: str) -> list[str]:
    """The PyTorch seq2seq tutorial's normalisation, as tokens: lower case, accents stripped,
    ``.!?`` split off, every other character that is not an ASCII letter a space."""
    text = "".join(ch for ch in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(ch) != "Mn")
    text = re.sub(r"([.!?])", r" \1", text)
    return re.sub(r"[^a-z.!?]+", " ", text).split()


def _tutorial(pair: Pair) -> bool:
    source, target = tutorial_tokens(pair[0]), tutorial_tokens(pair[1])
    return len(source) < 10 and len(target) < 10 and (" ".join(source) + " ").startswith(TUTORIAL_PREFIXES)


def _short(pair: Pair) -> bool:
    return len(tutorial_tokens(pair[0])) <= 20 and len(tutorial_tokens(pair[1])) <= 20


#: subset name -> the pairs it keeps
SUBSETS: dict[str, Callable[[Pair], bool]] = {"tutorial": _tutorial, "all": _short}

#: the split fractions of :func:`split_by_source`
FRACTIONS = {"train": 0.90, "valid": 0.05, "test": 0.05}


def split_by_source(pairs: Sequence[Pair], seed: int = 0) -> dict[str, list[Pair]]:
    """{"train", "valid", "test"}: the pairs of a seeded 90/5/5 split of the distinct sources
    (pairs keep their file order within a split)."""
    sources = sorted({source for source, _ in pairs})
    random.Random(seed).shuffle(sources)
    n_train = round(FRACTIONS["train"] * len(sources))
    n_valid = round(FRACTIONS["valid"] * len(sources))
    where = {s: "train" for s in sources[:n_train]}
    where.update({s: "valid" for s in sources[n_train:n_train + n_valid]})
    where.update({s: "test" for s in sources[n_train + n_valid:]})
    out: dict[str, list[Pair]] = {name: [] for name in FRACTIONS}
    for pair in pairs:
        out[where[pair[0]]].append(pair)
    return out


def with_references(pairs: Sequence[Pair]) -> tuple[list[str], list[list[str]]]:
    """The distinct sources (first-seen order) and, for each, all of its targets: the
    references a translation of that source is scored against."""
    references: dict[str, list[str]] = {}
    for source, target in pairs:
        references.setdefault(source, []).append(target)
    return list(references), list(references.values())
