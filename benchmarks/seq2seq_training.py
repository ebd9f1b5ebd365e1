"""Encoder-decoder training speed: the whole-target decoder against a step-by-step loop, same run.

The translate task's model at its defaults (embeddings 256, bidirectional LSTM encoder of
256 per direction, LSTM decoder of 256, additive attention, 8,000 subwords a side), batches of
64 pairs of 12 source and 12 target pieces; one optimiser step = forward, backward and Adam.

    rnnkit whole      Seq2Seq without input feeding: the decoder stack runs over the whole
                      teacher-forced target in one call (torch's native LSTM), then the
                      attention for every step in one batched product
    rnnkit stepwise   Seq2Seq with input feeding (Luong): one decoder step at a time
    plain loop        the peer: a hand-written PyTorch decoder loop (torch.nn.LSTMCell per
                      step, the same additive attention and sizes), as tutorials write it

Rounds run back to back; the ratio is the median of the rounds' ratios (the machine is shared).

    python benchmarks/seq2seq_training.py [--steps 20] [--rounds 3]

Writes benchmarks/results/seq2seq_training-cpu.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import rnnkit
from rnnkit.models import Seq2Seq, Seq2SeqConfig
from rounds import report

V, E, H, D, B, S, T = 8000, 256, 256, 256, 64, 12, 12


class PlainSeq2Seq(nn.Module):
    """Bidirectional nn.LSTM encoder; nn.LSTMCell decoder with additive attention and input
    feeding, one step at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.src, self.tgt = nn.Embedding(V, E), nn.Embedding(V, E)
        self.encoder = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * H, D)
        self.cell = nn.LSTMCell(E + D, D)
        self.W_m, self.W_q, self.v = nn.Linear(2 * H, D, bias=False), nn.Linear(D, D), nn.Linear(D, 1, bias=False)
        self.combine, self.out = nn.Linear(2 * H + D, D), nn.Linear(D, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, (h, _) = self.encoder(self.src(src))
        s = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1)))
        state, feed, keys, logits = (s, torch.zeros_like(s)), s, self.W_m(memory), []
        for t in range(tgt_in.shape[1]):
            state = self.cell(torch.cat([self.tgt(tgt_in[:, t]), feed], -1), state)
            alpha = self.v(torch.tanh(keys + self.W_q(state[0])[:, None]))[..., 0].softmax(-1)
            context = torch.bmm(alpha[:, None], memory)[:, 0]
            feed = torch.tanh(self.combine(torch.cat([context, state[0]], -1)))
            logits.append(self.out(feed))
        return torch.stack(logits, 1)


def rnnkit_model(input_feeding: bool) -> Seq2Seq:
    return Seq2Seq(Seq2SeqConfig(src_vocab=V, tgt_vocab=V, embedding_size=E, decoder_hidden=D,
                                 encoder={"cell": "lstm", "hidden_size": H, "bidirectional": True},
                                 attention="additive", input_feeding=input_feeding))


def steps_per_second(model: nn.Module, loss_of, batches: list, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for src, tgt_in, tgt_out in batches[:2]:  # warm-up
        loss_of(model, src, tgt_in, tgt_out).backward()
    t0 = time.perf_counter()
    for i in range(steps):
        src, tgt_in, tgt_out = batches[i % len(batches)]
        loss = loss_of(model, src, tgt_in, tgt_out)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0)


def plain_loss(model, src, tgt_in, tgt_out):
    return F.cross_entropy(model(src, tgt_in).reshape(-1, V), tgt_out.reshape(-1))


def rnnkit_loss(model, src, tgt_in, tgt_out):
    lengths = torch.full((len(src),), S)
    return model.loss({"input": src, "lengths": lengths, "decoder_input": tgt_in, "target": tgt_out,
                       "target_lengths": torch.full((len(src),), T)}).value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(4, V, (B, S), generator=g), torch.randint(4, V, (B, T), generator=g),
                torch.randint(4, V, (B, T), generator=g)) for _ in range(4)]
    runs = {"plain loop": lambda: steps_per_second(PlainSeq2Seq(), plain_loss, batches, args.steps),
            "rnnkit stepwise": lambda: steps_per_second(rnnkit_model(True), rnnkit_loss, batches, args.steps),
            "rnnkit whole": lambda: steps_per_second(rnnkit_model(False), rnnkit_loss, batches, args.steps)}
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            torch.manual_seed(0)
            results[name].append(run())
    header = (f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; optimiser "
              f"steps/s of batches ({B} pairs, {S}+{T} pieces, {V} subwords), medians of {args.rounds} rounds")
    report(results, "plain loop", "steps/s", header,
           args.json or Path(__file__).parent / "results" / "seq2seq_training-cpu.json",
           {"steps": args.steps, "rounds": args.rounds})


if __name__ == "__main__":
    main()
