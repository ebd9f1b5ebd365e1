"""Speed of `rnnkit transcribe` on one CPU thread: the real-time factor of a trained speech run.

Each recording is transcribed on its own, the whole way (log-mel features, the recognizer,
the decoder, the Viterbi timing of the words), as ``rnnkit transcribe`` does, on the run's
validation utterances (connected digits, 1-7 per utterance). The peer is the clock: the
real-time factor is processing time / audio duration, and "x real time" its inverse.

    python benchmarks/transcribe.py RUN                 # e.g. runs/digits-...; 1 thread
    python benchmarks/transcribe.py RUN --threads 2

Writes benchmarks/results/transcribe-cpu.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import rnnkit
from rnnkit.run_dir import RunDir
from rnnkit.speech import load_transcriber
from rnnkit.tasks.common import run_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run of `rnnkit train digits`")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--utterances", type=int, default=40)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from rnnkit.tasks.digits import utterances

    task = argparse.Namespace(**{**run_task(RunDir(args.run))["args"], "data_dir": args.data_dir})
    utts = utterances("valid", task)[: args.utterances]
    audio = sum(len(u.wave) for u in utts) / 8000
    rows = []
    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, {args.threads} thread(s); {len(utts)} utterances, "
          f"{audio:.1f} s of audio, one at a time")
    print(f"{'decoder':<28}{'ms/utt':>9}{'RTF':>9}{'x real time':>13}")
    for name, options in (("greedy", {"beam": 1}), ("beam 16", {"beam": 16}),
                          ("beam 16 + lexicon + 3-gram", {"beam": 16, "lexicon": "", "lm": ""})):
        transcriber = load_transcriber(args.run, "cpu", **options)
        transcriber([utts[0].wave])  # warm-up: numba kernels, first allocations
        started = time.perf_counter()
        for u in utts:
            transcriber([u.wave])
        seconds = time.perf_counter() - started
        rows.append({"decoder": name, "ms_per_utterance": 1000 * seconds / len(utts), "rtf": seconds / audio,
                     "times_real_time": audio / seconds})
        r = rows[-1]
        print(f"{name:<28}{r['ms_per_utterance']:>9.1f}{r['rtf']:>9.4f}{r['times_real_time']:>12.0f}x")
    print("target: faster than 100x real time on one core")
    out = args.json or Path(__file__).parent / "results" / "transcribe-cpu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "utterances": len(utts), "audio_seconds": audio,
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
