"""Teacher forcing and scheduled sampling: which previous output feeds the next step."""

from __future__ import annotations

import torch
from torch import Tensor


def previous_outputs(gold: Tensor, predicted: Tensor, teacher_forcing: float) -> Tensor:
    """Each row feeds the gold previous token with probability ``teacher_forcing``, else the
    model's own prediction (scheduled sampling, Bengio et al. 2015; 1 = teacher forcing,
    0 = free running). Draws from torch's global generator, which checkpoints save."""
    if teacher_forcing >= 1.0:
        return gold
    if teacher_forcing <= 0.0:
        return predicted
    use_gold = torch.rand(gold.shape, device=gold.device) < teacher_forcing
    return torch.where(use_gold, gold, predicted)
