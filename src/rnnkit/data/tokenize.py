"""Raw English text into sentences of words as Universal Dependencies' English treebanks split them.

Sentences: NLTK's Punkt algorithm with its default parameters (no trained abbreviation
list, so "Mr. Smith" may be split after "Mr."). Words: NLTK's Penn Treebank tokeniser,
whose conventions UD English follows for punctuation and clitics: punctuation is split
off ("cold." -> "cold" "."), negation and verbal clitics are separate words ("don't" ->
"do" "n't", "I'm" -> "I" "'m", "we'll" -> "we" "'ll"), and so are "gonna" -> "gon" "na"
and "cannot" -> "can" "not". Treebank's `` and '' quote tokens are given back as the
plain " the text had, as UD keeps it.

What it does not do: split hyphenated words, which UD EWT mostly splits ("Al-Zaman" is
"Al" "-" "Zaman" there; a few such as "e-mail" stay whole); keep a URL or an e-mail
address whole when it ends in punctuation; undo the typography of the text (curly
quotes stay curly).
"""

from __future__ import annotations

__all__ = ["english_sentences"]


def english_sentences(text: str) -> list[list[str]]:
    """``text`` as sentences of UD-style words (see the module docstring); no empty sentence."""
    try:
        from nltk.tokenize import TreebankWordTokenizer
        from nltk.tokenize.punkt import PunktSentenceTokenizer
    except ImportError:
        raise ImportError("tokenising raw text needs NLTK: pip install 'rnnkit[text]'") from None
    words = TreebankWordTokenizer()
    out = []
    for line in text.splitlines():
        for sentence in PunktSentenceTokenizer().tokenize(line):
            tokens = ['"' if w in ("``", "''") else w for w in words.tokenize(sentence)]
            if tokens:
                out.append(tokens)
    return out
