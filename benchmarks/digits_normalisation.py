"""Speaker normalisation at test time alone: a speech run trained with its features normalised
per utterance, scored on its test split twice — features normalised per utterance (as it was
trained) and over each speaker's test utterances (their mean and std, unlabelled: speaker
CMVN) — by `rnnkit evaluate RUN --split test --normalise utterance|speaker`, one thread. For a
held-out voice this asks how much of the unseen voice's errors a per-speaker normalisation
removes without retraining.

    python benchmarks/digits_normalisation.py RUN [RUN ...]     # runs of `rnnkit train digits`

Writes benchmarks/results/digits-normalisation.json (or --json PATH).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from task_runs import evaluate, write_results

from rnnkit.speech import DECODERS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="runs of `rnnkit train digits`")
    ap.add_argument("--split", choices=("test", "valid"), default="test")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    data = ["--data-dir", args.data_dir] if args.data_dir else []
    print(f"{'run':<52}{'normalised':>12}" + "".join(f"{name:>12}" for name in DECODERS))
    rows = []
    for run in args.runs:
        for normalise in ("utterance", "speaker"):
            scores = evaluate([str(run)], args.split, ["--normalise", normalise, "--device", "cpu", *data])
            rows.append({"run": str(run), **scores})
            print(f"{str(run)[-52:]:<52}{normalise:>12}" + "".join(f"{scores[f'wer_{n}']:>12.2%}" for n in DECODERS),
                  flush=True)
    write_results(args.json, "digits-normalisation", {"split": args.split, "rows": rows})


if __name__ == "__main__":
    main()
