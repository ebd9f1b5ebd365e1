"""rnnkit.threads: when a step's rows are cut into parts on numba's threads, and when not."""

from __future__ import annotations

import os
import threading

import numba
import pytest
import torch

import rnnkit
from rnnkit import ctc, lstm_loop
from rnnkit import threads as pass_threads

needs_two = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="numba has one thread here")


@needs_two
def test_parts_follow_torchs_threads_and_the_size_of_a_step(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    with pass_threads.pass_parts(32, 256) as parts:
        assert parts == 2
    two = 2 * pass_threads.MIN_PART_UNITS // 256  # the fewest rows of 256 units cut in two
    assert pass_threads.step_parts(2, 1, 256) == 1, "one row is never cut"
    assert pass_threads.step_parts(2, two - 1, 256) == 1, "below MIN_PART_UNITS a part"
    assert pass_threads.step_parts(2, two, 256) == 2
    assert pass_threads.step_parts(2, 4 * two, 256) == 2, "no more parts than threads"
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)  # torch.set_num_threads(1), OMP_NUM_THREADS=1
    with pass_threads.pass_parts(32, 256) as parts:
        assert parts == 1


@needs_two
def test_a_second_thread_runs_on_one_thread_meanwhile(monkeypatch):
    """numba's workqueue layer is not thread-safe: one pass at a time uses the threads."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    seen = []
    with pass_threads.pass_parts(32, 256) as parts:
        other = threading.Thread(target=lambda: seen.append(pass_threads.pass_parts(32, 256).__enter__()))
        other.start()
        other.join()
    assert parts == 2 and seen == [1]
    with pass_threads.pass_parts(32, 256) as parts:
        assert parts == 2, "the lock is released after the block"


@needs_two
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_trains_on_one_thread(monkeypatch):
    """GNU OpenMP aborts a forked child that uses the threads its parent started: the child
    of a process that cut steps into parts runs the same LSTM on one thread, and agrees."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    monkeypatch.setattr(pass_threads, "MIN_PART_UNITS", 8)
    cut = []
    real = lstm_loop.forward_parallel
    monkeypatch.setattr(lstm_loop, "forward_parallel", lambda *a: cut.append(a[-1]) or real(*a))
    monkeypatch.setattr(rnnkit.kernels.LSTMKernel, "PRODUCT_MACS", 0)
    m = rnnkit.LSTM(3, 8, layer_norm=True, implementation="compiled").double()
    x = torch.randn(6, 5, 3, dtype=torch.double)
    m(x)[0].sum().backward()
    assert cut, "the parent cut its steps"
    grad = m.cells[0].weight_hh.grad.clone()

    def child() -> bool:
        cut.clear()
        m.zero_grad()
        m(x)[0].sum().backward()
        return not cut and torch.allclose(m.cells[0].weight_hh.grad, grad, atol=1e-12)

    assert in_forked_child(child)


def in_forked_child(check) -> bool:
    """``check()`` in a forked child on one torch thread (torch's own pool is no safer after
    a fork: torch's DataLoader workers set it so too): True only if the child lived and the
    check passed; the child leaves without pytest's teardown."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            torch.set_num_threads(1)
            code = 0 if check() else 3
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 1)
    assert os.WIFEXITED(status), f"the child died: status {status}"
    return answer == b"\x00"


def _ctc_case():
    torch.manual_seed(0)
    lp = torch.randn(8, 50, 20, dtype=torch.double).log_softmax(-1).requires_grad_()
    return lp, torch.randint(1, 20, (8, 10)), [50] * 8, [10] * 8


def _ctc_answers(lp, targets, input_lengths, target_lengths):
    """The CTC lattice's two kernels: loss, its gradient, and the Viterbi paths."""
    lp.grad = None
    ctc.ctc_loss(lp, targets, input_lengths, target_lengths, reduction="sum").backward()
    paths = [a.path for a in ctc.forced_align(lp.detach(), targets, input_lengths, target_lengths)]
    return lp.grad.clone(), paths


@needs_two
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_the_ctc_lattice_in_a_forked_child(monkeypatch):
    """A CTC loss and a forced alignment in a forked child of a process that ran them on
    numba's threads (GNU OpenMP aborted such a child before the lattice got its one-thread
    twins), with the parent's answers."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    case = _ctc_case()
    threads_used = []
    real = pass_threads.set_numba_threads
    monkeypatch.setattr(pass_threads, "set_numba_threads", lambda n: threads_used.append(n) or real(n))
    grad, paths = _ctc_answers(*case)
    assert threads_used == [2, 2], "the parent ran both kernels on two threads"

    def child() -> bool:
        threads_used.clear()
        g, p = _ctc_answers(*case)
        return not threads_used and torch.equal(g, grad) and p == paths

    assert in_forked_child(child)


@needs_two
def test_the_ctc_lattice_in_a_second_thread(monkeypatch):
    """While one thread holds numba's threads, a CTC loss in another runs on its own thread,
    with the same answers."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    case = _ctc_case()
    grad, paths = _ctc_answers(*case)
    seen = []
    with pass_threads.kernel_threads(2) as n:
        other = threading.Thread(target=lambda: seen.append(_ctc_answers(*case)), daemon=True)
        other.start()
        other.join(timeout=60)
    assert not other.is_alive(), "the second thread waited for the first's threads"
    assert n == 2 and torch.equal(seen[0][0], grad) and seen[0][1] == paths


@needs_two
def test_the_lstms_compiled_batch_limit_follows_the_threads(monkeypatch):
    """With its passes in parts the compiled LSTM loop beats the Python loop up to 2^16 / H
    rows, on one thread up to 2^14 / H; the decision is made again when torch's threads change."""
    m = rnnkit.LSTM(3, 256, layer_norm=True)
    for n, limit in [(2, 256), (1, 64), (2, 256)]:
        monkeypatch.setattr(torch, "get_num_threads", lambda n=n: n)
        (choice,) = m.paths("cpu", training=True)
        assert choice.path == "compiled" and choice.compiled_batch == limit
        assert f"compiled for batches of at most {limit}," in choice.reason
