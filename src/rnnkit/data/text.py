"""Text corpora as token ids: character and word vocabularies, the corpora the tasks use."""

from __future__ import annotations

import json
import sysconfig
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data.registry import require


class Vocabulary:
    """Tokens <-> ids. ``unk``: the token that stands for anything unknown (None: unknown
    tokens are an error); ``eos``: the end-of-sentence token, if the corpus has one."""

    def __init__(self, tokens: Sequence[str], unk: str | None = None, eos: str | None = None, level: str = "char") -> None:
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        for special in (unk, eos):
            if special is not None and special not in self.index:
                raise ValueError(f"special token {special!r} is not in the vocabulary")
        self.unk, self.eos, self.level = unk, eos, level

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """Every character of ``text`` (sorted), plus <unk> for characters it does not contain."""
        return cls(["<unk>", *sorted(set(text))], unk="<unk>", level="char")

    @classmethod
    def from_words(cls, words: Iterable[str], eos: str = "<eos>", max_size: int | None = None) -> Vocabulary:
        """The ``max_size`` most frequent words (ties by first appearance), with <unk> and <eos>."""
        counts = Counter(words)
        ordered = [w for w, _ in counts.most_common(max_size) if w not in ("<unk>", eos)]
        return cls(["<unk>", eos, *ordered], unk="<unk>", eos=eos, level="word")

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Iterable[str]) -> Tensor:
        ids = []
        for t in tokens:
            i = self.index.get(t)
            if i is None:
                if self.unk is None:
                    raise ValueError(f"token {t!r} is not in the vocabulary")
                i = self.index[self.unk]
            ids.append(i)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def join(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: characters concatenated, words separated by spaces (<eos> -> newline)."""
        toks = self.decode(ids)
        if self.level == "char":
            return "".join(toks)
        return "".join("\n" if t == self.eos else t + " " for t in toks)

    def split(self, text: str) -> list[str]:
        """Text into this vocabulary's units."""
        return list(text) if self.level == "char" else text.split()

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "unk": self.unk, "eos": self.eos, "level": self.level}

    @classmethod
    def from_json(cls, obj: dict) -> Vocabulary:
        return cls(obj["tokens"], obj.get("unk"), obj.get("eos"), obj.get("level", "char"))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls.from_json(json.loads(path.read_text()))


def stdlib_source(max_chars: int = 2_000_000) -> str:
    """Python's own standard library sources (like the lecture's model trained on the Linux
    source): the .py files under sysconfig's stdlib path, sorted, up to ``max_chars``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, total = [], 0
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        if "site-packages" in path.parts or "test" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    if not parts:
        raise FileNotFoundError(f"no Python sources found under {root}; use --text FILE or --dataset tinyshakespeare")
    return "".join(parts)[:max_chars]


def char_corpus(text: str, valid_fraction: float = 0.1,
                vocab: Vocabulary | None = None) -> tuple[Vocabulary, Tensor, Tensor]:
    """(vocabulary, train ids, valid ids): the first 1 - valid_fraction of the text trains.
    The vocabulary is the text's characters, or ``vocab`` (a trained model's) if given."""
    if len(text) < 1000:
        raise ValueError(f"a character corpus needs at least 1000 characters. Received: {len(text)}")
    vocab = Vocabulary.from_text(text) if vocab is None else vocab
    ids = vocab.encode(text)
    cut = int(len(ids) * (1 - valid_fraction))
    return vocab, ids[:cut], ids[cut:]


def tinyshakespeare(data_dir: str | Path | None = None) -> str:
    return (require("tinyshakespeare", data_dir) / "input.txt").read_text(encoding="utf-8")


def ptb(data_dir: str | Path | None = None) -> tuple[Vocabulary, dict[str, Tensor]]:
    """PTB as Zaremba et al. use it: every line ends with <eos>; the 10k-word vocabulary of
    the training file (which already maps rare words to <unk>)."""
    folder = require("ptb", data_dir)
    words = {s: (folder / f"ptb.{s}.txt").read_text().replace("\n", " <eos> ").split() for s in ("train", "valid", "test")}
    vocab = Vocabulary.from_words(words["train"])
    return vocab, {s: vocab.encode(w) for s, w in words.items()}
