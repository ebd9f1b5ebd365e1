"""What a decoder adds to the acoustic score: the two scorer contracts, the lexicon, hotwords.

A **token scorer** (:class:`Scorer`) sees the output one token id at a time and keeps a
state per hypothesis:

    state_0 = scorer.initial_state()
    delta, state = scorer.score(state, token)      # natural-log contribution of one token id
    end = scorer.final(state)                      # contribution at the end of the output

``score_many`` does the same for many (state, token) pairs at once; the default loops,
scorers that gain from batching (an RNN language model) override it. The beam search calls
a scorer once per new prefix, never per frame.

A **text language model** (:class:`TextLM`) has the same three verbs over units of text
(strings): whole words, or characters. The beam search feeds it whole words when it knows
the word delimiter, and each token's string otherwise (through :class:`TokenTextScorer`).
:class:`rnnkit.decode.NGramLM` is one; :class:`rnnkit.decode.RNNLMScorer` is a token scorer.

Here also: :class:`Lexicon` (only dictionary words, "Option 2" of the course; compiled into
the search as tables, not called per token) and :class:`Hotwords` (phrase boosting).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

NEG_INF = -math.inf


class Scorer:
    """Base of the token scorers (see the module docstring): ``score(state, token id)``."""

    def initial_state(self) -> Any:
        return None

    def score(self, state: Any, token: int) -> tuple[float, Any]:
        raise TypeError(f"{type(self).__name__} must implement score(state, token)")

    def score_many(self, states: Sequence[Any], tokens: Sequence[int]) -> tuple[np.ndarray, list[Any]]:
        results = [self.score(s, t) for s, t in zip(states, tokens)]
        return np.array([r[0] for r in results], dtype=np.float64), [r[1] for r in results]

    def final(self, state: Any) -> float:
        return 0.0


class TextLM(abc.ABC):
    """Base of the language models over text (see the module docstring): ``score(state, text)``."""

    @abc.abstractmethod
    def initial_state(self) -> Any:
        """The state before any text (e.g. after ``<s>``)."""

    @abc.abstractmethod
    def score(self, state: Any, text: str) -> tuple[float, Any]:
        """(ln P(text | state), the state after it), for one unit of text: a word or a character."""

    @abc.abstractmethod
    def final(self, state: Any) -> float:
        """ln P(end of text | state)."""


class Lexicon:
    """Only sequences of dictionary words: a trie of the words' spellings in tokens.

    A hypothesis whose current word leaves the trie is pruned (score -inf), or, with
    ``unknown_penalty``, pays that (negative) penalty once per unknown word and goes on.
    Words end at the delimiter token or at the end of the output. The beam search applies
    these rules in compiled code from :meth:`tables`, at the end of the output too.

    Args:
        words: the dictionary, as strings spelled with ``tokens`` (each token a string;
            multi-character tokens are matched greedily, longest first), or as sequences of
            token ids.
        tokens: the token strings, indexed by id (needed for string words).
        word_delimiter: id of the token between words (e.g. the space or "|"), or None
            when the output is a single word.
        unknown_penalty: None for a hard constraint, else the natural-log penalty per
            out-of-vocabulary word.

    Example:
        >>> lex = Lexicon(["cat", "cab"], tokens=["_", " ", "a", "b", "c", "t"], word_delimiter=1)
    """

    def __init__(self, words: Iterable[str | Sequence[int]], tokens: Sequence[str] | None = None,
                 word_delimiter: int | None = None, unknown_penalty: float | None = None) -> None:
        self.children: list[dict[int, int]] = [{}]
        self.is_word: list[bool] = [False]
        self.spellings: dict[int, tuple[int, ...]] = {}  # trie node -> the token ids of the word ending there
        self.word_delimiter = word_delimiter
        self.unknown_penalty = unknown_penalty
        by_string = {t: i for i, t in enumerate(tokens)} if tokens is not None else {}
        count = 0
        for word in words:
            ids = self._spell(word, by_string, tokens) if isinstance(word, str) else [int(i) for i in word]
            if not ids:
                raise ValueError("Lexicon words must be non-empty. Received: an empty word")
            if word_delimiter is not None and word_delimiter in ids:
                raise ValueError(f"Lexicon word {word!r} contains the word delimiter token {word_delimiter}")
            node = 0
            for i in ids:
                nxt = self.children[node].get(i)
                if nxt is None:
                    nxt = len(self.children)
                    self.children.append({})
                    self.is_word.append(False)
                    self.children[node][i] = nxt
                node = nxt
            self.is_word[node] = True
            self.spellings[node] = tuple(ids)
            count += 1
        if count == 0:
            raise ValueError("Lexicon needs at least one word. Received: none")
        self.num_words = count

    @staticmethod
    def _spell(word: str, by_string: dict[str, int], tokens: Sequence[str] | None) -> list[int]:
        if tokens is None:
            raise ValueError(f"Lexicon got the string word {word!r} but no tokens to spell it with")
        ids, i = [], 0
        lengths = sorted({len(t) for t in by_string if t}, reverse=True)
        while i < len(word):
            for n in lengths:
                if word[i : i + n] in by_string:
                    ids.append(by_string[word[i : i + n]])
                    i += n
                    break
            else:
                raise ValueError(
                    f"Lexicon word {word!r} has {word[i]!r} at position {i}, which no token spells "
                    f"(tokens: {list(tokens)[:40]})")
        return ids

    def tables(self, num_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        """The trie as arrays, as the compiled beam search uses it.

        Returns (next (U+1, C) int64: the node after token c from node u, -1 if the word
        leaves the dictionary; the last row is the unknown-word state, which stays there;
        is_word (U+1) bool: a word ends at u).
        """
        cached = getattr(self, "_tables", None)
        if cached is not None and cached[0].shape[1] == num_tokens:
            return cached
        U = len(self.children)
        nxt = np.full((U + 1, num_tokens), -1, dtype=np.int64)
        for u, kids in enumerate(self.children):
            for tok, child in kids.items():
                if tok >= num_tokens:
                    raise ValueError(f"Lexicon spells words with token {tok}, but the output has only "
                                     f"{num_tokens} classes")
                nxt[u, tok] = child
        nxt[U, :] = U
        self._tables = (nxt, np.array(self.is_word + [False]))
        return self._tables


class Hotwords(Scorer):
    """Boost phrases: ``weight`` per token of a phrase matched so far, kept once it completes.

    An Aho-Corasick automaton over the phrases' tokens: the state is one automaton node,
    each step one dictionary lookup (transitions are cached), so the cost per token does not
    grow with the number of phrases. A partial match that breaks gives its bonus back.

    Args:
        phrases: strings spelled with ``tokens``, or sequences of token ids.
        weight: natural-log bonus per matched token.
    """

    def __init__(self, phrases: Iterable[str | Sequence[int]], weight: float = 2.0,
                 tokens: Sequence[str] | None = None) -> None:
        lex = Lexicon(phrases, tokens=tokens)  # the same spelling rules; a trie of phrases
        self.goto = lex.children
        self.is_end = lex.is_word
        self.weight = float(weight)
        self.depth = [0] * len(self.goto)
        self.fail = [0] * len(self.goto)
        queue = list(self.goto[0].values())
        for node in queue:  # breadth first: depths, and failure links to the longest proper suffix
            if node in self.goto[0].values():
                self.depth[node] = 1
            for tok, child in self.goto[node].items():
                self.depth[child] = self.depth[node] + 1
                f = self.fail[node]
                while f and tok not in self.goto[f]:
                    f = self.fail[f]
                self.fail[child] = self.goto[f].get(tok, 0) if self.goto[f].get(tok, 0) != child else 0
                queue.append(child)
        self._cache: dict[tuple[int, int], int] = {}

    def _next(self, node: int, token: int) -> int:
        key = (node, token)
        nxt = self._cache.get(key)
        if nxt is None:
            f = node
            while f and token not in self.goto[f]:
                f = self.fail[f]
            nxt = self.goto[f].get(token, 0)
            self._cache[key] = nxt
        return nxt

    def initial_state(self) -> int:
        return 0

    def score(self, state: int, token: int) -> tuple[float, int]:
        nxt = self._next(state, token)
        banked = self.depth[state] if self.is_end[state] else 0  # a completed phrase keeps its bonus
        return self.weight * (self.depth[nxt] - self.depth[state] + banked), nxt

    def final(self, state: int) -> float:
        return 0.0 if self.is_end[state] else -self.weight * self.depth[state]


class TokenTextScorer(Scorer):
    """Feed a :class:`TextLM` each token's string (character-level n-grams), as a token scorer."""

    def __init__(self, lm: TextLM, tokens: Sequence[str]) -> None:
        self.lm = lm
        self.tokens = list(tokens)

    def initial_state(self) -> Any:
        return self.lm.initial_state()

    def score(self, state: Any, token: int) -> tuple[float, Any]:
        return self.lm.score(state, self.tokens[token])

    def final(self, state: Any) -> float:
        return self.lm.final(state)
