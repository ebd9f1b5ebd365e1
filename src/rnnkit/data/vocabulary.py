"""Tokens <-> ids, and the text normalisation that goes with them.

A :class:`Vocabulary` travels with the model it was trained with (``vocab.json`` beside the
weights; :meth:`rnnkit.models.Model.save` writes it, :func:`rnnkit.load` attaches it), so
text in and text out need nothing else: ``rnnkit.load(run).generate("ROMEO:", 200)``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.data.batching import pad
from rnnkit.files import read_json, write_json_atomic

__all__ = ["Vocabulary"]

_NUMBER = re.compile(r"^[+-]?(\d+([.,/:-]\d+)*|\d*\.\d+)%?$")


class Vocabulary:
    """Tokens <-> ids.

    level: "char" (text is a sequence of characters) or "word" (whitespace-separated words).
    unk: the token that stands for anything unknown (None: unknown tokens are an error).
    eos: the end-of-sentence token, if the corpus has one (a newline in text).
    lowercase, number_token: how the training corpus was normalised (PTB: lower case, every
    number written as "N"); :meth:`tokenize` applies the same to new text.
    """

    def __init__(self, tokens: Sequence[str], unk: str | None = None, eos: str | None = None, level: str = "char",
                 lowercase: bool = False, number_token: str | None = None) -> None:
        if level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word'. Received: {level!r}")
        self.tokens = list(tokens)
        if not self.tokens or not all(isinstance(t, str) for t in self.tokens):
            raise ValueError("a vocabulary needs at least one token, and every token must be a string")
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        for special in (unk, eos, number_token):
            if special is not None and special not in self.index:
                raise ValueError(f"special token {special!r} is not in the vocabulary")
        self.unk, self.eos, self.level = unk, eos, level
        self.lowercase, self.number_token = lowercase, number_token

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """Every character of ``text`` (sorted), plus <unk> for characters it does not contain."""
        return cls(["<unk>", *sorted(set(text))], unk="<unk>", level="char")

    @classmethod
    def from_words(cls, words: Iterable[str], eos: str = "<eos>", max_size: int | None = None,
                   lowercase: bool = False, number_token: str | None = None) -> Vocabulary:
        """The ``max_size`` most frequent words (ties by first appearance), with <unk> and <eos>."""
        counts = Counter(words)
        ordered = [w for w, _ in counts.most_common(max_size) if w not in ("<unk>", eos)]
        return cls(["<unk>", eos, *ordered], unk="<unk>", eos=eos, level="word", lowercase=lowercase,
                   number_token=number_token)

    @classmethod
    def from_sentences(cls, sentences: Iterable[Sequence[str]], lowercase: bool = True) -> Vocabulary:
        """Every word of ``sentences`` (lower-cased when ``lowercase``), most frequent first (ties
        alphabetical), after <unk>: the vocabulary of a corpus of separate sentences (tagging,
        classification), so no end-of-sentence token."""
        counts = Counter(w.lower() if lowercase else w for s in sentences for w in s)
        return cls(["<unk>", *sorted(counts, key=lambda w: (-counts[w], w))], unk="<unk>", level="word",
                   lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_json() == other.to_json()

    # -- text -> ids ------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """Text into this vocabulary's units, normalised as the training corpus was."""
        if self.lowercase:
            text = text.lower()
        if self.level == "char":
            return list(text)
        units = []
        for line in text.split("\n"):
            words = line.split()
            if self.number_token is not None:
                words = [self.number_token if _NUMBER.match(w) else w for w in words]
            units += words + ([self.eos] if self.eos is not None else [])
        if self.eos is not None and not text.endswith("\n"):
            units.pop()  # the last line is not finished
        return units

    def unknown(self, units: Iterable[str]) -> list[str]:
        """The units that are not in the vocabulary (each once, in order)."""
        return list(dict.fromkeys(u for u in units if u not in self.index))

    def encode(self, tokens: Iterable[str]) -> Tensor:
        """Ids of ``tokens`` (unknown ones map to ``unk``, or are an error when there is none)."""
        ids = []
        for t in tokens:
            i = self.index.get(t)
            if i is None:
                if self.unk is None:
                    raise ValueError(f"token {t!r} is not in the vocabulary (and it has no unknown token)")
                i = self.index[self.unk]
            ids.append(i)
        return torch.tensor(ids, dtype=torch.long)

    def encode_sentences(self, sentences: Sequence[Sequence[str]]) -> tuple[Tensor, Tensor]:
        """Sentences of words (already split) as padded ids (B, T) and lengths (B,), each word
        normalised as the corpus was (lower case when ``lowercase``)."""
        if not sentences or any(len(s) == 0 for s in sentences):
            raise ValueError(f"sentences must be non-empty lists of words. Received: {len(sentences)} sentences, "
                             f"lengths {[len(s) for s in sentences][:10]}")
        norm = str.lower if self.lowercase else str
        return pad([self.encode([norm(w) for w in s]) for s in sentences])

    # -- ids -> text ------------------------------------------------------------------------

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def piece(self, token_id: int, first: bool = False) -> str:
        """The text one more token adds to a stream: a character; or a word with a space before
        it (none at the very start), <eos> as a newline."""
        token = self.tokens[int(token_id)]
        if self.level == "char":
            return token
        if token == self.eos:
            return "\n"
        return token if first else " " + token

    def join(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: characters concatenated; words separated by spaces, <eos> as a newline."""
        text = "".join(self.piece(i, first=k == 0) for k, i in enumerate(ids))
        return text.replace("\n ", "\n")

    # -- files ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "unk": self.unk, "eos": self.eos, "level": self.level,
                "lowercase": self.lowercase, "number_token": self.number_token}

    @classmethod
    def from_json(cls, obj: Any, source: str = "vocabulary") -> Vocabulary:
        """From :meth:`to_json`'s form; anything else is a ValueError naming ``source`` and the key."""
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise ValueError(f"{source}: expected a JSON object with a list of \"tokens\"")
        types = {"unk": (str, type(None)), "eos": (str, type(None)), "level": (str,), "lowercase": (bool,),
                 "number_token": (str, type(None))}
        for key, allowed in types.items():
            if key in obj and not isinstance(obj[key], allowed):
                raise ValueError(f"{source}: \"{key}\" has the wrong type ({type(obj[key]).__name__})")
        try:
            return cls(obj["tokens"], obj.get("unk"), obj.get("eos"), obj.get("level", "char"),
                       obj.get("lowercase", False), obj.get("number_token"))
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from None

    def save(self, path: Path) -> None:
        write_json_atomic(Path(path), self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls.from_json(read_json(Path(path), "a vocabulary"), str(path))
