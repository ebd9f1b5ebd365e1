"""The word n-gram model compiled into the CTC beam search: its tables, the look-ahead, recombination,
and the batch searched utterance by utterance on threads."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.ctc import ctc_loss
from rnnkit.decode import Lexicon, NGramLM, ctc_beam_search, int_hash
from rnnkit.decode import word_lm as WL
from rnnkit.decode.arpa import write_arpa
from rnnkit.reference import ctc as ref

TOKENS = ["_", " ", "a", "b", "c", "d", "t", "o", "g"]
CORPUS = [s.split() for s in ["the cat sat", "a dog sat", "a cat ran", "the cat ran to a dog", "a dog", "to a cat",
                              "dog to dog", "cat a cab"]]
WORDS = ["a", "cat", "dog", "cab", "to", "tab", "bat", "cod", "dot"]
EXACT = dict(token_min_logp=-math.inf, beam_prune_logp=-1e9)


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> NGramLM:
    return NGramLM(write_arpa(CORPUS, tmp_path_factory.mktemp("lm") / "lm.arpa", order=3), backend="python")


@pytest.fixture(scope="module")
def ab_lm(tmp_path_factory) -> NGramLM:
    corpus = [s.split() for s in ["a ab", "ab ba a", "bab a", "a a ba", "ba bab ab"]]
    return NGramLM(write_arpa(corpus, tmp_path_factory.mktemp("ab") / "ab.arpa", order=3), backend="python")


def _sentence_logp(lm: NGramLM, words: list[str]) -> float:
    state, total = lm.initial_state(), 0.0
    for w in words:
        delta, state = lm.score(state, w)
        total += delta
    return total + lm.final(state)


def _emissions(seed: int, B: int = 3, T: int = 30, scale: float = 2.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, T, len(TOKENS), generator=g, dtype=torch.float64) * scale).log_softmax(-1)


def test_int_hash_equals_a_dict():
    rng = np.random.default_rng(0)
    keys, values = int_hash.new(8)
    truth = {}
    for key in [*rng.integers(0, 10**12, size=3000).tolist(), *range(500)]:  # random, then dense keys
        keys, values = int_hash.with_room(keys, values, len(truth) + 1)
        int_hash.insert(keys, values, key, len(truth))
        truth[key] = len(truth)
    assert keys.shape[0] >= 2 * len(truth)
    for key, value in truth.items():
        assert int_hash.find(keys, values, key) == value
    for key in rng.integers(10**12, 2 * 10**12, size=200):
        assert int_hash.find(keys, values, int(key)) == -1


def test_compiled_tables_score_as_the_arpa_reader(lm, tmp_path):
    """Every word after every context of the corpus (and unknown words, and </s>) scores the same
    through the hash tables as through NGramLM, for the estimated 3-gram model and the hand-made
    2-gram one with back-offs."""
    tables, word_id = lm.compiled()
    vocab = sorted(lm.vocabulary - {"<s>"}) + ["zebra"]
    unknown = word_id.get("<unk>", -1)
    for history in itertools.product(["<s>"], vocab, vocab):
        state, ref_state = tables.start, lm.initial_state()
        for w in history[1:]:
            want, ref_state = lm.score(ref_state, w)
            got, state = WL.score(tables, state, word_id.get(w, unknown))
            assert got == pytest.approx(want, abs=1e-9), (history, w)
        assert WL.score(tables, state, tables.end)[0] == pytest.approx(lm.final(ref_state), abs=1e-9)


def test_compiled_tables_refuse_an_ngram_without_its_prefix():
    with pytest.raises(ValueError, match="'a b' is listed but its prefix 'a' is not"):
        WL.compile_ngram({("b",): -1.0, ("a", "b"): -0.5}, {}, order=2)


@pytest.mark.parametrize("lexicon", [True, False])
def test_compiled_lm_without_lookahead_equals_the_python_word_lm(lm, lexicon):
    """Look-ahead and recombination off, the compiled search is the per-word Python search: the same
    hypotheses, scores and LM scores (with a lexicon, and without: the LM's vocabulary then tells
    words apart, and any other word is <unk>)."""
    lex = Lexicon(WORDS, tokens=TOKENS, word_delimiter=1) if lexicon else None
    common = dict(beam_width=12, nbest=4, tokens=TOKENS, word_delimiter=1, lexicon=lex, lm_weight=0.8,
                  word_score=0.4)
    lp = _emissions(1)
    compiled = ctc_beam_search(lp, lm=lm, lm_lookahead="none", **common)
    python = ctc_beam_search(lp, lm=lm, compile_word_lm=False, **common)
    for a, b in zip(compiled, python):
        assert [h.ids for h in a] == [h.ids for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-9)
        assert [h.lm_score for h in a] == pytest.approx([h.lm_score for h in b], abs=1e-9)


@pytest.mark.parametrize("mode", WL.LOOKAHEAD_MODES)
@pytest.mark.parametrize("recombine", [False, True])
def test_lookahead_never_changes_a_finished_hypothesis_score(lm, mode, recombine):
    """Whatever the look-ahead, a returned hypothesis scores exactly its CTC log-probability plus
    lm_weight times the sentence's LM log-probability plus the word bonus per word."""
    lex = Lexicon(WORDS, tokens=TOKENS, word_delimiter=1)
    lp = _emissions(2, B=4)
    for row in ctc_beam_search(lp, beam_width=16, nbest=5, tokens=TOKENS, word_delimiter=1, lexicon=lex, lm=lm,
                               lm_weight=0.7, word_score=0.3, lm_lookahead=mode, recombine=recombine):
        assert row
        for h in row:
            words = h.text.split()
            assert h.lm_score == pytest.approx(_sentence_logp(lm, words), abs=1e-9)
            assert h.score == pytest.approx(h.acoustic_score + 0.7 * h.lm_score + 0.3 * len(words), abs=1e-9)


def test_lookahead_tables_hold_the_best_and_the_total_unigram_below_each_node(lm):
    tables, word_id = lm.compiled()
    lex = Lexicon(WORDS, tokens=TOKENS, word_delimiter=1)
    node = lex.children[0][TOKENS.index("c")]  # "c": cat, cab, cod below
    unigram = {w: WL.score(tables, 0, word_id.get(w, word_id["<unk>"]))[0] for w in ("cat", "cab", "cod")}
    best = WL.word_lm_rules(tables, word_id, lex, TOKENS, 1.0, "max").lookahead
    total = WL.word_lm_rules(tables, word_id, lex, TOKENS, 1.0, "logadd").lookahead
    assert best[node] == pytest.approx(max(unigram.values()), abs=1e-12)
    assert total[node] == pytest.approx(np.logaddexp.reduce(list(unigram.values())), abs=1e-12)
    assert best[0] == total[0] == 0.0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), mode=st.sampled_from(WL.LOOKAHEAD_MODES))
def test_wide_beam_equals_exhaustive_search_over_the_lexicon(ab_lm, seed, mode):
    """Every label sequence of 6 frames (all 4^6 paths summed), scored exactly: CTC + weighted LM +
    word bonus, -inf with a word outside the dictionary. The best is what a wide beam returns,
    whatever the look-ahead."""
    hyp = _ab_search(ab_lm, seed, mode, recombine=False)
    assert hyp.score == pytest.approx(_ab_exhaustive_best(ab_lm, seed), abs=1e-9)


def test_recombination_is_an_approximation(ab_lm):
    """Recombining by LM state drops the paths through the dropped prefix: on this case the search
    then returns " bab " (-6.42) where " a " (-6.29) is best, as documented."""
    assert _ab_search(ab_lm, 701306, "max", recombine=False).score == pytest.approx(_ab_exhaustive_best(ab_lm, 701306))
    assert _ab_search(ab_lm, 701306, "max", recombine=True).score < _ab_exhaustive_best(ab_lm, 701306) - 0.1


AB_TOKENS, AB_WORDS = ["_", " ", "a", "b"], {"a", "ab", "ba", "bab"}


def _ab_emissions(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 6, len(AB_TOKENS), generator=g, dtype=torch.float64) * 2).log_softmax(-1)


def _ab_search(lm: NGramLM, seed: int, mode: str, recombine: bool):
    lex = Lexicon(sorted(AB_WORDS), tokens=AB_TOKENS, word_delimiter=1)
    return ctc_beam_search(_ab_emissions(seed), beam_width=300, tokens=AB_TOKENS, word_delimiter=1, lexicon=lex, lm=lm,
                           lm_weight=0.9, word_score=0.5, lm_lookahead=mode, recombine=recombine, **EXACT)[0][0]


def _ab_exhaustive_best(lm: NGramLM, seed: int) -> float:
    tokens, words, lp = AB_TOKENS, AB_WORDS, _ab_emissions(seed)
    best = -math.inf
    for ids, p in ref.label_sequence_probabilities(lp[0].numpy(), 0).items():
        said = "".join(tokens[i] for i in ids).split()
        if p > 0 and all(w in words for w in said):
            best = max(best, math.log(p) + 0.9 * _sentence_logp(lm, said) + 0.5 * len(said))
    return best


def test_compiled_search_drops_dead_prefixes_without_changing_anything(lm, monkeypatch):
    from rnnkit.decode import ctc_beam

    lex = Lexicon(WORDS, tokens=TOKENS, word_delimiter=1, unknown_penalty=-4.0)
    lp = _emissions(3, T=60)
    kwargs = dict(beam_width=8, nbest=3, tokens=TOKENS, word_delimiter=1, lexicon=lex, lm=lm, word_score=0.5)
    monkeypatch.setattr(ctc_beam, "COMPACTION_SLACK", 10**9)
    never = ctc_beam_search(lp, **kwargs)
    monkeypatch.setattr(ctc_beam, "COMPACTION_SLACK", -10**9)
    always = ctc_beam_search(lp, **kwargs)
    for a, b in zip(never, always):
        assert [h.ids for h in a] == [h.ids for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-9)


def test_batch_on_threads_equals_each_utterance_alone(lm):
    lex = Lexicon(WORDS, tokens=TOKENS, word_delimiter=1)
    lp = _emissions(4, B=5, T=40)
    lengths = [40, 33, 12, 40, 1]
    kwargs = dict(beam_width=10, nbest=2, tokens=TOKENS, word_delimiter=1, lexicon=lex, lm=lm)
    alone = [ctc_beam_search(lp[b : b + 1, : lengths[b]], **kwargs, threads=1)[0] for b in range(5)]
    for threads in (1, 3):
        batch = ctc_beam_search(lp, lengths, **kwargs, threads=threads)
        for a, b in zip(alone, batch):
            assert [(h.ids, h.frames) for h in a] == [(h.ids, h.frames) for h in b]
            assert [h.score for h in a] == [h.score for h in b]


def test_ctc_kernels_leave_torch_thread_count_alone():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        ctc_loss(_emissions(5), [[2, 3]] * 3, [30] * 3, [2] * 3)
        ctc_beam_search(_emissions(5), tokens=TOKENS)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kwargs, message", [
    (dict(lm_lookahead="unigram"), "lm_lookahead must be one of"),
    (dict(recombine="yes"), "recombine must be True or False"),
    (dict(threads=0), "threads must be an integer >= 1"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ctc_beam_search(_emissions(6), tokens=TOKENS, **kwargs)
