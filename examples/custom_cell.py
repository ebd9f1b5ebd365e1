"""Your own recurrent cell inside rnnkit.Recurrent: a minimal gated unit, run bidirectionally
over sequences of different lengths and trained to say whether a sequence holds more ones
than zeros (the answer needs the whole sequence).

    python examples/custom_cell.py [--quick]
"""

import argparse

import torch
from torch import nn

import rnnkit


class MinimalGatedCell(rnnkit.Cell):
    """f_t = sigmoid(U_f x_t + W_f h_{t-1} + b_f);  h_t = (1 - f_t) h_{t-1} + f_t tanh(U x_t + W (f_t h_{t-1}) + b)"""

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


def batch(size: int, g: torch.Generator):
    lengths = torch.randint(3, 16, (size,), generator=g)
    bits = torch.randint(0, 2, (size, 16), generator=g) * (torch.arange(16) < lengths[:, None])
    label = (bits.sum(1) * 2 > lengths).long()
    return torch.nn.functional.one_hot(bits, 2).float(), lengths, label


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    quick = ap.parse_args().quick
    torch.manual_seed(0)
    rnn = rnnkit.Recurrent([MinimalGatedCell(2, 16)], bidirectional=True)
    head = nn.Linear(2 * 16, 2)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for step in range(30 if quick else 400):
        x, lengths, label = batch(64, g)
        out, state = rnn(x, lengths)
        (h_forward,), (h_backward,) = state  # each direction's final state (the backward one read from the end)
        loss = nn.functional.cross_entropy(head(torch.cat([h_forward, h_backward], 1)), label)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, lengths, label = batch(1000, g)
    with torch.no_grad():
        _, ((hf,), (hb,)) = rnn(x, lengths)
        accuracy = (head(torch.cat([hf, hb], 1)).argmax(1) == label).float().mean()
    print(f"majority of ones, {len(label)} held-out sequences of 3-15 steps: accuracy {accuracy:.1%}")


if __name__ == "__main__":
    main()
