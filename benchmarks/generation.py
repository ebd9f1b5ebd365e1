"""Token-by-token generation speed, against bare torch.nn.LSTM step loops, same run.

A character LM of the main job's shape (embeddings 64, 2 x 256 LSTM units, 100 symbols)
samples ``--tokens`` tokens at temperature 0.8 from one start token:

    torch loop        the peer: embedding, torch.nn.LSTM on one step with its state carried,
                      linear, softmax, torch.multinomial: what a hand-written sampler does
    rnnkit            LanguageModel.generate as it runs by default: the whole token loop
                      compiled (rnnkit.generation_loop, at batch <= GENERATION_LOOP_BATCH)
    rnnkit, steps     rnnkit.decode.generate over LanguageModel.step, each step on the path
                      rnnkit.dispatch chooses for one step in inference (rnnkit.inference_step:
                      the products by torch's matmul, the rest one compiled call)
    rnnkit, native    step by step with implementation="native": torch's LSTM op every step

Then beam search with 32 beams from one start token for ``--tokens`` steps (no end token):

    torch beam loop   the peer: the same modules on the 32 beams, log_softmax, top-32 of the
                      32 x 100 extensions, the state and the token history reordered
    rnnkit            rnnkit.decode.beam_search over LanguageModel.step
    floor: ...        not a search: the least a step must compute at 32 rows (each layer's
                      product; then its activations, the output layer and the top-k), so
                      its ratio bounds what any beam step on these products could reach

Rounds run back to back; the ratio is the median of the rounds' ratios (the machine is
shared). Speeds in tokens/s (higher is faster; a beam step counts as one token).

    python benchmarks/generation.py [--rounds 5] [--tokens 300]
    python benchmarks/generation.py --layer     # one layer's step alone, by batch size (below)
    python benchmarks/generation.py --batches   # the whole loop compiled vs step by step, by batch size

Writes benchmarks/results/generation-cpu.json and generation-beam-cpu.json.

``--batches`` samples ``--tokens`` tokens for 1-32 rows with the whole loop compiled and
step by step (rnnkit.inference_step), in tokens/s over all rows (the measurement behind
rnnkit.dispatch.GENERATION_LOOP_BATCH); writes generation-batches-cpu.json.

``--layer`` times one step of one 256-unit layer (input 256) without the model around it:
rnnkit.inference_step against torch's op (torch.nn.LSTM / GRU / RNN on a one-step sequence),
same parameters, at 1-256 rows, in microseconds (the measurement behind
rnnkit.dispatch.COMPILED_STEP_BATCH); writes generation-layer-cpu.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rnnkit.decode import beam_search
from rnnkit.dispatch import GENERATION_LOOP_BATCH
from rnnkit.models import LanguageModel, LanguageModelConfig
from rounds import report

V, E, H, LAYERS = 100, 64, 256, 2


def torch_loop(tokens: int) -> None:
    """The peer's sampler, on its own modules of the same sizes."""
    x, state, g = torch.tensor([[1]]), None, torch.Generator().manual_seed(0)
    for _ in range(tokens):
        out, state = LSTM(EMBEDDING(x), state)
        x = torch.multinomial(torch.softmax(OUTPUT(out[:, -1]) / 0.8, -1), 1, generator=g)


def torch_beam_loop(tokens: int, width: int = 32) -> None:
    """The peer's beam search, on its own modules."""
    x, state, history = torch.ones(width, 1, dtype=torch.long), None, torch.zeros(width, 0, dtype=torch.long)
    scores = torch.full((width,), -torch.inf)
    scores[0] = 0.0
    for _ in range(tokens):
        out, state = LSTM(EMBEDDING(x), state)
        scores, best = (scores[:, None] + torch.log_softmax(OUTPUT(out[:, -1]), -1)).reshape(-1).topk(width)
        beam, token = best // V, best % V
        state = tuple(s[:, beam] for s in state)
        history = torch.cat([history[beam], token[:, None]], 1)
        x = token[:, None]


def beam_floor(tokens: int, width: int = 32, everything: bool = True) -> None:
    """The least a beam step must compute, nothing else, on the same modules' weights: each
    layer's product [x_t h_{t-1}] [W_ih W_hh]^T + b at ``width`` rows (torch's matmul); with
    ``everything`` also the gates' sigmoids and tanhs, the output layer, log_softmax and the
    top-k of the extensions (no state update, reordering or history: a bound, not a search)."""
    layers = [(torch.cat([getattr(LSTM, f"weight_ih_l{k}"), getattr(LSTM, f"weight_hh_l{k}")], 1).t().contiguous(),
               getattr(LSTM, f"bias_ih_l{k}") + getattr(LSTM, f"bias_hh_l{k}")) for k in range(LAYERS)]
    inputs = [torch.randn(width, w.shape[0]) for w, _ in layers]
    h = torch.randn(width, H)
    for _ in range(tokens):
        for x, (w, b) in zip(inputs, layers):
            gates = torch.addmm(b, x, w)
            if everything:
                torch.sigmoid(gates), torch.tanh(gates)
        if everything:
            OUTPUT(h).log_softmax(-1).reshape(-1).topk(width)


def rnnkit_beam(model: LanguageModel, tokens: int, width: int = 32) -> None:
    beam_search(model.step, model.initial_state(1), torch.tensor([1]), width, tokens)


def rnnkit_generate(model: LanguageModel, tokens: int, rows: int = 1, steps: bool = False) -> None:
    """LanguageModel.generate; ``steps``: step by step (the whole-loop path's batch limit set to 0)."""
    limit = GENERATION_LOOP_BATCH["cpu"]
    GENERATION_LOOP_BATCH["cpu"] = 0 if steps else limit
    try:
        model.generate(torch.ones(rows, 1, dtype=torch.long), tokens, temperature=0.8,
                       generator=torch.Generator().manual_seed(0))
    finally:
        GENERATION_LOOP_BATCH["cpu"] = limit


def tokens_per_second(run, tokens: int) -> float:
    with torch.no_grad():
        run(10)  # warm-up
        t0 = time.perf_counter()
        run(tokens)
        return tokens / (time.perf_counter() - t0)


torch.manual_seed(0)
EMBEDDING, LSTM, OUTPUT = torch.nn.Embedding(V, E), torch.nn.LSTM(E, H, LAYERS, batch_first=True), torch.nn.Linear(H, V)


def layer_steps(rounds: int, out: Path) -> None:
    """One layer's step: rnnkit.inference_step vs torch's op, per mode and batch size."""
    from rnnkit.dispatch import NativeOp
    from rnnkit.inference_step import compiled_step

    rows = []
    print(f"one step of one layer ({H} units, input {H}), microseconds, medians of {rounds} rounds of 200 calls")
    print(f"  {'cell':<9}{'rows':>6}{'rnnkit':>9}{'torch op':>10}{'ratio':>7}")
    for mode, op in (("LSTM", torch.nn.LSTM), ("GRU", torch.nn.GRU), ("RNN_TANH", torch.nn.RNN)):
        module = op(H, H, batch_first=True)
        native = NativeOp(mode, (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0))
        for B in (1, 8, 16, 32, 64, 128, 256):
            x, h, c = torch.randn(B, H), torch.randn(B, H), torch.randn(B, H)
            state = (h, c) if mode == "LSTM" else (h,)
            runs = {"rnnkit": lambda: compiled_step([native], x, [state]),
                    "torch op": lambda: module(x[:, None], (h[None], c[None]) if mode == "LSTM" else h[None])}
            times: dict[str, list[float]] = {name: [] for name in runs}
            with torch.no_grad():
                for _ in range(rounds):
                    for name, run in runs.items():
                        run()
                        t0 = time.perf_counter()
                        for _ in range(200):
                            run()
                        times[name].append((time.perf_counter() - t0) / 200 * 1e6)
            mine, theirs = (sorted(times[k])[rounds // 2] for k in runs)
            print(f"  {mode:<9}{B:>6}{mine:>9.0f}{theirs:>10.0f}{mine / theirs:>7.2f}")
            rows.append({"mode": mode, "rows": B, "rnnkit_us": mine, "torch_op_us": theirs})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": rounds,
                               "hidden": H, "results": rows}, indent=2))
    print(f"wrote {out}")


def batch_sizes(model: LanguageModel, rounds: int, tokens: int, out: Path) -> None:
    """Sampling at 1-32 rows: the whole loop compiled vs step by step, tokens/s over all rows."""
    rows = []
    print(f"sampling {tokens} tokens per row, tokens/s over all rows, medians of {rounds} rounds")
    print(f"  {'rows':>5}{'whole loop':>12}{'steps':>10}{'ratio':>7}")
    for B in (1, 2, 4, 8, 16, 32):
        runs = {"whole loop": lambda n: rnnkit_generate(model, n, B, steps=False),
                "steps": lambda n: rnnkit_generate(model, n, B, steps=True)}
        speeds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                speeds[name].append(B * tokens_per_second(run, tokens))
        whole, steps = (sorted(speeds[k])[rounds // 2] for k in runs)
        print(f"  {B:>5}{whole:>12.0f}{steps:>10.0f}{whole / steps:>7.2f}")
        rows.append({"rows": B, "whole_loop_tokens_per_s": whole, "steps_tokens_per_s": steps})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": rounds,
                               "tokens": tokens, "results": rows}, indent=2))
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "generation-cpu.json")
    ap.add_argument("--layer", action="store_true", help="only one layer's step, rnnkit vs torch's op, by batch size")
    ap.add_argument("--batches", action="store_true", help="only sampling by batch size, whole loop vs step by step")
    args = ap.parse_args()
    if args.layer:
        layer_steps(args.rounds, args.json.with_name(args.json.name.replace("generation", "generation-layer")))
        return
    auto = LanguageModel(LanguageModelConfig(vocab_size=V, embedding_size=E,
                                             rnn={"cell": "lstm", "hidden_size": H, "num_layers": LAYERS})).eval()
    native = LanguageModel(LanguageModelConfig(vocab_size=V, embedding_size=E,
                                               rnn={"cell": "lstm", "hidden_size": H, "num_layers": LAYERS,
                                                    "implementation": "native"})).eval()
    if args.batches:
        batch_sizes(auto, args.rounds, args.tokens, args.json.with_name(args.json.name.replace("generation",
                                                                                              "generation-batches")))
        return
    runs = {"torch loop": torch_loop, "rnnkit": lambda n: rnnkit_generate(auto, n),
            "rnnkit, steps": lambda n: rnnkit_generate(auto, n, steps=True),
            "rnnkit, native": lambda n: rnnkit_generate(native, n)}
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            speeds[name].append(tokens_per_second(run, args.tokens))
    report(speeds, "torch loop", "tokens/s",
           f"generation at batch 1: {LAYERS} x {H} LSTM, embeddings {E}, {V} symbols, {args.tokens} tokens; "
           f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.rounds} rounds",
           args.json, {"rounds": args.rounds, "tokens": args.tokens, "threads": torch.get_num_threads()})
    runs = {"torch beam loop": torch_beam_loop, "rnnkit": lambda n: rnnkit_beam(auto, n),
            "floor: products only": lambda n: beam_floor(n, everything=False),
            "floor: + activations, output, top-k": beam_floor}
    speeds = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            speeds[name].append(tokens_per_second(run, args.tokens))
    print()
    report(speeds, "torch beam loop", "tokens/s",
           f"beam search, 32 beams, batch 1, the same LM, {args.tokens} steps; medians of {args.rounds} rounds",
           args.json.with_name(args.json.name.replace("generation", "generation-beam")),
           {"rounds": args.rounds, "tokens": args.tokens, "beams": 32, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
