"""The package as a user gets it: a wheel that builds without network and installs in a clean
virtual environment, with its license, type marker and console script."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import rnnkit

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_builds_and_installs_in_a_clean_venv(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("rnnkit-*.whl")
    assert wheel.name.startswith(f"rnnkit-{rnnkit.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    assert "rnnkit/py.typed" in names and "rnnkit/cli.py" in names and "rnnkit/demo.html" in names
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Provides-Extra: lm" in metadata and "Classifier: Typing :: Typed" in metadata
    venv.create(tmp_path / "env", with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # no torch in this environment: the version and the help answer without it
    version = subprocess.run([str(tmp_path / "env" / "bin" / "rnnkit"), "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"rnnkit {rnnkit.__version__}"
