"""From a sentence to its translation: an encoder-decoder with its source and target subword models.

A :class:`Translator` holds a :class:`rnnkit.models.Seq2Seq` and the two sentencepiece models
(:class:`rnnkit.data.subwords.SubwordTokenizer`) its ids come from. A sentence is normalised
(:func:`rnnkit.data.translation.normalize`), cut into source pieces, translated greedily or by
beam search (scores divided by length^alpha, Wu et al. 2016's length normalisation, so long
translations are not penalised for their length), and the target pieces are joined back into
text. The attention weights of the chosen translation (one row per target piece and the end
symbol, one column per source piece) come with it for the picture.

A training run saves both subword models in every checkpoint (``source.spm``, ``target.spm``),
so ``Translator.load(RUN)`` needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnnkit.data import pad
from rnnkit.data.subwords import BOS, EOS, UNK, SubwordTokenizer
from rnnkit.data.translation import normalize
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.progress import bar
from rnnkit.run_dir import Checkpoint

__all__ = ["Translation", "Translator", "SOURCE_MODEL", "TARGET_MODEL"]

#: the subword models' file names in a checkpoint
SOURCE_MODEL, TARGET_MODEL = "source.spm", "target.spm"


@dataclass(frozen=True)
class Translation:
    """A translated sentence: ``text``; its ``source_pieces`` and ``target_pieces`` (the end
    symbol not included); ``log_prob``, the model's log-probability of the pieces and the end;
    ``attention`` (len(target_pieces) + 1, len(source_pieces)), when asked for."""

    source: str
    text: str
    source_pieces: list[str]
    target_pieces: list[str]
    log_prob: float
    attention: Tensor | None = None


class Translator:
    """Translate sentences with ``model`` (see the module docstring).

    Args:
        model: a Seq2Seq whose source ids are ``source``'s and target ids ``target``'s, with
            bos and eos the tokenisers' (1 and 2).
        max_ratio, max_extra: the longest translation, in target pieces, for a source of
            ``n`` pieces: ``max_ratio * n + max_extra``.
    """

    def __init__(self, model: Seq2Seq, source: SubwordTokenizer, target: SubwordTokenizer,
                 max_ratio: float = 2.0, max_extra: int = 10) -> None:
        c = model.config
        if (c.src_vocab, c.tgt_vocab) != (len(source), len(target)):
            raise ValueError(f"the subword models have {len(source)} and {len(target)} pieces but the model reads "
                             f"{c.src_vocab} and writes {c.tgt_vocab}: they do not belong together")
        if (c.bos, c.eos) != (BOS, EOS):
            raise ValueError(f"the model's bos, eos must be the tokenisers' {BOS}, {EOS}. Received: {c.bos}, {c.eos}")
        self.model = model.eval()
        self.source, self.target = source, target
        self.max_ratio, self.max_extra = max_ratio, max_extra
        self.known = source.characters()

    @classmethod
    def load(cls, checkpoint: str | Path, device: str | torch.device = "cpu") -> Translator:
        """The translator of a run (its best checkpoint) or a checkpoint directory."""
        import rnnkit

        ckpt = Checkpoint.resolve(checkpoint)
        model = rnnkit.load(ckpt.path, map_location=device)
        if not isinstance(model, Seq2Seq):
            raise ValueError(f"{ckpt.path} holds a {type(model).__name__}, not a translation model (Seq2Seq)")
        return cls(model, SubwordTokenizer.load(ckpt.path / SOURCE_MODEL), SubwordTokenizer.load(ckpt.path / TARGET_MODEL))

    def encode(self, sentence: str, position: int = 1) -> list[int]:
        """The source ids of a sentence; an empty sentence, or one of which no character is
        known to the source model (another script), is an error naming it."""
        text = normalize(sentence)
        if not text:
            raise ValueError(f"sentence {position} is empty: nothing to translate")
        unknown = sorted({ch for ch in text if ch not in self.known and not ch.isspace()})
        if len(unknown) == len({ch for ch in text if not ch.isspace()}):
            raise ValueError(f"sentence {position} ({text[:40]!r}): none of its characters were in the training "
                             f"text (unknown: {''.join(unknown[:20])}); this model translates "
                             f"{'/'.join(self._scripts())} text")
        return self.source.encode(text)

    def _scripts(self) -> list[str]:
        """The scripts of the source model's letters (a few stray letters of another not counted)."""
        import unicodedata
        from collections import Counter

        letters = Counter(unicodedata.name(ch, "?").split()[0] for ch in self.known if ch.isalpha())
        return sorted(script for script, n in letters.items() if n >= min(10, max(letters.values())))

    @torch.no_grad()
    def translate(self, sentences: Sequence[str], beam: int = 1, length_normalization: float = 1.0,
                  attention: bool = False, batch_size: int = 64, progress: bool | None = None) -> list[Translation]:
        """The translation of each sentence, in order (see the class docstring); ``progress``:
        a bar over the sentences (None: on a terminal)."""
        if isinstance(sentences, str):
            raise ValueError("sentences must be a list of strings (wrap a single sentence in a list)")
        ids = [self.encode(s, i + 1) for i, s in enumerate(sentences)]
        device = next(self.model.parameters()).device
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list[Translation | None] = [None] * len(ids)
        shown = bar(len(ids), progress, desc=f"translating (beam {beam})", unit="sentence", leave=False)
        for lo in range(0, len(order), batch_size):
            rows = order[lo:lo + batch_size]
            src, lengths = pad([torch.tensor(ids[i]) for i in rows])
            src, lengths = src.to(device), lengths.to(device)
            longest = int(self.max_ratio * int(lengths.max())) + self.max_extra
            options = {"length_normalization": length_normalization} if beam > 1 else {}
            hyps = self.model.translate(src, lengths, max_length=longest, beam_width=beam, **options)
            alphas = self._attention(src, lengths, [h.ids for h in hyps]) if attention else [None] * len(rows)
            for i, h, a in zip(rows, hyps, alphas):
                out[i] = Translation(source=sentences[i], text=self.target.decode(h.ids),
                                     source_pieces=self.source.pieces(ids[i]), target_pieces=self.target.pieces(h.ids),
                                     log_prob=float(h.acoustic_score),
                                     attention=None if a is None else a[: len(h.ids) + 1, : len(ids[i])].cpu())
            shown.update(len(rows))
        shown.close()
        return out  # type: ignore[return-value]

    def _attention(self, src: Tensor, lengths: Tensor, outputs: list[list[int]]) -> list[Tensor]:
        """The attention weights (T+1, S) of each given output, read with it as the decoder's input."""
        if self.model.attend is None:
            return [None] * len(outputs)  # type: ignore[list-item]
        tgt_in, _ = pad([torch.tensor([BOS, *o]) for o in outputs], value=UNK)
        _, alpha = self.model(src, lengths, tgt_in.to(src.device))
        return list(alpha)
