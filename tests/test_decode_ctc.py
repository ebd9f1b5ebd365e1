"""CTC decoding: greedy, prefix beam search (against brute force), lexicon, n-gram and RNN LMs, hotwords."""

from __future__ import annotations

import itertools
import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.ctc import ctc_loss, forced_align
from rnnkit.decode import Hotwords, Lexicon, NGramLM, RNNLMScorer, Scorer, ctc_beam_search, ctc_greedy
from rnnkit.decode.arpa import write_arpa
from rnnkit.reference import ctc as ref

LN10 = math.log(10)
EXACT = dict(token_min_logp=-math.inf, beam_prune_logp=-1e9)


def _frames(rows, C, blank=0, floor=-8.0):
    """Log-probabilities with one dominant symbol per frame (rows: symbol per frame)."""
    lp = torch.full((len(rows), len(rows[0]), C), floor, dtype=torch.float64)
    for b, row in enumerate(rows):
        for t, c in enumerate(row):
            lp[b, t, c] = 0.0
    return lp.log_softmax(-1)


# ----------------------------------------------------------------------------- greedy

def test_greedy_merges_repeats_and_drops_blanks():
    lp = _frames([[1, 1, 0, 1, 2, 2, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]], C=3)
    first, all_blank = ctc_greedy(lp)
    assert first.ids == [1, 1, 2] and first.frames == [0, 3, 4]
    assert all_blank.ids == [] and all_blank.frames == []
    assert first.score == pytest.approx(float(lp[0].max(-1).values.sum()))
    assert ctc_greedy(lp, merge_repeated=False)[0].ids == [1, 1, 1, 2, 2]


def test_greedy_lengths_text_and_words():
    lp = _frames([[2, 0, 3, 1, 4, 4, 0, 2]], C=5)
    (h,) = ctc_greedy(lp, lengths=[7], tokens=["_", " ", "a", "b", "c"], word_delimiter=1)
    assert h.ids == [2, 3, 1, 4] and h.text == "ab c"
    assert h.word_frames == [("ab", 0, 3), ("c", 4, 5)]
    assert ctc_greedy(lp, lengths=[0])[0].ids == []


# ----------------------------------------------------------------------------- beam search vs brute force

@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 6), C=st.integers(2, 3), seed=st.integers(0, 2**31 - 1), blank=st.integers(0, 2))
def test_wide_beam_finds_the_most_probable_label_sequence(T, C, seed, blank):
    blank = blank % C
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(1, T, C, generator=g, dtype=torch.float64) * 2).log_softmax(-1)
    probs = ref.label_sequence_probabilities(lp[0].numpy(), blank)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    hyps = ctc_beam_search(lp, beam_width=200, blank=blank, nbest=3, **EXACT)[0]
    assert tuple(hyps[0].ids) == ranked[0][0] or math.isclose(probs[tuple(hyps[0].ids)], ranked[0][1], rel_tol=1e-9)
    for h in hyps:  # every score is the exact sum over the label sequence's alignments
        assert h.acoustic_score == pytest.approx(math.log(probs[tuple(h.ids)]), abs=1e-9)
    assert [h.score for h in hyps] == sorted([h.score for h in hyps], reverse=True)
    assert len({tuple(h.ids) for h in hyps}) == len(hyps)


def test_scores_equal_minus_ctc_loss():
    """With a beam that keeps every prefix (9 frames, 3 symbols: under 20000 prefixes), each
    hypothesis' acoustic score is its full CTC log-probability, -ctc_loss. Narrower beams
    drop prefixes, and the alignments through them, on purpose."""
    g = torch.Generator().manual_seed(1)
    lp = (torch.randn(3, 9, 4, generator=g, dtype=torch.float64) * 4).log_softmax(-1)
    for b, hyps in enumerate(ctc_beam_search(lp, beam_width=20000, nbest=5, **EXACT)):
        for h in hyps:
            target = torch.tensor([h.ids]) if h.ids else torch.zeros(1, 0, dtype=torch.long)
            loss = ctc_loss(lp[b : b + 1], target, [9], [len(h.ids)], reduction="none")
            assert h.acoustic_score == pytest.approx(-loss.item(), abs=1e-10)


def test_beam_width_one_equals_greedy_on_peaked_outputs():
    g = torch.Generator().manual_seed(2)
    rows = torch.randint(0, 5, (4, 25), generator=g).tolist()
    lp = _frames(rows, C=5, floor=-6.0)
    for h_beam, h_greedy in zip(ctc_beam_search(lp, beam_width=1), ctc_greedy(lp)):
        assert h_beam[0].ids == h_greedy.ids
        assert h_beam[0].frames == h_greedy.frames


def test_batch_equals_rows_alone_and_respects_lengths():
    g = torch.Generator().manual_seed(3)
    lp = torch.randn(4, 20, 7, generator=g).log_softmax(-1)
    lengths = [20, 12, 5, 17]
    together = ctc_beam_search(lp, lengths, beam_width=8, nbest=2)
    for b in range(4):
        alone = ctc_beam_search(lp[b : b + 1, : lengths[b]], beam_width=8, nbest=2)[0]
        assert [h.ids for h in together[b]] == [h.ids for h in alone]
        assert [h.score for h in together[b]] == pytest.approx([h.score for h in alone])


# ----------------------------------------------------------------------------- lexicon

TOKENS = ["_", " ", "a", "b", "c", "d", "t", "o", "g"]


def test_lexicon_outputs_only_dictionary_words():
    lex = Lexicon(["cat", "dog", "cab", "a"], tokens=TOKENS, word_delimiter=1)
    g = torch.Generator().manual_seed(4)
    lp = torch.randn(6, 40, len(TOKENS), generator=g).log_softmax(-1)
    for hyps in ctc_beam_search(lp, beam_width=16, nbest=3, lexicon=lex, tokens=TOKENS, word_delimiter=1):
        assert hyps, "a dictionary-word output exists for any input long enough"
        for h in hyps:
            assert all(w in {"cat", "dog", "cab", "a"} for w in h.text.split())


def test_lexicon_prefers_the_dictionary_word_over_a_more_probable_non_word():
    # frames say "cot" (o slightly above a); the lexicon only knows "cat"
    lp = torch.full((1, 5, len(TOKENS)), -9.0)
    for t, c in enumerate([4, 0, 7, 0, 6]):  # c _ o _ t
        lp[0, t, c] = 0.0
    lp[0, 2, 2] = -0.5  # 'a' nearly as likely as 'o' at frame 2
    lp = lp.log_softmax(-1)
    assert ctc_beam_search(lp, beam_width=8, tokens=TOKENS)[0][0].text == "cot"
    lex = Lexicon(["cat"], tokens=TOKENS, word_delimiter=1)
    assert ctc_beam_search(lp, beam_width=8, tokens=TOKENS, word_delimiter=1, lexicon=lex)[0][0].text == "cat"
    soft = Lexicon(["cat"], tokens=TOKENS, word_delimiter=1, unknown_penalty=-0.1)
    assert ctc_beam_search(lp, beam_width=8, tokens=TOKENS, word_delimiter=1, lexicon=soft)[0][0].text == "cot"


def test_lexicon_rejects_a_non_word_even_when_it_is_all_the_input_says():
    """'aaa' is no dictionary word: the empty output (zero words) beats it, 'dog' is absent."""
    lp = _frames([[2, 2, 2]], C=len(TOKENS))
    hyps = ctc_beam_search(lp, tokens=TOKENS, lexicon=Lexicon(["dog"], tokens=TOKENS), nbest=2)[0]
    assert hyps[0].text == "" and all(h.text in ("", "dog") for h in hyps)


# ----------------------------------------------------------------------------- n-gram LM

ARPA = """\\data\\
ngram 1=6
ngram 2=4

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.30103
-0.69897\t</s>
-0.52288\tcat\t-0.17609
-0.52288\tdog\t-0.5
-1.0\tcab

\\2-grams:
-0.09691\t<s> cat
-0.30103\tcat </s>
-0.39794\t<s> dog
-0.2\tdog cat

\\end\\
"""


@pytest.fixture
def arpa(tmp_path):
    path = tmp_path / "tiny.arpa"
    path.write_text(ARPA)
    return path


@pytest.mark.parametrize("backend", ["python", "kenlm"])
def test_ngram_scores_equal_hand_computed_values(arpa, backend):
    """ARPA stores log10; score() returns natural logs: ln p = log10 p * ln 10."""
    lm = NGramLM(arpa, backend=backend)
    assert lm.backend == backend and lm.order == 2
    s0 = lm.initial_state()
    d, s1 = lm.score(s0, "cat")
    assert d == pytest.approx(-0.09691 * LN10, abs=1e-5)  # listed bigram
    d, s2 = lm.score(s1, "dog")
    assert d == pytest.approx((-0.17609 - 0.52288) * LN10, abs=1e-5)  # back-off(cat) + P(dog)
    d, _ = lm.score(s2, "cab")
    assert d == pytest.approx((-0.5 - 1.0) * LN10, abs=1e-5)  # back-off(dog) + P(cab)
    assert lm.final(s1) == pytest.approx(-0.30103 * LN10, abs=1e-5)  # P(</s> | cat)
    d, _ = lm.score(s0, "zebra")
    assert d == pytest.approx((-0.30103 - 1.0) * LN10, abs=1e-5)  # unknown word: back-off(<s>) + P(<unk>)
    assert lm.log10_prob(["<s>"], "dog") == pytest.approx(-0.39794, abs=1e-6)


def test_estimated_arpa_is_normalised(tmp_path):
    sentences = [s.split() for s in ["the cat sat", "the dog sat", "a cat ran", "the cat ran fast", "a dog"]]
    lm = NGramLM(write_arpa(sentences, tmp_path / "lm.arpa", order=3), backend="python")
    vocab = sorted(lm.vocabulary - {"<s>"})
    for history in (["<s>"], ["<s>", "the"], ["the", "cat"], ["dog", "sat"], ["zebra", "the"]):
        total = sum(10 ** lm.log10_prob(history, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-4), history


def test_ngram_lm_changes_the_decision(tmp_path):
    """Two acoustically equal words; the LM knows which follows 'the'."""
    tokens = ["_", " ", "t", "h", "e", "c", "a", "b"]
    path = write_arpa([["the", "cab"]] * 5 + [["a", "cat"]], tmp_path / "lm.arpa", order=2)
    lm = NGramLM(path)
    # "the ca?" with the last letter b/t... 't' is not spelled by 'b' here: use a and b
    lp = torch.full((1, 9, len(tokens)), -9.0)
    for t, c in enumerate([2, 3, 4, 1, 5, 0, 6, 0, 7]):  # t h e _ c _ a _ b
        lp[0, t, c] = 0.0
    lp[0, 8, 2] = 0.0  # 't' as likely as 'b' at the last frame: "the cab" vs "the cat"
    lp = lp.log_softmax(-1)
    without = ctc_beam_search(lp, beam_width=8, tokens=tokens, word_delimiter=1, nbest=2)[0]
    assert {h.text for h in without} == {"the cab", "the cat"}
    with_lm = ctc_beam_search(lp, beam_width=8, tokens=tokens, word_delimiter=1, lm=lm, lm_weight=1.0)[0][0]
    assert with_lm.text == "the cab"
    expected = sum(lm.score(s, w)[0] for s, w in [(lm.initial_state(), "the"), (lm.score(lm.initial_state(), "the")[1], "cab")])
    expected += lm.final(lm.score(lm.score(lm.initial_state(), "the")[1], "cab")[1])
    assert with_lm.lm_score == pytest.approx(expected, abs=1e-6)
    assert with_lm.score == pytest.approx(with_lm.acoustic_score + with_lm.lm_score, abs=1e-6)


@pytest.mark.parametrize("text,message", [
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n\n\\end\\\n", "announces 2 1-grams but the file has 1"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\n\\end\\\n", "a 1-gram line needs log10 p, 1 words"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\nx\ta\n\\end\\\n", "not a number"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\ta\n", r"not a complete ARPA file"),
])
def test_corrupt_arpa_files_are_refused(tmp_path, text, message):
    path = tmp_path / "bad.arpa"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        NGramLM(path, backend="python")


def test_missing_arpa_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="ARPA language model not found"):
        NGramLM(tmp_path / "none.arpa")


# ----------------------------------------------------------------------------- RNN LM


class BigramModel(torch.nn.Module):
    """A language model whose next-token distribution depends on the last token only."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table.log_softmax(-1))
        self.calls = 0

    def initial_state(self, batch_size: int):
        return (torch.zeros(batch_size, 1),)

    def step(self, tokens, state):
        self.calls += 1
        return self.table[tokens], (state[0] + 1,)


def test_rnn_lm_scorer_scores_and_batches():
    torch.manual_seed(0)
    model = BigramModel(torch.randn(4, 4))
    scorer = RNNLMScorer(model, bos=0)
    s0 = scorer.initial_state()
    d, s1 = scorer.score(s0, 2)
    assert d == pytest.approx(model.table[0, 2].item())
    deltas, states = scorer.score_many([s1, s1, s0], [1, 3, 2])
    assert deltas == pytest.approx([model.table[2, 1].item(), model.table[2, 3].item(), model.table[0, 2].item()])
    assert scorer.steps == 3  # initial, one single, one batch of three


def test_rnn_lm_fusion_in_beam_search():
    tokens = ["_", " ", "a", "b"]
    table = torch.full((4, 4), -5.0)
    table[:, 3] = 5.0  # the LM always wants 'b'
    scorer = RNNLMScorer(BigramModel(table), token_map=[-1, 1, 2, 3], bos=1)
    lp = torch.full((1, 3, 4), -9.0)
    lp[0, :, 2] = 0.0
    lp[0, :, 3] = -1.0  # acoustically 'a' wins by 1 nat per frame
    lp = lp.log_softmax(-1)
    assert ctc_beam_search(lp, tokens=tokens)[0][0].text == "a"
    fused = ctc_beam_search(lp, tokens=tokens, lm=scorer, lm_weight=0.5)[0][0]
    assert fused.text == "b"


# ----------------------------------------------------------------------------- hotwords

def test_hotword_scorer_gives_partial_matches_back():
    hw = Hotwords([[2, 3]], weight=1.0)
    s = hw.initial_state()
    d1, s = hw.score(s, 2)
    d2, s = hw.score(s, 3)
    d3, s = hw.score(s, 4)
    assert (d1, d2, d3) == (1.0, 1.0, 0.0), "a completed phrase keeps its bonus"
    s = hw.initial_state()
    d1, s = hw.score(s, 2)
    d2, s = hw.score(s, 4)
    assert (d1, d2) == (1.0, -1.0), "a broken partial match gives it back"
    assert hw.final(hw.score(hw.initial_state(), 2)[1]) == -1.0


def test_hotwords_boost_a_phrase():
    lp = torch.full((1, 5, len(TOKENS)), -9.0)
    for t, c in enumerate([4, 0, 7, 0, 6]):  # "cot", with 'a' close behind 'o'
        lp[0, t, c] = 0.0
    lp[0, 2, 2] = -0.5
    lp = lp.log_softmax(-1)
    assert ctc_beam_search(lp, tokens=TOKENS, hotwords=["cat"], hotword_weight=1.0)[0][0].text == "cat"


def test_many_hotwords_cost_little_more_than_one():
    g = torch.Generator().manual_seed(5)
    lp = torch.randn(1, 200, len(TOKENS), generator=g).log_softmax(-1)
    words = ["".join(p) for p in itertools.product("abcdot", repeat=3)][:200]

    def timed(hot):
        t0 = time.perf_counter()
        ctc_beam_search(lp, beam_width=16, tokens=TOKENS, hotwords=hot)
        return time.perf_counter() - t0

    timed(words[:1])
    assert timed(words) < 3 * timed(words[:1]) + 0.05


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call,message", [
    (lambda lp: ctc_beam_search(lp, beam_width=0), "beam_width must be an integer >= 1. Received: 0"),
    (lambda lp: ctc_beam_search(lp, beam_width=4, nbest=5), r"nbest must be an integer in \[1, beam_width=4\]"),
    (lambda lp: ctc_beam_search(lp, tokens=["a", "b"]), "tokens must name all 9 classes"),
    (lambda lp: ctc_beam_search(lp, beam_prune_logp=3.0), "beam_prune_logp must be <= 0"),
    (lambda lp: ctc_beam_search(lp, word_score=1.0), "word_score needs word_delimiter"),
    (lambda lp: ctc_beam_search(lp, lengths=[9]), r"lengths must lie in \[0, 5\]"),
    (lambda lp: ctc_beam_search(lp + 1), "must be log-probabilities"),
    (lambda lp: ctc_greedy(lp[0]), r"log_probs must be a float tensor \(batch, time, classes\)"),
    (lambda lp: Lexicon(["cat", "caz"], tokens=TOKENS), r"Lexicon word 'caz' has 'z' at position 2, which no token spells"),
    (lambda lp: ctc_beam_search(lp, tokens=TOKENS, word_delimiter=0), "word_delimiter must be a token id"),
])
def test_bad_input(call, message):
    lp = torch.randn(1, 5, len(TOKENS)).log_softmax(-1)
    with pytest.raises(ValueError, match=message):
        call(lp)


def test_custom_scorer_protocol():
    class NoA(Scorer):
        """Forbid the token 'a'."""

        def score(self, state, token):
            return (-math.inf if token == 2 else 0.0), state

    lp = _frames([[2, 0, 3]], C=len(TOKENS))
    hyp = ctc_beam_search(lp, tokens=TOKENS, lm=NoA(), lm_weight=1.0)[0][0]
    assert "a" not in hyp.text


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), penalty=st.sampled_from([None, -1.5]))
def test_lexicon_search_equals_a_brute_force_over_word_strings(seed, penalty):
    """The compiled lexicon rules (tables, and Lexicon.final at the end) score every output
    as the oracle does on its text: the penalty once per word not in the dictionary (-inf
    for a hard lexicon). The best hypothesis of a wide beam is the brute-force best."""
    tokens, words = ["_", " ", "a", "b"], {"ab", "a", "bab"}
    lex = Lexicon(sorted(words), tokens=tokens, word_delimiter=1, unknown_penalty=penalty)
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(1, 5, len(tokens), generator=g, dtype=torch.float64) * 2).log_softmax(-1)

    def oracle(ids: tuple[int, ...]) -> float:
        unknown = sum(1 for w in "".join(tokens[i] for i in ids).split(" ") if w and w not in words)
        return 0.0 if unknown == 0 else (-math.inf if penalty is None else penalty * unknown)

    probs = ref.label_sequence_probabilities(lp[0].numpy(), 0)
    scored = {ids: math.log(p) + oracle(ids) for ids, p in probs.items() if p > 0}
    best = max(scored.values())
    hyps = ctc_beam_search(lp, beam_width=400, nbest=4, tokens=tokens, word_delimiter=1, lexicon=lex, **EXACT)[0]
    assert hyps[0].score == pytest.approx(best, abs=1e-9)
    for h in hyps:
        assert h.score == pytest.approx(scored[tuple(h.ids)], abs=1e-9)


@pytest.mark.parametrize("with_scorers", [False, True])
def test_dropping_dead_prefixes_changes_nothing(monkeypatch, tmp_path, with_scorers):
    """Compacting the prefix trie on every frame gives exactly the results of never compacting."""
    from rnnkit.decode import ctc_beam

    g = torch.Generator().manual_seed(7)
    lp = torch.randn(3, 60, len(TOKENS), generator=g).mul(2).log_softmax(-1)
    kwargs = dict(beam_width=8, nbest=3, tokens=TOKENS, word_delimiter=1)
    if with_scorers:
        path = write_arpa([["cat", "dog"], ["a", "cat"], ["dog"]], tmp_path / "lm.arpa", order=2)
        kwargs.update(lm=NGramLM(path), lexicon=Lexicon(["cat", "dog", "a", "cab"], tokens=TOKENS, word_delimiter=1,
                                                         unknown_penalty=-3.0), hotwords=["cab"], word_score=0.5)
    monkeypatch.setattr(ctc_beam, "COMPACTION_SLACK", 10**9)
    never = ctc_beam_search(lp, **kwargs)
    monkeypatch.setattr(ctc_beam, "COMPACTION_SLACK", -10**9)
    always = ctc_beam_search(lp, **kwargs)
    for a, b in zip(never, always):
        assert [(h.ids, h.frames) for h in a] == [(h.ids, h.frames) for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-9)
        assert [h.lm_score for h in a] == pytest.approx([h.lm_score for h in b], abs=1e-9)


def test_rnn_lm_scorer_with_an_rnnkit_language_model():
    """Incremental scoring (one batched step per new prefix) equals one pass over the prefix."""
    from rnnkit.models import LanguageModel, LanguageModelConfig

    torch.manual_seed(0)
    lm = LanguageModel(LanguageModelConfig(vocab_size=6, embedding_size=8,
                                           rnn={"cell": "lstm", "hidden_size": 12, "num_layers": 2})).eval()
    scorer = RNNLMScorer(lm, token_map=[-1, 1, 2, 3, 4, 5], bos=0)  # CTC blank 0 is unknown to the LM
    prefix = [3, 1, 4, 1, 5]
    state, incremental = scorer.initial_state(), []
    for tok in prefix:
        delta, state = scorer.score(state, tok)
        incremental.append(delta)
    with torch.no_grad():
        full = lm(torch.tensor([[0] + prefix[:-1]]))[0].log_softmax(-1)[0]
    expected = full[torch.arange(len(prefix)), torch.tensor(prefix)]
    assert incremental == pytest.approx(expected.tolist(), abs=1e-5)
    lp = torch.randn(2, 12, 6, generator=torch.Generator().manual_seed(1)).log_softmax(-1)
    assert len(ctc_beam_search(lp, beam_width=4, lm=scorer, lm_weight=0.3)) == 2


# ----------------------------------------------------------------------------- emission frames, exact scores


def test_greedy_reports_where_each_tokens_run_starts_and_ends():
    path = [0, 1, 1, 1, 0, 2, 2, 0, 2]
    lp = torch.full((1, len(path), 3), -9.0)
    for t, c in enumerate(path):
        lp[0, t, c] = 0.0
    (h,) = ctc_greedy(lp.log_softmax(-1))
    assert (h.ids, h.frames, h.end_frames) == ([1, 2, 2], [1, 5, 8], [3, 6, 8])
    (unmerged,) = ctc_greedy(lp.log_softmax(-1), merge_repeated=False)
    assert unmerged.frames == unmerged.end_frames == [1, 2, 3, 5, 6, 8]


def test_beam_hypotheses_carry_the_runs_of_their_best_alignment():
    torch.manual_seed(4)
    lp = torch.randn(2, 30, 5, dtype=torch.float64).log_softmax(-1)
    for h, b in ((hyps[0], b) for b, hyps in enumerate(ctc_beam_search(lp, beam_width=8))):
        (alignment,) = forced_align(lp[b : b + 1], [h.ids], [30], [len(h.ids)])
        assert h.frames == [s.start for s in alignment.segments]
        assert h.end_frames == [s.end - 1 for s in alignment.segments]


def test_acoustic_score_is_the_exact_ctc_log_probability_even_with_token_pruning():
    """With token_min_logp pruning the search's own sum misses alignments (measured 2.3e-4 off on
    this kind of case); the returned score is recomputed over every alignment."""
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        lp = torch.randn(1, 5, 3, dtype=torch.float64, generator=g).mul(3).log_softmax(-1)
        for h in ctc_beam_search(lp, beam_width=64, nbest=3, token_min_logp=-1.0)[0]:
            exact = -float(ctc_loss(lp, [h.ids], [5], [len(h.ids)], reduction="none")) if h.ids else float(
                lp[0, :, 0].sum())
            assert h.acoustic_score == pytest.approx(exact, abs=1e-9)


# ----------------------------------------------------------------------------- ensembles


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), members=st.integers(1, 3), bonus=st.booleans())
def test_ensemble_picks_the_pooled_hypothesis_of_highest_mean_log_probability(seed, members, bonus):
    """Against torch's CTC loss: every label sequence of length <= 3 over two symbols proposed
    by some member; the choice maximises the members' mean log p_m(y | x) plus its LM terms.
    Members differ in frame count (as runs with different frame stacking do)."""
    from rnnkit.decode import Hypothesis, ctc_ensemble

    g = torch.Generator().manual_seed(seed)
    lps = [torch.randn(4 + m, 3, generator=g).mul(2).log_softmax(-1) for m in range(members)]
    every = [list(y) for n in range(4) for y in itertools.product((1, 2), repeat=n)]
    terms = {tuple(y): (0.3 * len(y) if bonus else 0.0) for y in every}
    nbests = [[[Hypothesis(y, terms[tuple(y)] - 5.0, -5.0) for y in every[m::members]]] for m in range(members)]

    def log_p(lp, y):
        if not y:
            return float(lp[:, 0].sum())
        return -float(torch.nn.functional.ctc_loss(lp[:, None].double(), torch.tensor([y]), [len(lp)], [len(y)],
                                                   reduction="sum", zero_infinity=False))

    mean = {tuple(y): sum(log_p(lp, y) for lp in lps) / members for y in every}
    want = max(every, key=lambda y: mean[tuple(y)] + terms[tuple(y)])
    (got,) = ctc_ensemble(nbests, [[lp] for lp in lps], blank=0)
    assert got.ids == want
    assert got.acoustic_score == pytest.approx(mean[tuple(want)], abs=1e-4)
    assert got.score == pytest.approx(mean[tuple(want)] + terms[tuple(want)], abs=1e-4)


def test_ensemble_of_one_search_is_the_search():
    """One member's n-best, rescored alone, keeps the search's own best (its scores are exact)."""
    from rnnkit.decode import CTCBeamDecoder, BeamSearchOptions, ctc_ensemble

    lp = torch.randn(3, 30, 6, generator=torch.Generator().manual_seed(1)).mul(3).log_softmax(-1)
    nbest = CTCBeamDecoder(BeamSearchOptions(beam_width=8, nbest=8))(lp)
    best = ctc_ensemble([nbest], [list(lp)], blank=0)
    assert [h.ids for h in best] == [n[0].ids for n in nbest]
    assert [h.acoustic_score for h in best] == pytest.approx([n[0].acoustic_score for n in nbest], abs=1e-4)


def test_ensemble_inputs_are_checked():
    from rnnkit.decode import Hypothesis, ctc_ensemble

    lp = torch.randn(5, 3).log_softmax(-1)
    one = [[Hypothesis([1], 0.0, 0.0)]]
    with pytest.raises(ValueError, match="one list per member of nbests \\(2\\). Received: 1"):
        ctc_ensemble([one, one], [[lp]])
    with pytest.raises(ValueError, match="the same 1 utterances"):
        ctc_ensemble([one, one + one], [[lp], [lp, lp]])
    (empty,) = ctc_ensemble([[[]]], [[lp]])
    assert empty.ids == [] and empty.score == -math.inf
    hopeless = Hypothesis([1], -math.inf, -math.inf)  # its decoder's terms are -inf - -inf: never chosen
    assert ctc_ensemble([[[hopeless, Hypothesis([2], -9.0, -9.0)]]], [[lp]])[0].ids == [2]
