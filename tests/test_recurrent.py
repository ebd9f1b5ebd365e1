"""Recurrent layers: lengths, direction, stacking, carried state, paths, torch interop, dropout."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck
from conftest import assert_same, run_and_grad
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import rnnkit

CONFIGS = {
    "lstm": lambda F, H, **k: rnnkit.LSTM(F, H, **k),
    "lstm-ln-peephole": lambda F, H, **k: rnnkit.LSTM(F, H, layer_norm=True, peephole=True, **k),
    "lstm-ln-nobias": lambda F, H, **k: rnnkit.LSTM(F, H, layer_norm=True, bias=False, forget_bias=None, **k),
    "lstm-g-relu": lambda F, H, **k: rnnkit.LSTM(F, H, candidate_activation="relu", **k),
    "gru": lambda F, H, **k: rnnkit.GRU(F, H, **k),
    "rnn-relu": lambda F, H, **k: rnnkit.RNN(F, H, activation="relu", **k),
    "rnn-sigmoid": lambda F, H, **k: rnnkit.RNN(F, H, activation="sigmoid", **k),
    "leaky": lambda F, H, num_layers=1, bidirectional=False, **k: rnnkit.Recurrent(
        [rnnkit.LeakyCell(F if i == 0 else H * (2 if bidirectional else 1), H, alpha=0.4, learn_alpha=True)
         for i in range(num_layers)], bidirectional=bidirectional, **k),
    "skip-gru": lambda F, H, **k: rnnkit.GRU(F, H, skip_delay=2, **k),
}


def _paths(name: str) -> list[str]:
    paths = ["loop"]
    if not name.startswith("skip"):
        paths.append("fused")
    if name in ("lstm", "gru", "rnn-relu"):
        paths.append("native")
    if name.startswith(("lstm", "gru", "rnn", "leaky")):
        paths.append("compiled")
    return paths


# ----------------------------------------------------------------------------- path equivalence

@pytest.mark.parametrize("name", CONFIGS)
def test_paths_agree(name):
    """native == compiled == fused == autograd loop in float64: outputs, final states and every gradient."""
    m = CONFIGS[name](4, 5, num_layers=2, bidirectional=True).double()
    x = torch.randn(4, 7, 4, dtype=torch.double)
    lengths = torch.tensor([7, 3, 5, 1])
    results = {p: run_and_grad(m, x, lengths, impl=p) for p in _paths(name)}
    for r in results.values():
        assert_same(results["loop"], r, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", CONFIGS)
def test_paths_float32_error_against_float64(name):
    """Every path in float32 is within 1e-5 of the float64 truth (relative to each tensor's
    largest value). With layer norm the autograd loop itself needs 5e-5: the normalisation
    divides by the pre-activations' standard deviation, which amplifies rounding."""
    bound = 5e-5 if "ln" in name else 1e-5
    m = CONFIGS[name](4, 5, num_layers=2, bidirectional=True).double()
    x = torch.randn(4, 7, 4, dtype=torch.double)
    lengths = torch.tensor([7, 3, 5, 1])
    out, final, grads = run_and_grad(m, x, lengths, impl="loop")
    truth = [out, *[s for f in final for s in f], *grads.values()]
    for p in _paths(name):
        out, final, grads = run_and_grad(m.float(), x.float(), lengths, impl=p)
        got = [out, *[s for f in final for s in f], *grads.values()]
        for a, b in zip(got, truth):
            error = ((a.double() - b).abs().max() / b.abs().max()).item()
            assert error < bound, (p, error)
        m.double()


def test_auto_dispatch_table_on_cpu():
    assert rnnkit.LSTM(2, 3).layer_path(0, "cpu") == "native"
    assert rnnkit.GRU(2, 3).layer_path(0, "cpu") == "compiled"
    assert rnnkit.RNN(2, 3).layer_path(0, "cpu") == "compiled"
    assert rnnkit.RNN(2, 3).layer_path(0, "cuda") == "native"
    assert rnnkit.LSTM(2, 3, layer_norm=True).layer_path(0, "cpu") == "compiled"
    assert rnnkit.LSTM(2, 3, peephole=True).layer_path(0, "cuda") == "fused"
    assert rnnkit.LSTM(2, 3, skip_delay=2).layer_path(0, "cpu") == "loop"
    assert rnnkit.GRU(2, 3).layer_path(0, "cuda") == "native"
    m = rnnkit.LSTM(2, 3, recurrent_dropout=0.3)
    assert m.layer_path(0, "cpu") == "compiled"  # training: the mask needs our engine
    assert m.eval().layer_path(0, "cpu") == "native"  # no dropout in eval: torch's kernel


@pytest.mark.parametrize("make, kernel", [
    (lambda: rnnkit.LSTM(2, 3, layer_norm=True), "LSTMKernel"),
    (lambda: rnnkit.RNN(2, 3), "ElmanKernel"),
    (lambda: rnnkit.GRU(2, 3), "GRUKernel"),
    (lambda: rnnkit.Recurrent(rnnkit.LeakyCell(2, 3, alpha=0.5, learn_alpha=True)), "ElmanKernel"),
])
def test_compiled_loop_takes_small_batches_under_auto_and_every_batch_when_forced(monkeypatch, make, kernel):
    """The compiled time loop runs on one thread: "auto" gives it batches of at most the
    cell's compiled_batch sequences and larger ones to the Python loop; "compiled" forces it."""
    from rnnkit import kernels

    calls = []
    cls = getattr(kernels, kernel)
    original = cls.scan_forward
    monkeypatch.setattr(cls, "scan_forward", lambda self, *a: calls.append(1) or original(self, *a))
    m = make()
    (choice,) = m.paths(torch.device("cpu"), training=True)
    limit = choice.compiled_batch
    assert choice.path == "compiled" and limit == m.cells[0]._compiled_loop_batch > 0
    assert f"compiled for batches of at most {limit}" in choice.reason
    for B, impl, compiled in [(1, "auto", True), (limit, "auto", True),
                              (limit + 1, "auto", False), (limit + 1, "compiled", True),
                              (1, "fused", False)]:
        calls.clear()
        m.implementation = impl
        m(torch.randn(B, 3, 2))
        assert bool(calls) == compiled, (B, impl)
    m.implementation = "compiled"
    assert m.to(torch.bfloat16)(torch.randn(2, 3, 2, dtype=torch.bfloat16))[0].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="implementation='compiled' needs LSTM, GRU, Elman or leaky cells on the CPU"):
        rnnkit.GRU(2, 3, skip_delay=2, implementation="compiled")(torch.randn(1, 2, 2))


@pytest.mark.parametrize("threads", ["one thread", "parts"])
@pytest.mark.parametrize("name", ["lstm", "lstm-ln-peephole", "lstm-ln-nobias", "lstm-g-relu"])
def test_compiled_lstm_loop_with_torchs_products_agrees(name, threads, monkeypatch):
    """Beyond LSTMKernel.PRODUCT_MACS multiply-adds a step (here lowered to 2 sequences) the
    compiled LSTM loop leaves the recurrent products (forward W h_{t-1}, backward
    W^T dL/drec_t) to torch's matmul and runs the rest a step at a time, on one thread or
    with each step's rows cut into parts on numba's threads (rnnkit.threads; here from 2
    rows, so steps of 2-12 rows are cut unevenly and steps of one row are not): float64
    equal to the autograd loop (lengths, both directions, two layers, a carried state,
    recurrent dropout) and float32 within the bound of
    test_paths_float32_error_against_float64. Every mode is seen to run."""
    import numba

    from rnnkit import kernels, lstm_loop, threads as pass_threads

    modes, cut = [], []
    real = lstm_loop.forward
    monkeypatch.setattr(lstm_loop, "forward", lambda *a: modes.append(a[-1]) or real(*a))
    for f in ("forward_parallel", "backward_parallel"):
        monkeypatch.setattr(lstm_loop, f, lambda *a, f=getattr(lstm_loop, f): cut.append(a[-1]) or f(*a))
    monkeypatch.setattr(kernels.LSTMKernel, "PRODUCT_MACS", 2 * 4 * 5 * 5)
    if threads == "parts":
        if numba.config.NUMBA_NUM_THREADS < 2:
            pytest.skip("numba has one thread here")
        monkeypatch.setattr(pass_threads, "MIN_PART_UNITS", 5)
        monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    m = CONFIGS[name](4, 5, num_layers=2, bidirectional=True).double()
    B = 12
    x = torch.randn(B, 7, 4, dtype=torch.double)
    lengths = torch.tensor([7, 3, 6, 1, 5, 2, 6, 4, 1, 3, 5, 2])  # the last step has one row
    state = tuple((torch.randn(B, 5, dtype=torch.double), torch.randn(B, 5, dtype=torch.double)) for _ in range(4))
    truth = run_and_grad(m, x, lengths, state, impl="loop")
    assert_same(truth, run_and_grad(m, x, lengths, state, impl="compiled"), atol=1e-10, rtol=1e-10)
    assert modes and not any(modes), "with torch's products (every step, or those of one row when cut)"
    assert set(cut) == ({2} if threads == "parts" else set()), "steps of 2 rows and more in two parts"
    modes.clear()
    small = run_and_grad(m, x[:2], lengths[:2], tuple((h[:2], c[:2]) for h, c in state), impl="compiled")
    assert_same(run_and_grad(m, x[:2], lengths[:2], tuple((h[:2], c[:2]) for h, c in state), impl="loop"), small,
                atol=1e-10, rtol=1e-10)
    assert modes and all(modes), "a few sequences: the compiled loop's own products"
    bound = 5e-5 if "ln" in name else 1e-5
    out, final, grads = run_and_grad(m.float(), x.float(), lengths, tuple((h.float(), c.float()) for h, c in state),
                                     impl="compiled")
    got = [out, *[s for f in final for s in f], *grads.values()]
    want = [truth[0], *[s for f in truth[1] for s in f], *truth[2].values()]
    for a, b in zip(got, want):
        assert ((a.double() - b).abs().max() / b.abs().max()).item() < bound
    for c in m.cells:
        c.recurrent_dropout = 0.3
    m.double()
    results = []
    for impl in ("loop", "compiled"):
        torch.manual_seed(7)
        results.append(run_and_grad(m, x, lengths, impl=impl))
    assert_same(*results, atol=1e-10, rtol=1e-10)


# ----------------------------------------------------------------------------- lengths

@pytest.mark.parametrize("name", CONFIGS)
def test_padded_batch_equals_each_sequence_alone(name):
    m = CONFIGS[name](3, 4, num_layers=2, bidirectional=True).double()
    lengths = torch.tensor([2, 6, 1, 4])
    x = torch.randn(4, 6, 3, dtype=torch.double)
    x_padded = x.clone()
    for b, n in enumerate(lengths):
        x_padded[b, n:] = 1e3  # garbage in the padding must not leak anywhere
    out, final = m(x_padded, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_final = m(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], atol=1e-12, rtol=0)
        assert torch.all(out[b, n:] == 0), "outputs past the length are zero"
        for s, s_alone in zip(final, alone_final):
            for t, t_alone in zip(s, s_alone):
                torch.testing.assert_close(t[b], t_alone[0], atol=1e-12, rtol=0)


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    extra=st.integers(0, 2),
    impl=st.sampled_from(["fused", "loop", "native", "compiled"]),
    kind=st.sampled_from(["lstm", "gru", "lstm-ln-peephole"]),
    bidirectional=st.booleans(),
)
def test_property_padding_never_changes_results(lengths, extra, impl, kind, bidirectional):
    """Any lengths, any amount of padding past the longest, any path: each row as if alone."""
    if impl not in _paths(kind):
        impl = "fused"
    torch.manual_seed(1)
    m = CONFIGS[kind](2, 3, bidirectional=bidirectional, implementation=impl).double()
    T = max(lengths) + extra
    x = torch.randn(len(lengths), T, 2, dtype=torch.double)
    out, final = m(x, torch.tensor(lengths))
    assert out.shape == (len(lengths), T, m.output_size)
    for b, n in enumerate(lengths):
        alone, alone_final = m(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], atol=1e-12, rtol=0)
        assert torch.all(out[b, n:] == 0)
        torch.testing.assert_close(final[0][0][b], alone_final[0][0][0], atol=1e-12, rtol=0)


def test_lengths_accept_int32_and_device_of_x():
    m = rnnkit.GRU(2, 3)
    x = torch.randn(3, 4, 2)
    a, _ = m(x, torch.tensor([4, 2, 3]))
    b, _ = m(x, torch.tensor([4, 2, 3], dtype=torch.int32))
    torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- direction

@pytest.mark.parametrize("name", CONFIGS)
def test_bidirectional_backward_half_is_the_reversed_sequence(name):
    """The backward direction equals its cell run forward on each sequence reversed within its length."""
    m = CONFIGS[name](3, 4, bidirectional=True).double()
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(3, 5, 3, dtype=torch.double)
    out, final = m(x, lengths)
    backward_only = rnnkit.Recurrent(m.layers[0][1])
    for b, n in enumerate(lengths.tolist()):
        rev, rev_final = backward_only(x[b : b + 1, :n].flip(1))
        torch.testing.assert_close(out[b, :n, 4:], rev[0].flip(0), atol=1e-12, rtol=0)
        torch.testing.assert_close(final[1][0][b], rev_final[0][0][0], atol=1e-12, rtol=0)


def test_merge_sum_adds_the_directions():
    cat = rnnkit.LSTM(3, 4, bidirectional=True)
    summed = rnnkit.LSTM(3, 4, bidirectional=True, merge="sum")
    summed.load_state_dict(cat.state_dict())
    x = torch.randn(2, 5, 3)
    out_cat, _ = cat(x)
    out_sum, _ = summed(x)
    torch.testing.assert_close(out_sum, out_cat[..., :4] + out_cat[..., 4:])


def test_bidirectional_copies_a_single_cell_with_fresh_weights():
    m = rnnkit.Recurrent(rnnkit.GRUCell(3, 4), bidirectional=True)
    fw, bw = m.layers[0]
    assert not torch.equal(fw.weight_hh, bw.weight_hh)
    assert fw.weight_hh.data_ptr() != bw.weight_hh.data_ptr()


# ----------------------------------------------------------------------------- carried state

@pytest.mark.parametrize("name", CONFIGS)
def test_chunked_state_carry_equals_one_run(name):
    m = CONFIGS[name](3, 4, num_layers=2).double()
    x = torch.randn(2, 12, 3, dtype=torch.double)
    whole, whole_final = m(x)
    first, state = m(x[:, :5])
    state = rnnkit.detach(state)
    second, final = m(x[:, 5:], state=state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole, atol=1e-12, rtol=0)
    for a, b in zip(final, whole_final):
        for s, t in zip(a, b):
            torch.testing.assert_close(s, t, atol=1e-12, rtol=0)


def test_detach_cuts_the_graph_between_chunks():
    m = rnnkit.LSTM(2, 3)
    _, state = m(torch.randn(1, 4, 2))
    detached = rnnkit.detach(state)
    assert all(not s.requires_grad for f in detached for s in f)
    assert all(s.requires_grad for f in state for s in f)
    with pytest.raises(TypeError, match="detach expects tensors"):
        rnnkit.detach({"h": 1})


def test_learned_initial_state_is_used_and_trained():
    m = rnnkit.LSTM(2, 3, num_layers=2, learn_initial_state=True)
    with torch.no_grad():
        for p in m.initial_states:
            p.normal_()
    x = torch.randn(4, 5, 2)
    out, _ = m(x)
    zeros = tuple(tuple(torch.zeros_like(s) for s in f) for f in m.initial_state(4))
    assert not torch.allclose(out, m(x, state=zeros)[0])
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.initial_states)


# ----------------------------------------------------------------------------- torch interop

@pytest.mark.parametrize("cls,torch_cls,kw", [
    (rnnkit.LSTM, nn.LSTM, {}),
    (rnnkit.GRU, nn.GRU, {}),
    (rnnkit.RNN, nn.RNN, {"nonlinearity": "relu"}),
    (rnnkit.LSTM, nn.LSTM, {"bias": False}),
])
@pytest.mark.parametrize("impl", ["auto", "fused", "loop"])
def test_from_torch_equals_torch(cls, torch_cls, kw, impl):
    ref = torch_cls(3, 5, num_layers=2, bidirectional=True, batch_first=True, **kw)
    ours = cls.from_torch(ref)
    ours.implementation = impl
    x = torch.randn(4, 6, 3)
    lengths = torch.tensor([6, 2, 5, 3])
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_out, ref_state = ref(packed)
    ref_out, _ = nn.utils.rnn.pad_packed_sequence(ref_out, batch_first=True, total_length=6)
    out, state = ours(x, lengths)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    ref_h = ref_state[0] if isinstance(ref_state, tuple) else ref_state
    torch.testing.assert_close(torch.stack([s[0] for s in state]), ref_h, atol=1e-5, rtol=1e-5)
    if isinstance(ref_state, tuple):
        torch.testing.assert_close(torch.stack([s[1] for s in state]), ref_state[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN])
def test_to_torch_round_trip(cls):
    ours = cls(3, 4, num_layers=2, bidirectional=True)
    theirs = ours.to_torch()
    assert theirs.batch_first
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0], atol=1e-6, rtol=1e-6)
    back = cls.from_torch(theirs)
    torch.testing.assert_close(back(x)[0], ours(x)[0], atol=0, rtol=0)


def test_to_torch_refuses_what_torch_cannot_express():
    with pytest.raises(ValueError, match="not representable: layer 0"):
        rnnkit.LSTM(3, 4, layer_norm=True).to_torch()
    with pytest.raises(ValueError, match="merge='sum'"):
        rnnkit.GRU(3, 4, bidirectional=True, merge="sum").to_torch()
    with pytest.raises(ValueError, match="expects a torch.nn.LSTM"):
        rnnkit.LSTM.from_torch(nn.GRU(3, 4))
    with pytest.raises(ValueError, match="proj_size"):
        rnnkit.LSTM.from_torch(nn.LSTM(3, 4, proj_size=2))


# ----------------------------------------------------------------------------- custom cells


class MinimalGatedCell(rnnkit.Cell):
    """A user-written cell (the README's example): minimal gated unit, autograd only.

    f_t = sigmoid(U_f x_t + W_f h_{t-1} + b_f);  h_t = (1 - f_t) h_{t-1} + f_t tanh(U x_t + W (f_t h_{t-1}) + b)
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.state_size = (hidden_size,)
        self.gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x_t, state):
        (h,) = state
        f = torch.sigmoid(self.gate(torch.cat([x_t, h], 1)))
        n = torch.tanh(self.candidate(torch.cat([x_t, f * h], 1)))
        h = (1 - f) * h + f * n
        return h, (h,)


def test_custom_cell_gets_lengths_bidirectional_and_stacking_for_free():
    m = rnnkit.Recurrent([MinimalGatedCell(3, 4), MinimalGatedCell(8, 4)], bidirectional=True).double()
    assert m.layer_path(0, "cpu") == "loop"
    lengths = torch.tensor([5, 1, 3])
    x = torch.randn(3, 5, 3, dtype=torch.double)
    out, final = m(x, lengths)
    assert out.shape == (3, 5, 8)
    for b, n in enumerate(lengths.tolist()):
        alone, alone_final = m(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], alone[0], atol=1e-12, rtol=0)
        assert torch.all(out[b, n:] == 0)
        for s, s_alone in zip(final, alone_final):
            torch.testing.assert_close(s[0][b], s_alone[0][0], atol=1e-12, rtol=0)
    # the backward direction of layer 0 is the reversed sequence
    rev, _ = rnnkit.Recurrent(m.layers[0][1])(x[:1, :5].flip(1))
    out0, _ = rnnkit.Recurrent([tuple(m.layers[0])], bidirectional=True)(x[:1])
    torch.testing.assert_close(out0[0, :, 4:], rev[0].flip(0), atol=1e-12, rtol=0)


def test_custom_cell_with_wrong_output_gets_a_clear_error():
    class Broken(MinimalGatedCell):
        def forward(self, x_t, state):
            h, _ = super().forward(x_t, state)
            return h, h  # state must be a tuple

    with pytest.raises(ValueError, match="must return a state tuple of 1 tensors"):
        rnnkit.Recurrent(Broken(2, 3))(torch.randn(1, 2, 2))


# ----------------------------------------------------------------------------- dropout


def test_input_dropout_is_variational():
    """The same input features are dropped at every step of a sequence."""
    m = rnnkit.Recurrent(MinimalGatedCell(50, 2), input_dropout=0.5)
    seen = []

    def record(module, args):
        seen.append(args[0].detach().clone())

    m.layers[0][0].register_forward_pre_hook(record)
    m(torch.ones(3, 6, 50))
    steps = torch.stack(seen, 1)  # (B, T, F)
    dropped = steps == 0
    assert dropped.any() and not dropped.all()
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped)), "one mask per sequence"
    assert torch.allclose(steps[~dropped], torch.tensor(2.0)), "kept inputs scaled by 1/(1-p)"
    m.eval()
    seen.clear()
    m(torch.ones(3, 6, 50))
    assert torch.all(torch.stack(seen) == 1)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn-relu", "leaky"])
def test_recurrent_dropout_same_mask_on_every_path(name):
    """Fused BPTT and the autograd loop draw the same mask and agree; eval mode uses none."""
    m = CONFIGS[name](3, 4, num_layers=2, bidirectional=True).double()
    for c in m.cells:
        c.recurrent_dropout = 0.3
    x = torch.randn(3, 6, 3, dtype=torch.double)
    lengths = torch.tensor([6, 4, 2])
    results = []
    for impl in ("loop", *[p for p in _paths(name) if p in ("fused", "compiled")]):
        torch.manual_seed(7)
        results.append(run_and_grad(m, x, lengths, impl=impl))
    for r in results[1:]:
        assert_same(results[0], r, atol=1e-10, rtol=1e-10)
    torch.manual_seed(8)
    other = run_and_grad(m, x, lengths, impl="fused")
    assert not torch.allclose(other[0], results[0][0]), "a different seed draws a different mask"
    m.eval()
    torch.testing.assert_close(m(x, lengths)[0], m(x, lengths)[0])


def test_dropout_between_layers_only_in_training():
    m = rnnkit.GRU(3, 4, num_layers=3, dropout=0.5)
    x = torch.randn(2, 5, 3)
    assert not torch.allclose(m(x)[0], m(x)[0])
    m.eval()
    torch.testing.assert_close(m(x)[0], m(x)[0])


# ----------------------------------------------------------------------------- memory


def test_fused_scan_does_not_keep_its_tape_alive():
    """The output must not reference its own backward node through the tape (a cycle that
    leaves every buffer to the garbage collector and makes each call touch fresh memory)."""
    import gc
    import weakref

    from rnnkit import unroll

    seen = []
    original = unroll._FusedBPTT.forward

    def spy(ctx, kernel, *args):
        seen.append(weakref.ref(kernel))
        return original(ctx, kernel, *args)

    gc.disable()
    try:
        unroll._FusedBPTT.forward = staticmethod(spy)
        out, final = rnnkit.GRU(3, 4)(torch.randn(2, 5, 3))
        out.sum().backward()
        del out, final
        assert seen and all(r() is None for r in seen)
    finally:
        unroll._FusedBPTT.forward = staticmethod(original)
        gc.enable()


def test_an_lstm_input_unit_other_than_tanh_runs_fused_and_is_not_exported_to_torch():
    m = rnnkit.LSTM(2, 3, candidate_activation="sigmoid")
    assert m.layer_path(0, "cpu") == "compiled" and m.layer_path(0, "cuda") == "fused"
    with pytest.raises(ValueError):
        m.to_torch()
    with pytest.raises(ValueError, match="candidate_activation must be one of"):
        rnnkit.LSTMCell(2, 3, candidate_activation="softsign")


# ----------------------------------------------------------------------------- no external input


@pytest.mark.parametrize("impl", ["fused", "loop"])
def test_a_system_with_no_input_iterates_its_own_state(impl):
    """input_size=0: h_t = tanh(W h_{t-1} + b), run for a number of steps from a given state."""
    torch.manual_seed(0)
    m = rnnkit.RNN(0, 4, implementation=impl).double()
    h0 = torch.randn(3, 4, dtype=torch.double)
    out, ((h_T,),) = m(None, state=[(h0,)], steps=6)
    cell = m.layers[0][0]
    h, by_hand = h0, []
    for _ in range(6):
        h = torch.tanh(h @ cell.weight_hh.T + cell.bias_hh + cell.bias_ih)
        by_hand.append(h)
    torch.testing.assert_close(out, torch.stack(by_hand, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(h_T, by_hand[-1], rtol=0, atol=1e-12)
    assert m.layer_path(0, "cpu") in ("fused", "loop")  # torch's op needs an input


def test_no_input_lstm_paths_agree_and_gradcheck():
    m = rnnkit.LSTM(0, 3, num_layers=2).double()
    state = [(torch.randn(2, 3, dtype=torch.double), torch.randn(2, 3, dtype=torch.double)) for _ in range(2)]
    results = {}
    for impl in ("fused", "loop"):
        m.implementation = impl
        out, _ = m(None, state=state, steps=5)
        results[impl] = out
    torch.testing.assert_close(results["fused"], results["loop"], rtol=0, atol=1e-12)
    m.implementation = "fused"
    h0 = state[0][0].clone().requires_grad_()
    assert gradcheck(lambda h: m(None, state=[(h, state[0][1]), state[1]], steps=4)[0], (h0,))
    with pytest.raises(ValueError, match="x=None needs steps"):
        m(None, state=state)
    with pytest.raises(ValueError, match="x=None needs a stack with input_size=0"):
        rnnkit.LSTM(2, 3)(None, steps=3)
