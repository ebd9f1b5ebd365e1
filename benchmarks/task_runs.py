"""One run of a task as a user makes it: ``rnnkit train TASK ...`` into its own folder, then
``rnnkit evaluate RUN --split test --json``, each a subprocess on one torch thread (so several
run side by side on the cores), for the benchmarks that compare whole training runs."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
RNNKIT = [sys.executable, "-m", "rnnkit"]


def train_and_test(task: str, options: list[str], folder: Path) -> dict[str, Any]:
    """Train ``task`` with ``options`` under ``folder`` (which must hold no run yet), then score
    its best checkpoint on the test split: {"run", "minutes" (training), "valid" (the run's
    results.json), "test" (evaluate's scores)}."""
    started = time.time()
    subprocess.run([*RNNKIT, "train", task, *options, "--runs", str(folder), "--no-progress"], check=True,
                   env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    minutes = (time.time() - started) / 60
    (run,) = folder.iterdir()
    valid = json.loads((run / "results.json").read_text())["valid"]
    return {"run": str(run), "minutes": minutes, "valid": valid, "test": evaluate([str(run)], "test")}


def evaluate(runs: list[str], split: str, options: list[str] | None = None) -> dict[str, Any]:
    """``rnnkit evaluate RUNS[0] --split SPLIT --json [OPTIONS]`` on one thread; more runs are
    scored as an ensemble (``--with RUNS[1:]``)."""
    ensemble = ["--with", *runs[1:]] if len(runs) > 1 else []
    return json.loads(subprocess.run([*RNNKIT, "evaluate", runs[0], *ensemble, "--split", split, "--json",
                                      "--no-progress", *(options or [])], check=True, env=ONE_THREAD,
                                     capture_output=True, text=True).stdout)


def runs_parser(doc: str, runs: str, extra_help: str) -> argparse.ArgumentParser:
    """The options of every benchmark made of whole runs: ``--jobs``, ``--runs`` (their folder,
    default ``runs``), ``--json`` and, after ``--``, options for every training run (``extra``)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    ap.add_argument("--runs", type=Path, default=Path(runs))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("extra", nargs="*", help=extra_help)
    return ap


def write_results(path: Path | None, name: str, record: dict[str, Any]) -> None:
    """Write ``record`` as JSON to ``path``, or benchmarks/results/NAME.json, and say where."""
    out = path or Path(__file__).parent / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")
