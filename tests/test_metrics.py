"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.metrics import accuracy, bleu, cer, perplexity, wer


def test_perplexity_and_accuracy():
    assert perplexity(math.log(50.0)) == pytest.approx(50.0)
    assert accuracy(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, -100])) == pytest.approx(2 / 3)


def test_error_rates():
    assert wer(["the cat sat"], ["the cat sat down"]) == pytest.approx(1 / 4)  # one deletion
    assert wer(["a b", "c"], ["a x", "c d"]) == pytest.approx(2 / 4)
    assert cer(["kitten"], ["sitting"]) == pytest.approx(3 / 7)


def test_bleu():
    assert bleu(["the cat is on the mat"], ["the cat is on the mat"]) == pytest.approx(100.0)
    assert 0 < bleu(["the cat sat on the mat"], ["the cat is on the mat"]) < 100


def test_bad_input():
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        wer(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="same shape"):
        accuracy(torch.zeros(3), torch.zeros(4))
