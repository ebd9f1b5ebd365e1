"""The console script."""

from __future__ import annotations

import subprocess
import sys

import rnnkit
from rnnkit.cli import main


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "rnnkit.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"rnnkit {rnnkit.__version__}"
    out = subprocess.run([sys.executable, "-m", "rnnkit.cli", "info", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: rnnkit info" in out.stdout


def test_info_reports_the_path_each_layer_takes(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert f"rnnkit {rnnkit.__version__}" in text
    lines = {line.split()[0] + " " + line.split()[1]: line.split()[-1] for line in text.splitlines()[2:]}
    assert lines["LSTM layer_norm"] == "fused"
    assert text.splitlines()[2].split()[-1] == "native"  # plain LSTM on the CPU
