"""Text corpora as token ids: the character and word corpora the tasks use."""

from __future__ import annotations

import sysconfig
from pathlib import Path

from torch import Tensor

from rnnkit.data.registry import require
from rnnkit.data.vocabulary import Vocabulary
from rnnkit.files import read_utf8


def stdlib_source(max_chars: int = 2_000_000) -> str:
    """Python's own standard library sources (like the course's model trained on the Linux
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
    return read_utf8(require("tinyshakespeare", data_dir) / "input.txt")


def ptb(data_dir: str | Path | None = None) -> tuple[Vocabulary, dict[str, Tensor]]:
    """PTB as Zaremba et al. use it: every line ends with <eos>; the 10k-word vocabulary of
    the training file (which already maps rare words to <unk>). The corpus is lower case with
    numbers written as N, and the vocabulary says so, so new text is normalised the same way."""
    folder = require("ptb", data_dir)
    words = {s: read_utf8(folder / f"ptb.{s}.txt").replace("\n", " <eos> ").split() for s in ("train", "valid", "test")}
    numbers = "N" if "N" in set(words["train"]) else None
    vocab = Vocabulary.from_words(words["train"], lowercase=True, number_token=numbers)
    return vocab, {s: vocab.encode(w) for s, w in words.items()}
