"""CTC: our lattice == brute force == NumPy reference == torch, gradients, alignment, edge cases."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

from rnnkit import ctc
from rnnkit.ctc import ctc_feasible, ctc_loss, ctc_posteriors, forced_align, viterbi_loss
from rnnkit.reference import ctc as ref


@st.composite
def tiny_cases(draw, max_T=6, max_C=3):
    """A small batch small enough to enumerate every path (C^T <= 729)."""
    C = draw(st.integers(2, max_C))
    blank = draw(st.integers(0, C - 1))
    symbols = [c for c in range(C) if c != blank]
    B = draw(st.integers(1, 3))
    T = draw(st.integers(1, max_T))
    rows = []
    for _ in range(B):
        T_b = draw(st.integers(1, T))
        S_b = draw(st.integers(0, min(T_b, 4)))
        rows.append((T_b, draw(st.lists(st.sampled_from(symbols), min_size=S_b, max_size=S_b))))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    lp = (torch.randn(B, T, C, generator=g, dtype=torch.float64) * 1.5).log_softmax(-1)
    return lp, rows, blank


def _pad(rows):
    S = max([len(t) for _, t in rows] + [1])
    targets = torch.zeros(len(rows), S, dtype=torch.long)
    for b, (_, t) in enumerate(rows):
        targets[b, : len(t)] = torch.tensor(t, dtype=torch.long)
    return targets, torch.tensor([T for T, _ in rows]), torch.tensor([len(t) for _, t in rows])


@settings(max_examples=60, deadline=None)
@given(tiny_cases())
def test_loss_and_gradient_equal_brute_force_reference_and_torch(case):
    lp, rows, blank = case
    targets, in_len, tgt_len = _pad(rows)
    x = lp.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # infeasible rows are part of the draw
        ours = ctc_loss(x, targets, in_len, tgt_len, blank=blank, reduction="none")
    ours.sum().backward()
    theirs = F.ctc_loss(lp.transpose(0, 1), targets, in_len, tgt_len, blank=blank, reduction="none")
    for b, (T_b, target) in enumerate(rows):
        lp_b = lp[b, :T_b].numpy()
        L_bf, g_bf, _, _ = ref.brute_force(lp_b, target, blank)
        L_log, g_log = ref.log_loss_and_gradient(lp_b, target, blank)
        if np.isinf(L_bf):
            assert np.isinf(ours[b].item()) and np.isinf(L_log)
            assert torch.all(x.grad[b] == 0)
            continue
        L_prob, g_prob = ref.loss_and_gradient(lp_b, target, blank)
        for L in (L_prob, L_log, theirs[b].item()):
            assert abs(ours[b].item() - L) < 1e-10
        assert abs(L_bf - L_log) < 1e-10  # the oracle's oracle
        for g in (g_bf, g_prob, g_log):
            np.testing.assert_allclose(x.grad[b, :T_b].numpy(), g, atol=1e-10)
        assert torch.all(x.grad[b, T_b:] == 0)


@pytest.mark.parametrize("seed", range(4))
def test_larger_random_batches_equal_torch(seed):
    """float64: loss and gradient through log_softmax (our exact -gamma gives torch's
    softmax - gamma) equal torch's to 1e-10. float32: the loss equals torch's to 1e-5 and
    the gradient is within 1e-6 of the float64 truth (we compute in float64 inside; torch's
    float32 gradient itself is off by ~5e-5 on these cases)."""
    g = torch.Generator().manual_seed(seed)
    B, T, C = 8, 60, 12
    logits = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    in_len = torch.randint(30, T + 1, (B,), generator=g)
    tgt_len = torch.randint(0, 15, (B,), generator=g)
    targets = torch.randint(1, C, (B, 15), generator=g)

    def run(loss_fn, dtype):
        x = logits.to(dtype).clone().requires_grad_()
        loss = loss_fn(x.log_softmax(-1))
        loss.backward()
        return loss.item(), x.grad

    ours = lambda lp: ctc_loss(lp, targets, in_len, tgt_len, reduction="sum")  # noqa: E731
    theirs = lambda lp: F.ctc_loss(lp.transpose(0, 1), targets, in_len, tgt_len, reduction="sum")  # noqa: E731
    loss64, grad64 = run(ours, torch.float64)
    torch_loss64, torch_grad64 = run(theirs, torch.float64)
    assert abs(loss64 - torch_loss64) <= 1e-10 * abs(torch_loss64)
    torch.testing.assert_close(grad64, torch_grad64, atol=1e-10, rtol=1e-10)
    loss32, grad32 = run(ours, torch.float32)
    assert abs(loss32 - run(theirs, torch.float32)[0]) <= 1e-5 * abs(loss64)
    assert (grad32.double() - grad64).abs().max() < 1e-6


def test_gradcheck_on_unnormalised_input():
    """The gradient is the exact derivative, also where lp is not a log-softmax output."""
    g = torch.Generator().manual_seed(3)
    lp = (-torch.rand(3, 7, 4, generator=g, dtype=torch.float64) * 3 - 0.05).requires_grad_()
    targets = torch.tensor([[1, 2, 2], [3, 0, 0], [1, 3, 1]])
    assert gradcheck(lambda x: ctc_loss(x, targets, [7, 5, 6], [3, 1, 3], reduction="none"), (lp,))
    assert gradcheck(lambda x: ctc_loss(x, targets.flatten()[[0, 1, 2, 3, 6, 7, 8]], [7, 5, 6], [3, 1, 3],
                                        reduction="mean"), (lp,))


def test_reduction_mean_divides_by_target_length_like_torch():
    lp = torch.randn(4, 20, 6).log_softmax(-1)
    targets = torch.randint(1, 6, (4, 5))
    in_len, tgt_len = torch.tensor([20, 18, 20, 9]), torch.tensor([5, 0, 3, 2])
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(
            ctc_loss(lp, targets, in_len, tgt_len, reduction=reduction),
            F.ctc_loss(lp.transpose(0, 1), targets, in_len, tgt_len, reduction=reduction))


# ----------------------------------------------------------------------------- edge cases

def test_empty_target_is_all_blanks():
    lp = torch.randn(2, 5, 3, dtype=torch.float64).log_softmax(-1)
    loss = ctc_loss(lp, torch.zeros(2, 0, dtype=torch.long), [5, 3], [0, 0], reduction="none")
    torch.testing.assert_close(loss, torch.stack([-lp[0, :5, 0].sum(), -lp[1, :3, 0].sum()]))


def test_one_frame_and_zero_frames():
    lp = torch.randn(3, 1, 4, dtype=torch.float64).log_softmax(-1)
    loss = ctc_loss(lp, torch.tensor([[2], [0], [0]]), [1, 1, 0], [1, 0, 0], reduction="none")
    torch.testing.assert_close(loss, torch.stack([-lp[0, 0, 2], -lp[1, 0, 0], torch.tensor(0.0, dtype=torch.float64)]))


def test_repeated_labels_at_the_minimal_length_have_exactly_one_alignment():
    """'a a' in 3 frames can only be 'a _ a'."""
    lp = torch.randn(1, 3, 3, dtype=torch.float64).log_softmax(-1)
    loss = ctc_loss(lp, torch.tensor([[1, 1]]), [3], [2], reduction="none")
    torch.testing.assert_close(loss[0], -(lp[0, 0, 1] + lp[0, 1, 0] + lp[0, 2, 1]))
    (a,) = forced_align(lp, torch.tensor([[1, 1]]), [3], [2])
    assert a.path == [1, 0, 1]


@pytest.mark.parametrize("blank", [0, 2, 4])
def test_blank_at_any_index(blank):
    lp = torch.randn(2, 9, 5, dtype=torch.float64).log_softmax(-1)
    symbols = [c for c in range(5) if c != blank]
    targets = torch.tensor([[symbols[0], symbols[1], symbols[1]], [symbols[3], symbols[2], symbols[0]]])
    ours = ctc_loss(lp, targets, [9, 8], [3, 2], blank=blank, reduction="none")
    theirs = F.ctc_loss(lp.transpose(0, 1), targets, torch.tensor([9, 8]), torch.tensor([3, 2]), blank=blank,
                        reduction="none")
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)


def test_infeasible_rows_give_inf_zero_gradient_and_one_warning():
    lp = torch.randn(3, 4, 4, dtype=torch.float64).log_softmax(-1).requires_grad_()
    targets = torch.tensor([[1, 2, 3], [1, 1, 0], [2, 0, 0]])
    with pytest.warns(RuntimeWarning, match=r"ctc_loss: rows \[0, 1\] have no alignment") as record:
        loss = ctc_loss(lp, targets, [2, 2, 4], [3, 2, 1], reduction="none")
    assert len(record) == 1
    assert torch.isinf(loss[0]) and torch.isinf(loss[1]) and torch.isfinite(loss[2])
    loss[2].backward()
    assert torch.all(lp.grad[:2] == 0) and not torch.isnan(lp.grad).any()
    lp.grad = None
    with pytest.warns(RuntimeWarning):
        total = ctc_loss(lp, targets, [2, 2, 4], [3, 2, 1], zero_infinity=True, reduction="sum")
    total.backward()
    torch.testing.assert_close(total, loss[2])
    assert torch.all(lp.grad[:2] == 0) and torch.isfinite(lp.grad).all()


def test_zero_probability_symbol_is_infeasible_not_nan():
    lp = torch.full((1, 3, 3), -1.0986, dtype=torch.float64)
    lp[0, :, 2] = -torch.inf
    with pytest.warns(RuntimeWarning):
        loss = ctc_loss(lp, torch.tensor([[2]]), [3], [1], reduction="none")
    assert torch.isinf(loss[0])


def test_long_sequences_stay_finite_and_equal_torch():
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(2, 2000, 30, generator=g, dtype=torch.float64).log_softmax(-1)
    targets = torch.randint(1, 30, (2, 300), generator=g)
    ours = ctc_loss(lp, targets, [2000, 1700], [300, 250], reduction="none")
    theirs = F.ctc_loss(lp.transpose(0, 1), targets, torch.tensor([2000, 1700]), torch.tensor([300, 250]),
                        reduction="none")
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, theirs, atol=0, rtol=1e-10)


def test_scaling_underflow_falls_back_to_log_space():
    """A probability ratio of e^-800 inside one frame underflows the scaled recursion: that row
    is recomputed in log space and still equals the log-domain reference."""
    lp = torch.zeros(1, 3, 3, dtype=torch.float64)
    lp[0, 0, 1] = -800.0  # the first symbol at frame 0
    lp[0, 1, 1] = -800.0  # and at frame 1, while the blank and the second symbol stay likely
    x = lp.clone().requires_grad_()
    loss = ctc_loss(x, torch.tensor([[1, 2]]), [3], [2], reduction="none")
    loss.backward()
    L, grad = ref.log_loss_and_gradient(lp[0].numpy(), [1, 2], 0)
    assert np.isfinite(L) and abs(loss.item() - L) < 1e-9
    np.testing.assert_allclose(x.grad[0].numpy(), grad, atol=1e-10)


def test_torch_backend_used_on_cuda_gives_the_exact_gradient():
    """The CUDA path (torch's kernel, gradient corrected to -gamma) equals our kernel; run on CPU."""
    lp = (-torch.rand(4, 15, 5, dtype=torch.float64) * 4 - 0.01)  # unnormalised on purpose
    targets = torch.tensor([[1, 2, 2, 3], [4, 0, 0, 0], [1, 1, 1, 1], [2, 3, 0, 0]])
    batch = ctc._check(lp, targets, [15, 11, 6, 9], [4, 1, 4, 2], 0)
    loss_t, grad_t = ctc._lattice_torch(lp, batch, 0)
    loss_k, grad_k, _, _ = ctc._lattice_cpu(lp, batch, 0, True, False)
    assert torch.isinf(loss_t[2]) and np.isinf(loss_k[2])  # '1 1 1 1' needs 7 frames
    keep = [0, 1, 3]
    torch.testing.assert_close(loss_t[keep], torch.from_numpy(loss_k)[keep], atol=1e-10, rtol=0)
    torch.testing.assert_close(grad_t, torch.from_numpy(grad_k), atol=1e-10, rtol=0)


# ----------------------------------------------------------------------------- posteriors

@settings(max_examples=30, deadline=None)
@given(tiny_cases(max_T=5))
def test_posteriors_equal_the_reference_gamma(case):
    lp, rows, blank = case
    targets, in_len, tgt_len = _pad(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gamma_ext, gamma_sym = ctc_posteriors(lp, targets, in_len, tgt_len, blank=blank)
    for b, (T_b, target) in enumerate(rows):
        if np.isinf(ref.brute_force(lp[b, :T_b].numpy(), target, blank)[0]):
            assert torch.all(gamma_ext[b] == 0)
            continue
        expected = ref.gamma(np.exp(lp[b, :T_b].numpy()), target, blank)
        np.testing.assert_allclose(gamma_ext[b, :T_b, : 2 * len(target) + 1].numpy(), expected, atol=1e-10)
        np.testing.assert_allclose(gamma_sym[b, :T_b].sum(-1).numpy(), 1.0, atol=1e-12)
        assert torch.all(gamma_ext[b, T_b:] == 0)


# ----------------------------------------------------------------------------- Viterbi

@settings(max_examples=60, deadline=None)
@given(tiny_cases())
def test_forced_align_is_the_best_valid_alignment(case):
    lp, rows, blank = case
    targets, in_len, tgt_len = _pad(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        alignments = forced_align(lp, targets, in_len, tgt_len, blank=blank)
    for b, (T_b, target) in enumerate(rows):
        _, _, best, best_path = ref.brute_force(lp[b, :T_b].numpy(), target, blank)
        a = alignments[b]
        if best_path is None:
            assert a is None
            continue
        assert len(a.path) == T_b
        assert ref.collapse(a.path, blank) == target, "collapses to the target"
        assert abs(a.score - best) < 1e-10, "as probable as the best enumerated path"
        assert abs(a.score - sum(lp[b, t, c].item() for t, c in enumerate(a.path))) < 1e-10
        assert [s.symbol for s in a.segments] == target
        for s, nxt in zip(a.segments, a.segments[1:]):
            assert s.end <= nxt.start
            if s.symbol == nxt.symbol:
                assert s.end < nxt.start, "a blank between repeats"
        for s in a.segments:
            assert all(a.path[t] == s.symbol for t in range(s.start, s.end))


def test_viterbi_loss_value_and_gradient():
    lp = torch.randn(2, 8, 4, dtype=torch.float64).log_softmax(-1).requires_grad_()
    targets = torch.tensor([[1, 2, 2], [3, 1, 0]])
    loss = viterbi_loss(lp, targets, [8, 6], [3, 2], reduction="none")
    alignments = forced_align(lp, targets, [8, 6], [3, 2])
    torch.testing.assert_close(loss, torch.tensor([-a.score for a in alignments], dtype=torch.float64))
    loss.sum().backward()
    for b, a in enumerate(alignments):
        expected = torch.zeros(8, 4, dtype=torch.float64)
        expected[torch.arange(len(a.path)), torch.tensor(a.path)] = -1
        torch.testing.assert_close(lp.grad[b], expected)


def test_ctc_feasible():
    targets = torch.tensor([[1, 1, 2], [1, 2, 3], [2, 2, 2]])
    assert ctc_feasible([4, 3, 4], targets, [3, 3, 3]).tolist() == [True, True, False]
    assert ctc_feasible([3, 3, 5], targets, [3, 3, 3]).tolist() == [False, True, True]


# ----------------------------------------------------------------------------- bad input

LP = torch.randn(2, 5, 4).log_softmax(-1)
TG = torch.tensor([[1, 2], [3, 0]])


@pytest.mark.parametrize("call,message", [
    (lambda: ctc_loss(LP, TG, [6, 5], [2, 1]), r"input_lengths must be <= 5 \(frames in log_probs\). Received: max 6"),
    (lambda: ctc_loss(LP, TG, [5, -1], [2, 1]), r"input_lengths must be >= 0. Received: \[5, -1\]"),
    (lambda: ctc_loss(LP, TG, [5, 5], [3, 1]), r"target_lengths must be <= 2 \(columns of the padded targets\)"),
    (lambda: ctc_loss(LP, torch.tensor([[1, 0], [3, 0]]), [5, 5], [2, 1]), r"must not contain the blank \(0\). Received: it in rows \[0\]"),
    (lambda: ctc_loss(LP, torch.tensor([[1, 4], [3, 0]]), [5, 5], [2, 1]), r"class ids in \[0, 4\). Received: min 1, max 4"),
    (lambda: ctc_loss(LP, TG, [5, 5, 5], [2, 1, 1]), r"input_lengths must have one length per sequence: 2"),
    (lambda: ctc_loss(LP, TG[:1], [5, 5], [2, 1]), r"padded targets must have 2 rows"),
    (lambda: ctc_loss(LP + 1, TG, [5, 5], [2, 1]), "must be log-probabilities"),
    (lambda: ctc_loss(LP, torch.tensor([1, 2, 3, 3]), [5, 5], [2, 1]), r"concatenated targets must hold sum\(target_lengths\) = 3"),
    (lambda: ctc_loss(LP[0], TG, [5, 5], [2, 1]), r"log_probs must be a float tensor \(batch, time, classes\)"),
    (lambda: ctc_loss(LP, TG, [5, 5], [2, 1], blank=4), r"blank must be a class index in \[0, 4\)"),
    (lambda: ctc_loss(LP, TG, torch.tensor([5.0, 5.0]), [2, 1]), "input_lengths must be a 1-D integer tensor"),
    (lambda: ctc_loss(LP, TG, [5, 5], [2, 1], reduction="avg"), "reduction must be one of"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----------------------------------------------------------------------------- the expected divergence


def _brute_expected_divergence(lp: np.ndarray, target: list[int], blank: int = 0) -> float:
    """E over alignments pi of the target, weighted by P(pi | l, x), of -log P(pi | x): by enumeration."""
    T, C = lp.shape
    scores = [sum(lp[t, c] for t, c in enumerate(path)) for path in itertools.product(range(C), repeat=T)
              if ref.collapse(path, blank) == list(target)]
    weights = np.exp(np.array(scores) - np.logaddexp.reduce(scores))
    return float(-(weights * np.array(scores)).sum())


@pytest.mark.parametrize("target", [[1], [1, 2], [2, 2], [1, 2, 1]])
def test_expected_divergence_equals_enumeration_and_exceeds_nll_by_the_entropy(target):
    from rnnkit.ctc import ctc_expected_divergence

    torch.manual_seed(len(target))
    lp = torch.randn(1, 5, 3, dtype=torch.float64).log_softmax(-1)
    div = ctc_expected_divergence(lp, [target], [5], [len(target)], reduction="none")
    assert float(div) == pytest.approx(_brute_expected_divergence(lp[0].numpy(), target), abs=1e-10)
    nll = float(ctc_loss(lp, [target], [5], [len(target)], reduction="none"))
    assert float(div) > nll  # the difference is the entropy of the posterior over alignments


def test_expected_divergence_has_the_ctc_gradient_and_agrees_on_a_peaky_model():
    from rnnkit.ctc import ctc_expected_divergence

    lp = torch.randn(3, 9, 5, dtype=torch.float64).log_softmax(-1).requires_grad_()
    args = (torch.tensor([[1, 2], [3, 3], [4, 1]]), [9, 8, 9], [2, 2, 2])
    g_div, = torch.autograd.grad(ctc_expected_divergence(lp, *args, reduction="sum"), lp)
    g_nll, = torch.autograd.grad(ctc_loss(lp, *args, reduction="sum"), lp)
    torch.testing.assert_close(g_div, g_nll, rtol=0, atol=1e-10)
    peaky = torch.full((1, 4, 3), -60.0, dtype=torch.float64)
    for t, c in enumerate([1, 0, 2, 2]):  # one alignment of "1 2" takes all the mass
        peaky[0, t, c] = 0.0
    peaky = peaky.log_softmax(-1)
    assert float(ctc_expected_divergence(peaky, [[1, 2]], [4], [2])) == pytest.approx(
        float(ctc_loss(peaky, [[1, 2]], [4], [2])), abs=1e-12)
