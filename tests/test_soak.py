"""Kill and resume, twenty times, at random points (half of them inside checkpoint writes): the
run ends bit for bit where an uninterrupted run ends, metrics.jsonl and best/ included.

Outside the default suite (about two minutes): make test-slow, or pytest -m slow tests/test_soak.py
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rnnkit.run_dir import RunDir

pytestmark = pytest.mark.slow

JOB = Path(__file__).with_name("train_job.py")
STEPS = 300
#: functions of rnnkit.train.checkpoint called while a checkpoint (or best/) is written
PHASES = ("save_file", "write_json_atomic", "write_manifest", "seal", "fsync_dir", "copy_as", "prune_checkpoints")
TIMING = ("units_per_s", "eval_seconds")


def _start(run: Path, *extra: str) -> subprocess.Popen:
    resume = ["--resume"] if (run / "config.json").exists() else []
    return subprocess.Popen([sys.executable, str(JOB), str(run), "--steps", str(STEPS), *resume, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _records(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _kill_during_training(proc: subprocess.Popen, run: Path, rng: random.Random) -> None:
    """SIGKILL at a random moment after the session has written something (so it is training)."""
    metrics = run / "metrics.jsonl"
    size = metrics.stat().st_size if metrics.exists() else 0
    deadline = time.time() + 60
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and metrics.stat().st_size != size:
            break
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.4))
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)


def test_twenty_kills_at_random_points_resume_bit_for_bit(tmp_path):
    whole = subprocess.run([sys.executable, str(JOB), str(tmp_path / "whole"), "--steps", str(STEPS)],
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    rng = random.Random(20261124)
    run, kills, inside_writes = tmp_path / "cut", 0, 0
    while kills < 20:
        if kills % 2 == 0:
            phase = rng.choice(PHASES)
            proc = _start(run, "--die-in", f"{phase}:{rng.randint(1, 3)}")
        else:
            proc = _start(run)
            _kill_during_training(proc, run, rng)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, -signal.SIGKILL), err[-3000:]
        assert proc.returncode != 0, f"the run finished after {kills} kills; make STEPS larger"
        kills += 1
        inside_writes += kills % 2
    final = _start(run)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err[-3000:]
    assert kills == 20 and inside_writes == 10
    cut, ref = RunDir(run), RunDir(tmp_path / "whole")
    assert cut.checkpoints()[-1].path.name == ref.checkpoints()[-1].path.name == f"step-{STEPS:08d}"
    for a, b in ((cut.checkpoints()[-1].path, ref.checkpoints()[-1].path), (cut.best.path, ref.best.path)):
        ours, theirs = _weights(a), _weights(b)
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert _records(run) == _records(tmp_path / "whole")
