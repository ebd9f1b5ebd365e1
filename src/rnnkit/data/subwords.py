"""Subword tokenisation with a sentencepiece model (Kudo & Richardson 2018), trained on a corpus's training text.

A sentence is cut into pieces from a vocabulary of a chosen size (unigram language model, or
BPE): frequent words stay whole, rare ones are spelled from smaller pieces, so no word of the
language is unknown. The cut is lossless: ``decode(encode(s)) == s`` for any text made of
characters seen in training, with single spaces and no leading or trailing one (what
:func:`rnnkit.data.translation.normalize` gives). Characters never seen in training become
the unknown piece (id 0).

The model travels as its serialised protobuf (bytes, parsed by sentencepiece: loading runs no
code), saved next to a checkpoint. Ids: 0 unknown, 1 start of sentence, 2 end, 3 padding.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["SubwordTokenizer", "UNK", "BOS", "EOS", "PAD"]

UNK, BOS, EOS, PAD = 0, 1, 2, 3


def _sentencepiece():  # noqa: ANN202  (the module, imported when needed)
    try:
        import sentencepiece
    except ImportError:
        raise ImportError("subword tokenisation needs sentencepiece: pip install 'rnnkit[text]'") from None
    return sentencepiece


class SubwordTokenizer:
    """Text <-> subword ids of one sentencepiece model (see the module docstring)."""

    def __init__(self, model: bytes) -> None:
        spm = _sentencepiece()
        self.processor = spm.SentencePieceProcessor()
        try:
            self.processor.LoadFromSerializedProto(model)
        except (RuntimeError, OSError, TypeError) as e:
            raise ValueError(f"not a sentencepiece model ({e})") from None
        ids = (self.processor.unk_id(), self.processor.bos_id(), self.processor.eos_id(), self.processor.pad_id())
        if ids != (UNK, BOS, EOS, PAD):
            raise ValueError(f"the sentencepiece model must have unk, bos, eos, pad = 0, 1, 2, 3. Received: {ids}")
        self.model = bytes(model)

    @classmethod
    def train(cls, sentences: Iterable[str], vocab_size: int, model_type: str = "unigram") -> SubwordTokenizer:
        """A model of ``vocab_size`` pieces (or fewer, when the text has fewer) learnt from
        ``sentences``, every character kept (coverage 1), no extra normalisation, one thread
        (so the same text gives the same model)."""
        spm = _sentencepiece()
        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe'. Received: {model_type!r}")
        text = [s for s in sentences if s]
        if not text:
            raise ValueError("cannot learn subwords from no sentences")
        out = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(text), model_writer=out, vocab_size=vocab_size, model_type=model_type,
            character_coverage=1.0, normalization_rule_name="identity", unk_id=UNK, bos_id=BOS, eos_id=EOS,
            pad_id=PAD, hard_vocab_limit=False, num_threads=1, minloglevel=2)
        return cls(out.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> SubwordTokenizer:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such sentencepiece model")
        try:
            return cls(path.read_bytes())
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model)

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.processor.decode([int(i) for i in ids])

    def characters(self) -> set[str]:
        """The characters the model's pieces are made of (the word-start mark ``▁`` and the
        special symbols' names not included): the text it knows."""
        p = self.processor
        return {ch for i in range(len(self)) if not (p.is_control(i) or p.is_unknown(i))
                for ch in p.id_to_piece(i) if ch != "\u2581"}

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The pieces of ``ids`` as text (``▁`` marks a word's start)."""
        return [self.processor.id_to_piece(int(i)) for i in ids]
