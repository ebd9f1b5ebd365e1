"""Autoregressive generation: sampling distributions, filters, beam search, stopping, incrementality."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import rnnkit
from rnnkit.decode import (StopAtLength, StopOnHalt, beam_search, filter_log_probs,
                           generate)


class Markov(nn.Module):
    """Next-token log-probabilities depend on the last token only: table[last]. The state
    counts the steps taken."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table.log_softmax(-1)

    def step(self, tokens, state):
        return self.table[tokens], state + 1


class TinyLM(nn.Module):
    """Embedding, rnnkit LSTM, softmax: a recurrent language model with a step()."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = rnnkit.LSTM(hidden, hidden, num_layers=2)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens, state=None):
        h, state = self.rnn(self.embed(tokens), state=state)
        return self.out(h).log_softmax(-1), state

    def step(self, tokens, state):
        log_probs, state = self.forward(tokens[:, None], state)
        return log_probs[:, 0], state


def _fixed(logits: list[float], batch: int):
    table = torch.tensor([logits] * len(logits))
    return Markov(table), torch.zeros(batch, 1), torch.zeros(batch, dtype=torch.long)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sampling_frequencies_match_the_softmax(temperature):
    logits = [0.5, -1.0, 2.0, 0.0, -0.5]
    model, state, start = _fixed(logits, 20000)
    g = torch.Generator().manual_seed(0)
    hyps = generate(model.step, state, start, max_length=1, temperature=temperature, generator=g)
    counts = torch.bincount(torch.tensor([h.ids[0] for h in hyps]), minlength=5).double() / len(hyps)
    expected = (torch.tensor(logits).double().log_softmax(-1) / temperature).softmax(-1)
    assert (counts - expected).abs().max() < 0.015


def test_top_k_and_top_p_never_emit_excluded_tokens():
    logits = [3.0, 2.0, 1.0, 0.0, -1.0, -2.0]
    model, state, start = _fixed(logits, 5000)
    g = torch.Generator().manual_seed(1)
    top_k = {h.ids[0] for h in generate(model.step, state, start, 1, top_k=2, generator=g)}
    assert top_k == {0, 1}
    p = torch.tensor(logits).softmax(-1)  # 0.636, 0.234, 0.086, ...
    nucleus = {h.ids[0] for h in generate(model.step, state, start, 1, top_p=0.8, generator=g)}
    assert nucleus == {0, 1}, "0.636 < 0.8, so the second token is needed; 0.870 >= 0.8, the third is not"
    only_best = {h.ids[0] for h in generate(model.step, state, start, 1, top_p=0.5, generator=g)}
    assert only_best == {0}
    lp = filter_log_probs(torch.tensor([logits]), top_p=0.8)[0]
    torch.testing.assert_close(lp[:2].exp(), p[:2] / p[:2].sum())


def test_sampling_is_deterministic_under_a_seed():
    model = TinyLM(7, 8)
    state = model.rnn.initial_state(4)
    start = torch.zeros(4, dtype=torch.long)
    runs = [generate(model.step, state, start, 12, top_k=5, generator=torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert [h.ids for h in runs[0]] == [h.ids for h in runs[1]]
    other = generate(model.step, state, start, 12, top_k=5, generator=torch.Generator().manual_seed(4))
    assert [h.ids for h in other] != [h.ids for h in runs[0]]


@torch.no_grad()
def test_incremental_generation_equals_rerunning_the_prefix():
    torch.manual_seed(0)
    model = TinyLM(9, 16)
    start = torch.tensor([0, 3])
    hyps = generate(model.step, model.rnn.initial_state(2), start, 15, greedy=True)
    for b, h in enumerate(hyps):
        inputs = torch.tensor([[int(start[b])] + h.ids[:-1]])
        full, _ = model(inputs)  # the whole prefix at once, from the start
        chosen = full[0].gather(1, torch.tensor(h.ids)[:, None]).squeeze(1)
        assert torch.equal(full[0].argmax(-1), torch.tensor(h.ids))
        assert h.score == pytest.approx(float(chosen.sum()), abs=1e-5)


def test_stop_on_token_length_and_halt():
    table = torch.full((4, 4), -3.0)
    table[0, 1] = table[1, 2] = table[2, 3] = 3.0  # 0 -> 1 -> 2 -> 3 (3 = end)
    model = Markov(table)
    (h,) = generate(model.step, torch.zeros(1, 1), torch.tensor([0]), 10, greedy=True, stop=3)
    assert h.ids == [1, 2], "the end token ends the output and is not part of it"
    assert h.score == pytest.approx(float(model.table[0, 1] + model.table[1, 2] + model.table[2, 3]))
    hyps = generate(model.step, torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), 10, greedy=True,
                    stop=StopAtLength(torch.tensor([1, 3, 2])))
    assert [h.ids for h in hyps] == [[1], [1, 2, 3], [1, 2]]
    halt = StopOnHalt(lambda state: (state[:, 0] >= 2).float())  # halts once two steps are done
    (h,) = generate(model.step, torch.zeros(1, 1), torch.tensor([0]), 10, greedy=True, stop=halt)
    assert h.ids == [1, 2]
    (h,) = generate(model.step, torch.zeros(1, 1), torch.tensor([0]), 10, greedy=True)
    assert len(h.ids) == 10, "without a stop policy, max_length ends it"


def _all_sequences(model: Markov, start: int, eos: int, max_length: int):
    """Every output up to max_length tokens: (ids without eos, log-probability)."""
    out = []
    for n in range(1, max_length + 1):
        for seq in itertools.product(range(model.table.shape[0]), repeat=n):
            if eos in seq[:-1]:
                continue
            if seq[-1] != eos and n < max_length:
                continue
            prev, lp = start, 0.0
            for tok in seq:
                lp += float(model.table[prev, tok])
                prev = tok
            out.append((list(seq[:-1]) if seq[-1] == eos else list(seq), lp))
    return out


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_search_finds_the_best_sequence(alpha):
    torch.manual_seed(5)
    model = Markov(torch.randn(4, 4) * 1.5)
    eos, L = 3, 5
    candidates = _all_sequences(model, 0, eos, L)
    rank = lambda ids, lp: lp / max(len(ids) + 1 if len(ids) < L else len(ids), 1) ** alpha  # noqa: E731
    best_ids, best_lp = max(candidates, key=lambda c: rank(*c))
    hyps = beam_search(model.step, torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), beam_width=64, max_length=L,
                       stop=eos, length_normalization=alpha, nbest=3)
    for row in hyps:
        assert row[0].ids == best_ids
        assert row[0].acoustic_score == pytest.approx(best_lp)
        assert [h.score for h in row] == sorted([h.score for h in row], reverse=True)


def test_beam_search_with_predicted_lengths_finds_the_best_sequence_of_each_length():
    """StopAtLength in beam search: each row ends after its own tau tokens, and a beam wide
    enough to keep every prefix returns the best sequence of exactly that length (brute force)."""
    torch.manual_seed(3)
    model = Markov(torch.randn(4, 4) * 1.5)
    taus = [2, 4, 1]
    hyps = beam_search(model.step, torch.zeros(3, 1), torch.zeros(3, dtype=torch.long), beam_width=64, max_length=6,
                       stop=StopAtLength(torch.tensor(taus)), nbest=2)
    for tau, row in zip(taus, hyps):
        def logp(seq):
            return sum(float(model.table[a, b]) for a, b in zip((0, *seq), seq))
        best = max(itertools.product(range(4), repeat=tau), key=logp)
        assert row[0].ids == list(best)
        assert row[0].acoustic_score == pytest.approx(logp(best))
        assert all(len(h.ids) == tau for h in row)


def test_beam_search_beats_greedy_when_greedy_is_short_sighted():
    # greedy takes 1 (p=0.6) then is stuck with bad options; 2 (p=0.4) leads to a sure end
    table = torch.full((5, 5), -20.0)
    table[0, 1], table[0, 2] = math.log(0.6), math.log(0.4)
    table[1, 3] = table[1, 4] = math.log(0.5)
    table[2, 4] = 0.0
    table[3, 4] = table[4, 4] = 0.0
    model = Markov(table.exp().log())
    greedy = generate(model.step, torch.zeros(1, 1), torch.tensor([0]), 5, greedy=True, stop=4)[0]
    beam = beam_search(model.step, torch.zeros(1, 1), torch.tensor([0]), beam_width=3, max_length=5, stop=4)[0][0]
    assert greedy.ids[0] == 1 and beam.ids == [2]
    assert beam.acoustic_score > greedy.score


def test_beam_search_length_penalty_and_normalisation_change_the_choice():
    table = torch.full((3, 3), -8.0)
    table[0, 2] = math.log(0.5)  # end now: log 0.5
    table[0, 1] = math.log(0.5)
    table[1, 1] = math.log(0.9)
    table[1, 2] = math.log(0.1)
    model = Markov(table)
    run = lambda **kw: beam_search(model.step, torch.zeros(1, 1), torch.tensor([0]), 4, 6, stop=2, **kw)[0][0].ids  # noqa: E731
    assert run() == []
    assert len(run(length_penalty=1.0)) > 0


@pytest.mark.parametrize("call,message", [
    (lambda m, s, x: beam_search(m.step, s, x, beam_width=0, max_length=3), "beam_width must be an integer >= 1"),
    (lambda m, s, x: beam_search(m.step, s, x, beam_width=2, max_length=3, nbest=3), r"nbest must be an integer in \[1, beam_width=2\]"),
    (lambda m, s, x: generate(m.step, s, x, 3, temperature=0.0), "temperature must be a finite number > 0"),
    (lambda m, s, x: generate(m.step, s, x, 3, top_p=1.5), r"top_p must be in \(0, 1\]"),
    (lambda m, s, x: generate(m.step, s, x, 3, top_k=0), "top_k must be an integer >= 1"),
    (lambda m, s, x: generate(m.step, s, x, 0), "max_length must be an integer >= 1"),
    (lambda m, s, x: generate(m.step, s, x, 3, stop="eos"), "stop must be a StopPolicy"),
    (lambda m, s, x: StopAtLength(torch.tensor([0, 2])), "lengths must be a 1-D tensor of lengths >= 1"),
])
def test_bad_input(call, message):
    model, state, start = _fixed([0.0, 1.0, 2.0], 2)
    with pytest.raises(ValueError, match=message):
        call(model, state, start)


def test_one_step_in_inference_takes_the_compiled_step_at_small_batches():
    """rnnkit.dispatch.single_step_path: a generation step on the CPU runs compiled
    (rnnkit.inference_step) at batch <= 128 for cells equal to torch's ops, on the loop at
    batch <= 16 when a gradient is recorded or for other cells; the tokens and their
    log-probabilities are those of the path it replaces."""
    from rnnkit import LSTMCell
    from rnnkit.dispatch import PathChoice, single_step_path
    from rnnkit.models import LanguageModel, LanguageModelConfig

    native, lstm, ln = PathChoice("native", "torch's LSTM op"), [LSTMCell(3, 4)], [LSTMCell(3, 4, layer_norm=True)]
    assert single_step_path(native, lstm, "cpu", 1).path == "compiled-step"
    assert single_step_path(native, lstm, "cpu", 1, compilable=False).path == "loop"
    assert single_step_path(PathChoice("fused", "fused"), ln, "cpu", 1).path == "loop"
    assert single_step_path(native, lstm, "cpu", 128).path == "compiled-step"
    assert single_step_path(native, lstm, "cpu", 129) is native
    assert single_step_path(native, lstm, "cpu", 17, compilable=False) is native
    assert single_step_path(PathChoice("fused", "fused"), ln, "cpu", 17).path == "fused"
    assert single_step_path(native, lstm, "cuda", 1) is native
    assert single_step_path(native, lstm, "cpu", 1, implementation="native") is native
    for cell, other in (("lstm", "native"), ("gru", "fused"), ("rnn", "fused")):
        torch.manual_seed(0)
        model = LanguageModel(LanguageModelConfig(vocab_size=12, embedding_size=8,
                                                  rnn={"cell": cell, "hidden_size": 16, "num_layers": 2})).eval()
        prompt = torch.randint(0, 12, (3, 5))
        auto = model.generate(prompt, 30, greedy=True)
        model.rnn.implementation = other
        forced = model.generate(prompt, 30, greedy=True)
        assert [h.ids for h in auto] == [h.ids for h in forced]
        assert [h.score for h in auto] == pytest.approx([h.score for h in forced], abs=1e-4)


@pytest.mark.parametrize("cell, kwargs", [("lstm", {}), ("gru", {}), ("rnn", {}), ("rnn", {"activation": "relu"}),
                                          ("lstm", {"bias": False, "forget_bias": None}), ("gru", {"bidirectional": True})])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_the_compiled_step_equals_torchs_op(cell, kwargs, dtype, tol):
    """rnnkit.inference_step against torch's own op on the same parameters: one step, batches
    1, 16 and 128, a carried state."""
    import rnnkit

    torch.manual_seed(0)
    layer = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn": rnnkit.RNN}[cell](5, 7, num_layers=2, **kwargs)
    layer = layer.to(dtype).eval()
    for B in (1, 16, 128):
        x = torch.randn(B, 1, 5, dtype=dtype)
        _, state = layer(torch.randn(B, 3, 5, dtype=dtype))
        with torch.no_grad():
            assert layer.paths("cpu")[0].path != "compiled-step"
            compiled = layer(x, state=state)
            layer.implementation = "native"
            reference = layer(x, state=state)
            layer.implementation = "auto"
        torch.testing.assert_close(compiled[0], reference[0], atol=tol, rtol=0)
        for a, b in zip(compiled[1], reference[1]):
            for s, t in zip(a, b):
                torch.testing.assert_close(s, t, atol=tol, rtol=0)


def test_the_compiled_step_follows_parameter_updates():
    """The joined weight [W_ih W_hh]^T the compiled step caches is remade after an in-place
    update (an optimizer step), a load_state_dict and a replaced .data: every step equals
    torch's op on the parameters of the moment."""
    import rnnkit

    torch.manual_seed(0)
    layer = rnnkit.LSTM(5, 7, num_layers=2).eval()
    x = torch.randn(3, 1, 5)

    def check():
        with torch.no_grad():
            compiled = layer(x)[0]
            layer.implementation = "native"
            reference = layer(x)[0]
            layer.implementation = "auto"
        torch.testing.assert_close(compiled, reference, atol=1e-5, rtol=0)

    check()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.5)
    check()
    layer.load_state_dict({k: torch.randn_like(v) for k, v in layer.state_dict().items()})
    check()
    for p in layer.parameters():
        p.data = torch.randn_like(p)
    check()


def test_generation_steps_run_compiled_and_training_does_not(monkeypatch):
    import rnnkit.recurrent as recurrent
    from rnnkit.models import LanguageModel, LanguageModelConfig

    calls = []
    real = recurrent.compiled_step
    monkeypatch.setattr(recurrent, "compiled_step", lambda *a: calls.append(1) or real(*a))
    model = LanguageModel(LanguageModelConfig(vocab_size=12, embedding_size=8, rnn={"cell": "lstm", "hidden_size": 16}))
    model.train()(torch.randint(0, 12, (2, 1)))  # training, one step: torch's op
    model.eval()(torch.randint(0, 12, (2, 1)))  # inference with gradients recorded: the loop
    assert not calls
    halt = StopOnHalt(lambda state: torch.zeros(1))  # a policy that reads the state: step by step
    model.eval().generate(torch.randint(0, 12, (1, 4)), 5, stop=halt)  # the prompt on torch's op, then 5 steps
    assert len(calls) == 5


def _lm(cell: str, dtype: torch.dtype = torch.float64, seed: int = 0, **config):
    from rnnkit.models import LanguageModel, LanguageModelConfig

    torch.manual_seed(seed)
    rnn = {"cell": cell, "hidden_size": 16, "num_layers": 2, **config.pop("rnn", {})}
    return LanguageModel(LanguageModelConfig(vocab_size=23, embedding_size=8, rnn=rnn, **config)).to(dtype).eval()


def _both_paths(model, prompt, max_length, **options):
    """LanguageModel.generate (the whole loop compiled) and rnnkit.decode.generate over its step,
    each with a fresh generator seeded alike; also what on_token saw and the generators after."""
    from rnnkit.generation_loop import GenerationLoop

    results = []
    for path in ("compiled", "steps"):
        seen, g = [], torch.Generator().manual_seed(5)
        on_token = lambda t, k: seen.append((t.tolist(), k.tolist()))  # noqa: E731
        with torch.no_grad():
            state = model(prompt[:, :-1])[1] if prompt.shape[1] > 1 else model.initial_state(prompt.shape[0])
            if path == "compiled":
                assert model.generation_path(prompt.shape[0], options.get("stop")).path == "compiled-generation"
                hyps = GenerationLoop.of(model).generate(state, prompt[:, -1], max_length, generator=g,
                                                         on_token=on_token, **options)
            else:
                hyps = generate(model.step, state, prompt[:, -1], max_length, generator=g, on_token=on_token, **options)
        results.append((hyps, seen, torch.rand(3, generator=g)))
    return results


@pytest.mark.parametrize("cell, rnn", [("lstm", {}), ("gru", {}), ("rnn", {}), ("rnn", {"activation": "relu"}),
                                       ("lstm", {"bias": False, "forget_bias": None}), ("gru", {"bias": False}),
                                       ("lstm", {"num_layers": 3})])
@pytest.mark.parametrize("options", [{"greedy": True}, {"temperature": 0.7}, {"top_k": 4},
                                     {"top_p": 0.6, "temperature": 1.3}, {"stop": 2}])
def test_the_compiled_generation_loop_equals_generation_step_by_step(cell, rnn, options):
    """rnnkit.generation_loop against rnnkit.decode.generate over LanguageModel.step (float64):
    the same ids, scores to 1e-10, the same on_token calls, the generator left alike."""
    model = _lm(cell, rnn=rnn)
    prompt = torch.randint(0, 23, (3, 4), generator=torch.Generator().manual_seed(1))
    (mine, mine_seen, mine_after), (ref, ref_seen, ref_after) = _both_paths(model, prompt, 45, **options)
    assert [h.ids for h in mine] == [h.ids for h in ref]
    assert [h.score for h in mine] == pytest.approx([h.score for h in ref], abs=1e-10, rel=0)
    assert mine_seen == ref_seen
    assert torch.equal(mine_after, ref_after), "both draw the uniforms in the same blocks"


def test_the_compiled_generation_loop_with_tied_weights_lengths_and_float32():
    """A tied-weight model with its projection, StopAtLength per row across a uniform block
    (lengths 1, 33, 70), a prompt of one token; float32 against its float64 truth."""
    model = _lm("lstm", tie_weights=True)
    assert model.projection is not None
    prompt = torch.tensor([[3], [4], [5]])
    stop = StopAtLength(torch.tensor([1, 33, 70]))
    (mine, *_), (ref, *_) = _both_paths(model, prompt, 80, stop=stop, temperature=0.9)
    assert [len(h.ids) for h in mine] == [1, 33, 70]
    assert [h.ids for h in mine] == [h.ids for h in ref]
    assert [h.score for h in mine] == pytest.approx([h.score for h in ref], abs=1e-10, rel=0)
    single = model.float()
    (low, *_), _ = _both_paths(single, prompt, 80, stop=stop, greedy=True)
    truth = _both_paths(model.double(), prompt, 80, stop=stop, greedy=True)[0][0]
    assert [h.ids for h in low] == [h.ids for h in truth]
    assert [h.score for h in low] == pytest.approx([h.score for h in truth], abs=1e-4, rel=1e-5)


@settings(max_examples=20, deadline=None)
@given(cell=st.sampled_from(["lstm", "gru", "rnn"]), layers=st.integers(1, 3), hidden=st.integers(1, 20),
       batch=st.integers(1, 8), length=st.integers(1, 40), top_k=st.one_of(st.none(), st.integers(1, 30)),
       temperature=st.floats(0.2, 3.0), seed=st.integers(0, 2**16))
def test_the_compiled_generation_loop_equals_step_by_step_on_random_models(cell, layers, hidden, batch, length,
                                                                              top_k, temperature, seed):
    model = _lm(cell, seed=seed, rnn={"hidden_size": hidden, "num_layers": layers})
    prompt = torch.randint(0, 23, (batch, 2), generator=torch.Generator().manual_seed(seed))
    (mine, mine_seen, _), (ref, ref_seen, _) = _both_paths(model, prompt, length, top_k=top_k,
                                                            temperature=temperature, stop=seed % 23)
    assert [h.ids for h in mine] == [h.ids for h in ref]
    assert [h.score for h in mine] == pytest.approx([h.score for h in ref], abs=1e-10, rel=0)
    assert mine_seen == ref_seen


def test_generation_takes_the_compiled_loop_only_where_it_equals_the_steps():
    """LanguageModel.generation_path: the whole loop compiled for plain stacks in inference at
    small batches; step by step (with the reason) for everything it does not cover."""
    from rnnkit.dispatch import GENERATION_LOOP_BATCH
    from rnnkit.models import LanguageModel

    model = _lm("lstm", torch.float32)
    limit = GENERATION_LOOP_BATCH["cpu"]
    with torch.no_grad():
        assert model.generation_path(1).path == "compiled-generation"
        assert model.generation_path(limit, StopAtLength(torch.tensor([2]))).path == "compiled-generation"
        assert f"batch {limit + 1} > {limit}" in model.generation_path(limit + 1).reason
        assert "stop policy" in model.generation_path(1, StopOnHalt(lambda s: torch.zeros(1))).reason
        assert "training mode" in model.train().generation_path(1).reason
        model.eval()
        model.rnn.implementation = "native"
        assert "implementation='native'" in model.generation_path(1).reason
        model.rnn.implementation = "auto"
        assert "no op" in _lm("lstm", rnn={"layer_norm": True}).generation_path(1).reason
        assert "bidirectional" in _lm("lstm", rnn={"bidirectional": True}).generation_path(1).reason
        assert "float16" in _lm("lstm", torch.float16).generation_path(1).reason

        class Shifted(LanguageModel):
            def step(self, tokens, state):
                log_probs, state = super().step(tokens, state)
                return log_probs.roll(1, -1), state

        shifted = Shifted(model.config).eval()
        assert "not a LanguageModel's own step" in shifted.generation_path(1).reason
        assert shifted.generate(torch.tensor([[1]]), 3, greedy=True)[0].ids  # runs, step by step
    assert "gradient" in model.generation_path(1).reason


def test_compiled_generation_errors():
    """NaN parameters give the step-by-step path's error; prompt ids outside the vocabulary and
    an end token the model cannot emit are refused up front."""
    model = _lm("gru", torch.float32)
    with pytest.raises(ValueError, match=r"prompt must hold token ids in \[0, 23\)"):
        model.generate(torch.tensor([[3, 23]]), 5)
    with pytest.raises(ValueError, match="prompt must hold token ids"):
        model.generate(torch.tensor([[-1]]), 5)
    with pytest.raises(ValueError, match="prompt must hold integer token ids. Received: dtype torch.float32"):
        model.generate(torch.tensor([[1.0]]), 5)
    from rnnkit.generation_loop import GenerationLoop

    with pytest.raises(ValueError, match=r"start must be \(batch,\) token ids in \[0, 23\)"):
        GenerationLoop.of(model).generate(model.initial_state(1), torch.tensor([23]), 5)
    with pytest.raises(ValueError, match="the end token 30 can never be emitted"):
        model.generate(torch.tensor([[1]]), 5, stop=30)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        model.generate(torch.tensor([[1]]), 5, top_k=0)
    with torch.no_grad():
        model.decoder.bias[4] = torch.nan
    with pytest.raises(ValueError, match="NaN log-probabilities at step 0"):
        model.generate(torch.tensor([[1]]), 5)
