"""One run of a task as a user makes it: ``rnnkit train TASK ...`` into its own folder, then
``rnnkit evaluate RUN --split test --json``, each a subprocess on one torch thread (so several
run side by side on the cores), for the benchmarks that compare whole training runs."""

from __future__ import annotations

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
    test = json.loads(subprocess.run([*RNNKIT, "evaluate", str(run), "--split", "test", "--json", "--no-progress"],
                                     check=True, env=ONE_THREAD, capture_output=True, text=True).stdout)
    return {"run": str(run), "minutes": minutes, "valid": valid, "test": test}
