"""Training speed by precision: --precision bf16 against float32, same run.

One optimiser step (forward, backward, Adam) of language models the tasks train, on random
token ids, under rnnkit.precision.autocast:

    charlm lstm / gru   2 x 256 units, embeddings 64, 100 characters, batch 32, BPTT 100
                        (the main job's model; the LSTM runs on torch's op, the GRU on
                        rnnkit's fused engine, whose recurrence stays in float32)
    wordlm lstm / gru   2 x 650 units, embeddings 650, 10,000 words, batch 20, BPTT 35
                        (Zaremba medium: the output layer dominates)

bfloat16 pays off where the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); without
it, expect slower steps. Rounds run back to back; the ratio is the median of the rounds'
ratios (the machine is shared). Ratios are speeds: above 1, bf16 is faster.

    python benchmarks/precision.py [--rounds 3] [--steps 5]

Writes benchmarks/results/precision-cpu-<model>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rnnkit.models import LanguageModel, LanguageModelConfig
from rnnkit.precision import autocast
from rounds import report

MODELS = {  # cell, vocabulary, embedding, units, layers, batch, BPTT
    "charlm lstm": ("lstm", 100, 64, 256, 2, 32, 100),
    "charlm gru": ("gru", 100, 64, 256, 2, 32, 100),
    "wordlm lstm": ("lstm", 10000, 650, 650, 2, 20, 35),
    "wordlm gru": ("gru", 10000, 650, 650, 2, 20, 35),
}


def steps_per_second(model: LanguageModel, batch: dict[str, torch.Tensor], precision: str, steps: int) -> float:
    optimizer = torch.optim.Adam(model.parameters())

    def step() -> None:
        with autocast(precision, torch.device("cpu")):
            out = model.loss(batch)
        out.value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: oneDNN primitives, numba kernels
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="timed optimiser steps per model, precision and round")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "precision-cpu.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    for name, (cell, V, E, H, L, B, T) in MODELS.items():
        model = LanguageModel(LanguageModelConfig(vocab_size=V, embedding_size=E,
                                                  rnn={"cell": cell, "hidden_size": H, "num_layers": L}))
        batch = {"input": torch.randint(0, V, (B, T)), "target": torch.randint(0, V, (B, T))}
        speeds: dict[str, list[float]] = {"float32": [], "bf16": []}
        for _ in range(args.rounds):
            for precision, key in (("32", "float32"), ("bf16", "bf16")):
                speeds[key].append(steps_per_second(model, batch, precision, args.steps))
        report(speeds, "float32", "steps/s",
               f"\n{name}: {cell} {L}x{H}, vocabulary {V}, batch {B} x {T}; torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads; medians of {args.rounds} rounds",
               args.json.with_name(f"{args.json.stem}-{name.replace(' ', '_')}.json"),
               {"model": name, "rounds": args.rounds, "steps": args.steps, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
