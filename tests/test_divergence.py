"""Per-step, final-step and aligned divergences against torch's cross-entropy on gathered steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from rnnkit.divergence import aligned_cross_entropy, final_step_cross_entropy, sequence_cross_entropy

B, T, C = 3, 6, 5


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    targets = torch.randint(0, C, (B, T), generator=g)
    lengths = torch.tensor([6, 2, 4])
    return logits, targets, lengths


def _real(lengths):
    return torch.arange(T)[None, :] < lengths[:, None]


def test_sequence_cross_entropy_equals_torch_on_real_steps(data):
    logits, targets, lengths = data
    mask = _real(lengths)
    padded = logits.clone()
    padded[~mask] = torch.inf  # padding never counts, whatever it holds
    for reduction in ("mean", "sum"):
        ours = sequence_cross_entropy(padded, targets, lengths, reduction=reduction)
        torch.testing.assert_close(ours, F.cross_entropy(logits[mask], targets[mask], reduction=reduction))
    per_step = sequence_cross_entropy(padded, targets, lengths, reduction="none")
    assert per_step.shape == (B, T) and torch.all(per_step[~mask] == 0)
    torch.testing.assert_close(per_step[mask], F.cross_entropy(logits[mask], targets[mask], reduction="none"))


def test_sequence_cross_entropy_weights(data):
    logits, targets, lengths = data
    mask = _real(lengths)
    ce = F.cross_entropy(logits.reshape(-1, C), targets.reshape(-1), reduction="none").view(B, T)
    w_step = torch.linspace(0.5, 2.0, T, dtype=torch.float64)
    w_elem = torch.rand(B, T, dtype=torch.float64)
    for w in (w_step, w_elem):
        wb = w.expand(B, T)
        expected_sum = (ce * wb)[mask].sum()
        torch.testing.assert_close(sequence_cross_entropy(logits, targets, lengths, weights=w, reduction="sum"), expected_sum)
        torch.testing.assert_close(sequence_cross_entropy(logits, targets, lengths, weights=w),
                                   expected_sum / wb[mask].sum())


def test_sequence_cross_entropy_label_smoothing_and_ignore_index(data):
    logits, targets, lengths = data
    targets = targets.clone()
    targets[0, 1] = -100
    keep = _real(lengths) & (targets != -100)
    ours = sequence_cross_entropy(logits, targets, lengths, label_smoothing=0.1)
    torch.testing.assert_close(ours, F.cross_entropy(logits[keep], targets[keep], label_smoothing=0.1))


def test_padding_gets_no_gradient(data):
    logits, targets, lengths = data
    x = logits.clone().requires_grad_()
    sequence_cross_entropy(x, targets, lengths).backward()
    assert torch.all(x.grad[~_real(lengths)] == 0) and x.grad[_real(lengths)].abs().sum() > 0


def test_final_step_reads_each_sequence_at_its_last_real_step(data):
    logits, _, lengths = data
    target = torch.tensor([1, 4, 0])
    last = logits[torch.arange(B), lengths - 1]
    for reduction in ("mean", "sum", "none"):
        torch.testing.assert_close(final_step_cross_entropy(logits, target, lengths, reduction=reduction),
                                   F.cross_entropy(last, target, reduction=reduction))
    torch.testing.assert_close(final_step_cross_entropy(logits, target), F.cross_entropy(logits[:, -1], target))


def test_final_step_everywhere_with_weights(data):
    logits, _, lengths = data
    target = torch.tensor([1, 4, 0])
    ce = F.cross_entropy(logits.transpose(1, 2), target[:, None].expand(B, T), reduction="none")  # (B, T)
    mask = _real(lengths)
    uniform = torch.stack([ce[b, mask[b]].mean() for b in range(B)])
    torch.testing.assert_close(final_step_cross_entropy(logits, target, lengths, everywhere=True, reduction="none"), uniform)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    linear = torch.stack([(ce[b, mask[b]] * t[mask[b]]).sum() / t[mask[b]].sum() for b in range(B)])
    torch.testing.assert_close(final_step_cross_entropy(logits, target, lengths, everywhere=True,
                                                        step_weights="linear", reduction="none"), linear)


def test_aligned_repeat_and_end_modes():
    logits = torch.randn(2, 7, 4, dtype=torch.float64)
    symbols = torch.tensor([[1, 3, 2], [2, 2, 0]])
    durations = torch.tensor([[2, 3, 2], [1, 4, 0]])
    # frame targets by hand: row 0 = 1 1 3 3 3 2 2; row 1 = 2 2 2 2 2 . . (2 symbols)
    frames = torch.tensor([[1, 1, 3, 3, 3, 2, 2], [2, 2, 2, 2, 2, -100, -100]])
    repeat = aligned_cross_entropy(logits, symbols, durations=durations, symbol_lengths=torch.tensor([3, 2]), reduction="sum")
    torch.testing.assert_close(repeat, sequence_cross_entropy(logits, frames, reduction="sum"))
    ends = torch.tensor([[2, 5, 7], [1, 5, 5]])
    same = aligned_cross_entropy(logits, symbols, ends=ends, symbol_lengths=torch.tensor([3, 2]), reduction="sum")
    torch.testing.assert_close(same, repeat)
    end = aligned_cross_entropy(logits, symbols, durations=durations, symbol_lengths=torch.tensor([3, 2]),
                                mode="end", reduction="none")
    at_end = torch.full((2, 7), -100)
    at_end[0, [1, 4, 6]] = torch.tensor([1, 3, 2])
    at_end[1, [0, 4]] = torch.tensor([2, 2])
    torch.testing.assert_close(end, sequence_cross_entropy(logits, at_end, reduction="none"))


@pytest.mark.parametrize("fn", [
    lambda x: sequence_cross_entropy(x, torch.tensor([[1, 2, 0], [3, 3, 1]]), torch.tensor([3, 2]),
                                     weights=torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64), label_smoothing=0.1),
    lambda x: final_step_cross_entropy(x, torch.tensor([2, 0]), torch.tensor([3, 2]), everywhere=True, step_weights="linear"),
    lambda x: aligned_cross_entropy(x, torch.tensor([[1, 2], [3, 0]]), durations=torch.tensor([[1, 2], [2, 0]]), mode="end"),
])
def test_gradcheck(fn):
    assert gradcheck(fn, (torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True),))


@pytest.mark.parametrize("call,message", [
    (lambda x: sequence_cross_entropy(x[0], torch.zeros(6, dtype=torch.long)), r"logits must be a float tensor \(batch, time, classes\)"),
    (lambda x: sequence_cross_entropy(x, torch.zeros(3, 5, dtype=torch.long)), r"targets must be integer class ids of shape \(3, 6\)"),
    (lambda x: sequence_cross_entropy(x, torch.full((3, 6), 5)), r"class ids in \[0, 5\) or ignore_index=-100. Received: min 5, max 5"),
    (lambda x: sequence_cross_entropy(x, torch.zeros(3, 6, dtype=torch.long), torch.tensor([7, 1, 1])), r"lengths must lie in \[1, 6\]"),
    (lambda x: sequence_cross_entropy(x, torch.zeros(3, 6, dtype=torch.long), weights=torch.ones(5)), r"weights must have shape \(6,\) per step or \(3, 6\)"),
    (lambda x: sequence_cross_entropy(x, torch.zeros(3, 6, dtype=torch.long), reduction="avg"), "reduction must be one of"),
    (lambda x: final_step_cross_entropy(x, torch.zeros(2, dtype=torch.long)), r"target must be integer class ids of shape \(3,\)"),
    (lambda x: final_step_cross_entropy(x, torch.zeros(3, dtype=torch.long), everywhere=True, step_weights="log"), "step_weights must be"),
    (lambda x: aligned_cross_entropy(x, torch.zeros(3, 2, dtype=torch.long)), "give exactly one of durations= and ends="),
    (lambda x: aligned_cross_entropy(x, torch.ones(3, 2, dtype=torch.long), durations=torch.full((3, 2), 4)), "must end within the 6 frames"),
    (lambda x: aligned_cross_entropy(x, torch.ones(3, 2, dtype=torch.long), ends=torch.tensor([[3, 1]] * 3)), "non-decreasing ends"),
    (lambda x: aligned_cross_entropy(x, torch.ones(3, 2, dtype=torch.long), durations=torch.ones(3, 2, dtype=torch.long), mode="start"), "mode must be 'repeat' or 'end'"),
])
def test_bad_input(data, call, message):
    with pytest.raises(ValueError, match=message):
        call(data[0])


def test_divergence_everywhere_as_the_course_sum_or_a_per_sequence_mean():
    """'sum' is sum_t w_t Xent (a long sequence weighs more); 'mean' divides by sum_t w_t."""
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 3, dtype=torch.float64)
    target, lengths = torch.tensor([2, 0]), torch.tensor([6, 2])
    per_step = -logits.log_softmax(-1)[torch.arange(2)[:, None], torch.arange(6)[None], target[:, None]]  # (B, T)
    by_hand_sum = torch.stack([per_step[0, :6].sum(), per_step[1, :2].sum()])
    total = final_step_cross_entropy(logits, target, lengths, everywhere=True, step_normalization="sum",
                                     reduction="none")
    mean = final_step_cross_entropy(logits, target, lengths, everywhere=True, reduction="none")
    torch.testing.assert_close(total, by_hand_sum, rtol=0, atol=1e-12)
    torch.testing.assert_close(mean, by_hand_sum / lengths, rtol=0, atol=1e-12)
    linear = final_step_cross_entropy(logits, target, lengths, everywhere=True, step_weights="linear",
                                      step_normalization="sum", reduction="none")
    torch.testing.assert_close(linear[1], per_step[1, 0] / 2 + per_step[1, 1], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="step_normalization must be 'mean' or 'sum'"):
        final_step_cross_entropy(logits, target, lengths, everywhere=True, step_normalization="max")


# ----------------------------------------------------------------------------- real-valued outputs


def test_squared_error_and_gaussian_nll_equal_torchs_and_ignore_padding():
    from rnnkit.divergence import sequence_gaussian_nll, sequence_squared_error

    torch.manual_seed(0)
    mean, log_var, y = (torch.randn(2, 5, 3, dtype=torch.float64) for _ in range(3))
    lengths = torch.tensor([5, 3])
    se = sequence_squared_error(mean, y, lengths, reduction="none")
    torch.testing.assert_close(se[0], F.mse_loss(mean[0], y[0], reduction="none").sum(-1), rtol=0, atol=1e-12)
    assert bool((se[1, 3:] == 0).all())
    nll = sequence_gaussian_nll(mean, log_var, y, lengths, reduction="none")
    theirs = F.gaussian_nll_loss(mean[0], y[0], log_var[0].exp(), full=True, reduction="none").sum(-1)
    torch.testing.assert_close(nll[0], theirs, rtol=0, atol=1e-10)
    y_padded = y.clone()
    y_padded[1, 3:] = float("nan")  # padding may hold anything
    assert float(sequence_gaussian_nll(mean, log_var, y_padded, lengths)) == pytest.approx(
        float(sequence_gaussian_nll(mean, log_var, y, lengths)), abs=1e-12)
    w = torch.tensor([1.0, 2.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    expected = (se[0] * w).sum() + (se[1, :3] * w[:3]).sum()
    assert float(sequence_squared_error(mean, y, lengths, weights=w, reduction="sum")) == pytest.approx(float(expected))
    assert gradcheck(lambda m, v: sequence_gaussian_nll(m, v, y, lengths), (mean.requires_grad_(), log_var.requires_grad_()))
    with pytest.raises(ValueError, match="targets must have the shape of prediction"):
        sequence_squared_error(mean, y[:, :4], lengths)
