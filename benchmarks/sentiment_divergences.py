"""The course's question, measured: train a sequence classifier with the divergence at the final
step only, or at every step (uniform weights, or later steps counting more), on the same budget
and several seeds, and compare dev and test accuracy on SST (mean and standard deviation).

Each run is ``rnnkit train sentiment --divergence D --seed S`` plus the options given after
``--``, then ``rnnkit evaluate RUN --split test``; runs go ``--jobs`` at a time, one torch
thread each.

    python benchmarks/sentiment_divergences.py                          # 3 seeds, fine-grained
    python benchmarks/sentiment_divergences.py --seeds 0 1 2 -- --labels binary

Writes benchmarks/results/sentiment-divergences.json (or --json PATH) and prints the table.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from task_runs import runs_parser, train_and_test, write_results

DIVERGENCES = ("final", "every", "every-linear")


def one_run(divergence: str, seed: int, runs: Path, extra: list[str]) -> dict:
    done = train_and_test("sentiment", ["--divergence", divergence, "--seed", str(seed), *extra],
                          runs / f"{divergence}-seed{seed}")
    valid, test = done["valid"]["accuracy"], done["test"]["accuracy"]
    print(f"  {divergence:<13} seed {seed}: dev {valid:.2%}, test {test:.2%} ({done['minutes']:.1f} min)", flush=True)
    return {"divergence": divergence, "seed": seed, "run": done["run"], "minutes": done["minutes"],
            "valid_accuracy": valid, "test_accuracy": test}


def main() -> None:
    ap = runs_parser(__doc__, "runs/sentiment-divergences", "after --: options for every `rnnkit train sentiment`")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    jobs = [(d, s) for s in args.seeds for d in DIVERGENCES]
    print(f"{len(jobs)} runs, {args.jobs} at a time; options: {' '.join(args.extra) or '(defaults)'}")
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda job: one_run(*job, args.runs, args.extra), jobs))
    print(f"\n{'divergence':<14}{'dev accuracy':>18}{'test accuracy':>18}{'minutes':>9}")
    summary = {}
    for d in DIVERGENCES:
        mine = [r for r in rows if r["divergence"] == d]
        stats = {k: (statistics.mean(r[k] for r in mine), statistics.stdev(r[k] for r in mine) if len(mine) > 1 else 0.0)
                 for k in ("valid_accuracy", "test_accuracy", "minutes")}
        summary[d] = stats
        (vm, vs), (tm, ts), (mm, _) = stats["valid_accuracy"], stats["test_accuracy"], stats["minutes"]
        print(f"{d:<14}{100 * vm:>11.2f} ± {100 * vs:.2f}{100 * tm:>11.2f} ± {100 * ts:.2f}{mm:>9.1f}")
    write_results(args.json, "sentiment-divergences",
                  {"options": args.extra, "seeds": args.seeds, "runs": rows, "summary": summary})


if __name__ == "__main__":
    main()
