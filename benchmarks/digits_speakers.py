"""Speaker-independent speech recognition, measured on every voice: for each FSDD speaker,
``rnnkit train digits --split speaker:NAME`` (trained on the five others, never hearing NAME),
then ``rnnkit evaluate RUN --split test``; prints the test WER of each decoder per held-out
speaker, and the mean over speakers. Runs go ``--jobs`` at a time, one torch thread each
(a run takes about 30 minutes on one thread here, so the six take about 1.5 hours on 2 cores).

    python benchmarks/digits_speakers.py                                # all six, the task's recipe
    python benchmarks/digits_speakers.py --speakers george nicolas -- --spec-augment 2

Writes benchmarks/results/digits-speakers.json (or --json PATH).
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor

from task_runs import runs_parser, train_and_test, write_results

from rnnkit.data.digits import SPEAKERS
from rnnkit.speech import DECODERS


def main() -> None:
    ap = runs_parser(__doc__, "runs/digits-speakers", "after --: options for every `rnnkit train digits`")
    ap.add_argument("--speakers", nargs="+", choices=SPEAKERS, default=list(SPEAKERS))
    args = ap.parse_args()
    print(f"{len(args.speakers)} runs, {args.jobs} at a time; options: {' '.join(args.extra) or '(the recipe)'}")

    def one(speaker: str) -> dict:
        done = train_and_test("digits", ["--split", f"speaker:{speaker}", *args.extra], args.runs / speaker)
        print(f"  {speaker:<9} test WER with the lexicon {done['test']['wer_lexicon']:.2%} "
              f"({done['minutes']:.1f} min)", flush=True)
        return {"speaker": speaker, **done}

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, args.speakers))
    print(f"\n{'held out':<10}" + "".join(f"{name:>14}" for name in DECODERS) + f"{'minutes':>9}")
    for r in rows:
        print(f"{r['speaker']:<10}" + "".join(f"{r['test'][f'wer_{name}']:>14.2%}" for name in DECODERS)
              + f"{r['minutes']:>9.1f}")
    mean = {name: statistics.mean(r["test"][f"wer_{name}"] for r in rows) for name in DECODERS}
    print(f"{'mean':<10}" + "".join(f"{mean[name]:>14.2%}" for name in DECODERS))
    write_results(args.json, "digits-speakers", {"options": args.extra, "runs": rows, "mean_wer": mean})


if __name__ == "__main__":
    main()
