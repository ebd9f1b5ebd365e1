"""Language models as scorers: an ARPA n-gram model, and any rnnkit recurrent language model.

:class:`NGramLM` is a :class:`rnnkit.decode.scorers.TextLM` (it scores words or characters
as strings) and :class:`RNNLMScorer` a :class:`rnnkit.decode.scorers.Scorer` (it scores
token ids); both have ``initial_state``, ``score``, ``final`` and return **natural-log** probabilities, so that they add to CTC log-probabilities. ARPA
files store log10: ln p = log10 p * ln 10.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit import nested
from rnnkit.decode.scorers import Scorer, TextLM
from rnnkit.decode.word_lm import LN10, NGramTables, compile_ngram


class NGramLM(TextLM):
    """Back-off n-gram language model read from an ARPA file (any order).

    log10 P(w | h) = log10 p(h, w) if the n-gram (h, w) is listed, else
                     backoff(h) + log10 P(w | h minus its oldest word)  (backoff(h) = 0 if absent)

    Words outside the vocabulary are scored as ``<unk>`` (-inf if the model has none).
    States are the last order-1 words, starting from ``<s>``; :meth:`final` scores ``</s>``.
    Units are text: whole words, or single characters for a character model (the CTC beam
    search feeds it whole words when it knows the word delimiter, token strings otherwise).

    Args:
        path: the ARPA file.
        backend: "python" (this reader), "kenlm" (the kenlm module), or "auto": kenlm when
            it is installed, else python. Both give the same scores.
    """

    def __init__(self, path: str | Path, backend: str = "auto") -> None:
        self.path = Path(path)
        if backend not in ("auto", "python", "kenlm"):
            raise ValueError(f"backend must be 'auto', 'python' or 'kenlm'. Received: {backend!r}")
        if not self.path.is_file():
            raise FileNotFoundError(f"ARPA language model not found: {self.path}")
        self._kenlm = None
        self._compiled: tuple[NGramTables, dict[str, int]] | None = None
        if backend in ("auto", "kenlm"):
            try:
                import kenlm
            except ImportError:
                if backend == "kenlm":
                    raise ImportError("backend='kenlm' needs the kenlm module: pip install 'rnnkit[lm]' (or: pip install kenlm)") from None
            else:
                try:
                    with _quiet_stderr():  # kenlm prints a progress bar and advice to fd 2 while loading
                        self._kenlm = kenlm.Model(str(self.path))
                except (OSError, RuntimeError) as e:  # kenlm's own message is many lines of C++ context
                    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
                    raise ValueError(f"{self.path}: kenlm cannot read this ARPA file: {first[:300]}") from None
                self.order = self._kenlm.order
                self.backend = "kenlm"
                return
        self.backend = "python"
        self.logp: dict[tuple[str, ...], float] = {}
        self.backoff: dict[tuple[str, ...], float] = {}
        self.order = self._read(self.path)
        self.vocabulary = {k[0] for k in self.logp if len(k) == 1}

    def _read(self, path: Path) -> int:
        counts: dict[int, int] = {}
        section = None
        seen: dict[int, int] = {}
        with open(path, "rb") as f:
            for lineno, raw in enumerate(_utf8_lines(f, path), 1):
                line = raw.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    section = "data"
                    continue
                if line == "\\end\\":
                    section = "end"
                    break
                if line.startswith("\\") and line.endswith("-grams:"):
                    try:
                        section = int(line[1 : -len("-grams:")])
                    except ValueError:
                        raise ValueError(f"{path}:{lineno}: bad section header {line!r}") from None
                    seen[section] = 0
                    continue
                if section == "data":
                    if not line.startswith("ngram ") or "=" not in line:
                        raise ValueError(f"{path}:{lineno}: expected 'ngram N=count' in \\data\\. Received: {line!r}")
                    n, c = line[6:].split("=")
                    counts[int(n)] = int(c)
                    continue
                if not isinstance(section, int):
                    raise ValueError(f"{path}:{lineno}: text outside any section: {line!r}")
                parts = line.split()
                n = section
                if len(parts) not in (n + 1, n + 2):
                    raise ValueError(f"{path}:{lineno}: a {n}-gram line needs log10 p, {n} words and an "
                                     f"optional back-off. Received: {line!r}")
                try:
                    gram = tuple(parts[1 : n + 1])
                    logp = float(parts[0])
                    backoff = float(parts[n + 1]) if len(parts) == n + 2 else None
                except ValueError:
                    raise ValueError(f"{path}:{lineno}: not a number in {line!r}") from None
                if math.isnan(logp) or logp > 0:
                    raise ValueError(f"{path}:{lineno}: a log10 probability must be <= 0. Received: {parts[0]}")
                if backoff is not None and not math.isfinite(backoff):
                    raise ValueError(f"{path}:{lineno}: a back-off weight must be finite. Received: {parts[n + 1]}")
                self.logp[gram] = logp
                if backoff is not None:
                    self.backoff[gram] = backoff
                seen[n] += 1
        if section != "end":
            raise ValueError(f"{path}: not a complete ARPA file (no \\data\\ ... \\end\\)")
        if not counts:
            raise ValueError(f"{path}: the \\data\\ section lists no n-gram counts")
        for n, c in counts.items():
            if seen.get(n, 0) != c:
                raise ValueError(f"{path}: \\data\\ announces {c} {n}-grams but the file has {seen.get(n, 0)}")
        return max(counts)

    def compiled(self) -> tuple[NGramTables, dict[str, int]]:
        """(tables, word -> id): the model as arrays for the compiled beam search
        (:mod:`rnnkit.decode.word_lm`), built on first use (a kenlm-backed model reads its ARPA
        file once more with this reader)."""
        if self._compiled is None:
            source = self if self.backend == "python" else NGramLM(self.path, backend="python")
            self._compiled = compile_ngram(source.logp, source.backoff, source.order)
        return self._compiled

    # -- scores ---------------------------------------------------------------------------

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 P(word | context), with back-off; the context is cut to order-1 words."""
        if self._kenlm is not None:
            import kenlm

            state, out = kenlm.State(), kenlm.State()
            if context and context[0] == "<s>":
                self._kenlm.BeginSentenceWrite(state)
                context = context[1:]
            else:
                self._kenlm.NullContextWrite(state)
            for w in context:
                self._kenlm.BaseScore(state, w, out)
                state, out = out, state
            return self._kenlm.BaseScore(state, word, out)
        if word not in self.vocabulary:
            word = "<unk>"
            if word not in self.vocabulary:
                return -math.inf
        h = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        total = 0.0
        while True:
            p = self.logp.get(h + (word,))
            if p is not None:
                return total + p
            total += self.backoff.get(h, 0.0)
            h = h[1:]

    def initial_state(self) -> Any:
        if self._kenlm is not None:
            import kenlm

            state = kenlm.State()
            self._kenlm.BeginSentenceWrite(state)
            return state
        return ("<s>",)

    def score(self, state: Any, word: str) -> tuple[float, Any]:
        """(ln P(word | state), the next state)."""
        if self._kenlm is not None:
            import kenlm

            out = kenlm.State()
            return self._kenlm.BaseScore(state, word, out) * LN10, out
        lp = self.log10_prob(state, word)
        w = word if word in self.vocabulary else "<unk>"
        return lp * LN10, (state + (w,))[-(self.order - 1) :] if self.order > 1 else ()

    def final(self, state: Any) -> float:
        """ln P(</s> | state)."""
        return self.score(state, "</s>")[0]


class RNNLMScorer(Scorer):
    """A recurrent language model as a scorer, for shallow fusion into CTC beam search.

    Works with any model exposing ``initial_state(batch_size)`` and
    ``step(tokens (B,), state) -> (log_probs (B, V), state)`` (rnnkit's language models do).
    The state of a hypothesis is the model's recurrent state after its prefix plus the
    distribution of the next token, so scoring a token is a lookup, and all new
    hypotheses of a frame advance in one batched ``step``.

    Args:
        model: the language model (evaluation mode is set).
        token_map: for each decoder token id, the LM's token id, or -1 for tokens the LM
            does not see (they score 0 and leave the state alone). None: the identity.
        bos: LM token fed first (start of text); eos: LM token scored by :meth:`final`
            (None: no end-of-text score).
    """

    def __init__(self, model: torch.nn.Module, token_map: Sequence[int] | None = None, bos: int = 0,
                 eos: int | None = None) -> None:
        self.model = model.eval()
        self.token_map = None if token_map is None else np.asarray(token_map, dtype=np.int64)
        self.bos = bos
        self.eos = eos
        self.steps = 0  # batched model calls, for inspection
        self._initial = None

    def _lm_id(self, token: int) -> int:
        return token if self.token_map is None else int(self.token_map[token])

    @torch.no_grad()
    def _advance(self, states: Sequence[Any], lm_tokens: Sequence[int]) -> list[tuple[Any, Tensor]]:
        device = next(self.model.parameters()).device
        tokens = torch.tensor(list(lm_tokens), dtype=torch.long, device=device)
        log_probs, state = self.model.step(tokens, nested.stack(states))
        self.steps += 1
        return list(zip(nested.split(state, len(tokens)), log_probs.float().cpu()))

    def initial_state(self) -> tuple[Any, Tensor]:
        if self._initial is None:
            self._initial = self._advance([self.model.initial_state(1)], [self.bos])[0]
        return self._initial

    def score(self, state: tuple[Any, Tensor], token: int) -> tuple[float, tuple[Any, Tensor]]:
        deltas, states = self.score_many([state], [token])
        return float(deltas[0]), states[0]

    def score_many(self, states, tokens):
        deltas = np.zeros(len(tokens))
        new_states = list(states)
        todo = [i for i, t in enumerate(tokens) if self._lm_id(int(t)) >= 0]
        if todo:
            ids = [self._lm_id(int(tokens[i])) for i in todo]
            for i, lm_id in zip(todo, ids):
                deltas[i] = float(states[i][1][lm_id])
            for i, advanced in zip(todo, self._advance([states[i][0] for i in todo], ids)):
                new_states[i] = advanced
        return deltas, new_states

    def final(self, state: tuple[Any, Tensor]) -> float:
        return 0.0 if self.eos is None else float(state[1][self.eos])


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null (C++ code writes there directly, bypassing sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _utf8_lines(f: Any, path: Path) -> Any:
    """The lines of a file opened in binary mode, decoded as UTF-8; a line that is not UTF-8 is a
    ValueError naming the file and the line."""
    for lineno, line in enumerate(f, 1):
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not UTF-8 (byte {line[e.start:e.start + 1]!r}); "
                             "ARPA files are read as UTF-8") from None
