"""Training throughput: the Trainer against a plain hand-written loop, same model, same run.

Zaremba et al.'s small configuration: 2-layer LSTM of 200 units, embeddings of 200, BPTT
20, batch 20, vocabulary 10,000, SGD with lr 1, gradient clipping at 5. The peer is the
loop of pytorch/examples' word_language_model (torch.nn.LSTM, repackage_hidden, clip,
SGD). Both see the same token stream (PTB train if found, else random tokens). The machine
is shared and noisy (+-15% between identical runs in wall time), so the two run back to
back in several rounds, and the ratio is the median of the rounds' ratios, in wall time
and in process CPU time (which neighbours disturb much less).

    python benchmarks/train_lm.py [--steps 100] [--rounds 5]

Writes benchmarks/results/train_lm-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

import rnnkit
from rnnkit.data import StreamBatches, require
from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.train import OptimizerConfig, StoppingConfig, TrainConfig, Trainer

V, E, H, LAYERS, BPTT, BATCH = 10_000, 200, 200, 2, 20, 20


def tokens(n: int) -> tuple[torch.Tensor, str]:
    try:
        words = (require("ptb") / "ptb.train.txt").read_text().replace("\n", " <eos> ").split()
    except FileNotFoundError:
        return torch.randint(0, V, (n,)), "random tokens"
    vocab = {w: i for i, w in enumerate(sorted(set(words)))}
    return torch.tensor([vocab[w] for w in words[:n]]), "PTB train"


class PlainLM(nn.Module):
    """pytorch/examples' RNNModel: embedding, nn.LSTM, linear decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(V, E)
        self.rnn = nn.LSTM(E, H, LAYERS, batch_first=True)
        self.decoder = nn.Linear(H, V)

    def forward(self, x, hidden):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


def plain_loop(stream: StreamBatches, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = PlainLM()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    criterion = nn.CrossEntropyLoss()
    hidden = None
    it = iter(stream)
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for _ in range(steps):
        batch = next(it)
        if hidden is not None:
            hidden = tuple(h.detach() for h in hidden)  # repackage_hidden
        logits, hidden = model(batch["input"], hidden)
        loss = criterion(logits.reshape(-1, V), batch["target"].reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        n += batch["target"].numel()
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def trainer_run(stream: StreamBatches, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = LanguageModel(LanguageModelConfig(vocab_size=V, embedding_size=E,
                                              rnn={"cell": "lstm", "hidden_size": H, "num_layers": LAYERS},
                                              init_range=0.1))
    config = TrainConfig(OptimizerConfig("sgd", lr=1.0), stopping=StoppingConfig(max_steps=steps), clip_norm=5.0,
                         log_every=10**9)
    trainer = Trainer(model, stream, config, progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit()
    n = steps * BATCH * BPTT
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    data, source = tokens(BATCH * BPTT * (args.steps + 2) + 1)
    results = {"plain": [], "trainer": []}
    for _ in range(args.rounds):
        results["plain"].append(plain_loop(StreamBatches(data, BATCH, BPTT), args.steps))
        results["trainer"].append(trainer_run(StreamBatches(data, BATCH, BPTT), args.steps))
    summary = {}
    for i, clock in enumerate(("wall", "cpu")):
        ratios = sorted(t[i] / p[i] for t, p in zip(results["trainer"], results["plain"]))
        summary[clock] = {"plain": sorted(p[i] for p in results["plain"])[args.rounds // 2],
                          "trainer": sorted(t[i] for t in results["trainer"])[args.rounds // 2],
                          "ratio": ratios[len(ratios) // 2], "ratios": ratios}
    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, {source}, "
          f"{args.rounds} rounds of {args.steps} steps of {BATCH}x{BPTT} tokens; tokens/s, medians")
    print(f"  {'':<8}{'plain loop':>12}{'Trainer':>12}{'ratio':>8}  range")
    for clock, r in summary.items():
        print(f"  {clock:<8}{r['plain']:>12.0f}{r['trainer']:>12.0f}{r['ratio']:>8.2f}  {r['ratios'][0]:.2f}-{r['ratios'][-1]:.2f}")
    print("  target: ratio >= 1.0 (the engine adds no overhead)")
    out = args.json or Path(__file__).parent / "results" / "train_lm-cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"source": source, "steps": args.steps, "rounds": args.rounds,
                               "tokens_per_s": results, "summary": summary}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
