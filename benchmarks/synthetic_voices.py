"""Synthetic training voices for the digits task: the ten digit words spoken by text-to-speech
engines, written as FSDD-named recordings for ``rnnkit train digits --extra-voices DIR``.

Eleven voices: flite's four CMU voices (kal16, awb, rms, slt) and espeak-ng's seven English
accents (American, British, Scottish, Lancaster, received pronunciation, West Midlands,
Caribbean), each recording with its own random rate and pitch (espeak-ng: also one of its seven
male variants), trimmed of silence as FSDD's recordings are, resampled to 8 kHz. Needs the
`flite` and `espeak-ng` programs (Debian: ``apt-get install flite espeak-ng``).

    python benchmarks/synthetic_voices.py runs/synthetic-voices            # 50 per digit and voice
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from rnnkit.audio import read_audio
from rnnkit.data.digits import RATE, WORDS

FLITE = {"flitekal": "kal16", "fliteawb": "awb", "fliterms": "rms", "fliteslt": "slt"}
ESPEAK = {"espeakus": "en-us", "espeakgb": "en-gb", "espeakscotland": "en-gb-scotland",
          "espeaklancaster": "en-gb-x-gbclan", "espeakrp": "en-gb-x-rp", "espeakmidlands": "en-gb-x-gbcwmd",
          "espeakcaribbean": "en-029"}


def command(voice: str, word: str, out: Path, rng: np.random.Generator) -> list[str]:
    """The engine's command line that says ``word`` into ``out`` at a random rate and pitch."""
    if voice in FLITE:
        return ["flite", "-voice", FLITE[voice], "--setf", f"duration_stretch={rng.uniform(0.8, 1.25):.3f}",
                "--setf", f"int_f0_target_mean={rng.uniform(*((150, 220) if voice == 'fliteslt' else (85, 150))):.0f}",
                "-t", word, "-o", str(out)]
    return ["espeak-ng", "-v", f"{ESPEAK[voice]}+m{int(rng.integers(1, 8))}", "-s", str(int(rng.integers(120, 200))),
            "-p", str(int(rng.integers(20, 70))), "-w", str(out), word]


def synthesise(job: int, voice: str, digit: int, index: int, folder: Path, seed: int) -> None:
    """Recording ``job``: ``voice`` saying ``digit``, its ``index``-th repetition, into ``folder``."""
    rng = np.random.default_rng([seed, job])
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(command(voice, WORDS[digit], raw, rng), check=True, capture_output=True)
        wave, _ = read_audio(raw, RATE)
    wave, _ = librosa.effects.trim(wave, top_db=35)
    wave = wave * np.float32(10 ** (rng.uniform(-35, -20) / 20) / max(float(np.sqrt(np.mean(wave ** 2))), 1e-9))
    sf.write(folder / f"{digit}_{voice}_{index}.wav", np.clip(wave, -1, 1), RATE, subtype="PCM_16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--per-digit", type=int, default=50, help="recordings per digit and voice")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    for program in ("flite", "espeak-ng"):
        if shutil.which(program) is None:
            raise SystemExit(f"synthetic_voices: {program} is not installed (Debian: apt-get install flite espeak-ng)")
    args.folder.mkdir(parents=True, exist_ok=True)
    jobs = [(v, d, i) for v in [*FLITE, *ESPEAK] for d in range(10) for i in range(args.per_digit)]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda j: synthesise(j[0], *j[1], args.folder, args.seed), enumerate(jobs)))
    print(f"wrote {len(jobs)} recordings of {len(FLITE) + len(ESPEAK)} voices to {args.folder}")


if __name__ == "__main__":
    main()
