"""Single runs and their ensemble on SST: ``rnnkit train sentiment SEED`` for several seeds
(``--jobs`` at a time, one torch thread each), each scored alone, then the ensemble (the
runs' class probabilities averaged: ``rnnkit evaluate RUN --with RUN2 ...``) on dev and test.

    python benchmarks/sentiment_ensemble.py                       # Tree-LSTM, binary, seeds 0 1 2
    python benchmarks/sentiment_ensemble.py --seeds 0 1 2 -- --model lstm --bidirectional

Prints each run's dev and test accuracy, their mean and standard deviation, the ensemble's,
and the wall time of the whole thing (the training of every seed included). Writes
benchmarks/results/sentiment-ensemble.json (or --json PATH).
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from task_runs import evaluate, runs_parser, train_and_test, write_results


def main() -> None:
    ap = runs_parser(__doc__, "runs/sentiment-ensemble", "after --: options for every `rnnkit train sentiment` "
                                                         "(default: --model treelstm --labels binary)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    options = args.extra or ["--model", "treelstm", "--labels", "binary"]
    if len(args.seeds) < 2:
        ap.error("--seeds: an ensemble needs at least two")
    print(f"{len(args.seeds)} runs, {args.jobs} at a time; options: {' '.join(options)}", flush=True)
    started = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda s: {"seed": s, **train_and_test("sentiment", [*options, "--seed", str(s)],
                                                                    args.runs / f"seed{s}")}, args.seeds))
    trained = (time.time() - started) / 60
    runs = [r["run"] for r in rows]
    together = {split: evaluate(runs, split) for split in ("valid", "test")}
    minutes = (time.time() - started) / 60
    print(f"\n{'':<22}{'dev accuracy':>14}{'test accuracy':>15}{'minutes':>9}")
    for r in rows:
        print(f"{'seed ' + str(r['seed']):<22}{r['valid']['accuracy']:>14.2%}{r['test']['accuracy']:>15.2%}"
              f"{r['minutes']:>9.1f}")
    dev, test = ([r[k]["accuracy"] for r in rows] for k in ("valid", "test"))
    print(f"{'mean ± sd of the runs':<22}{statistics.mean(dev):>7.2%} ± {statistics.stdev(dev):.2%}"
          f"{statistics.mean(test):>8.2%} ± {statistics.stdev(test):.2%}")
    print(f"{'ensemble':<22}{together['valid']['accuracy']:>14.2%}{together['test']['accuracy']:>15.2%}")
    print(f"\nwall time: {trained:.1f} min training ({args.jobs} at a time), {minutes:.1f} min with the scoring")
    write_results(args.json, "sentiment-ensemble", {"options": options, "seeds": args.seeds, "jobs": args.jobs,
                                                    "runs": rows, "ensemble": together, "training_minutes": trained,
                                                    "minutes": minutes})


if __name__ == "__main__":
    main()
