"""Figures: learning curves of a run, and the gradient-norm analysis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

from rnnkit.run_dir import RunDir

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    path = RunDir(Path(run_dir)).metrics
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl (is this a run directory?)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def learning_curves(run_dir: str | Path) -> Path:
    """plots/learning_curves.png: train and dev loss (and perplexity), gradient norm, learning rate."""
    run = RunDir(Path(run_dir))
    records = read_metrics(run.path)
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    if not train and not valid:
        raise ValueError(f"{run.metrics} has no records yet")
    has_ppl = any("ppl" in r for r in valid)
    fig, axes = plt.subplots(1, 3 + has_ppl, figsize=(4.2 * (3 + has_ppl), 3.4))
    ax = axes[0]
    ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train", lw=1)
    if valid:
        ax.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", label="dev", ms=3)
    ax.set(title="loss", xlabel="step")
    ax.legend()
    i = 1
    if has_ppl:
        axes[i].plot([r["step"] for r in valid], [r["ppl"] for r in valid], "o-", ms=3)
        axes[i].set(title="dev perplexity", xlabel="step", yscale="log")
        i += 1
    axes[i].plot([r["step"] for r in train], [r["grad_norm"] for r in train], lw=1)
    axes[i].set(title="gradient norm (before clipping)", xlabel="step", yscale="log")
    axes[i + 1].plot([r["step"] for r in train], [r["lr"] for r in train], lw=1)
    axes[i + 1].set(title="learning rate", xlabel="step")
    fig.tight_layout()
    out = run.plots / "learning_curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def gradient_norms(results: dict[str, dict[str, list[float]]], out: Path, title: str,
                   notes: dict[str, str] | None = None) -> Path:
    """One panel per phase ("at initialisation", "after training"): ||dL/dh_t|| against the
    distance T - t from the loss, one line per cell, log scale; ``notes`` (per cell, e.g. the
    trained accuracy) join the cell's name in the last panel's legend."""
    phases = list(next(iter(results.values())).keys())
    fig, axes = plt.subplots(1, len(phases), figsize=(5.2 * len(phases), 3.8), sharey=True)
    for ax, phase in zip(axes, phases):
        for cell, by_phase in results.items():
            norms = by_phase[phase]
            label = f"{cell}: {notes[cell]}" if notes and cell in notes and ax is axes[-1] else cell
            ax.plot(range(len(norms)), norms, label=label, lw=1.5)
        ax.set(title=phase, xlabel="distance from the loss (steps)", yscale="log")
    axes[0].set_ylabel("mean ||dL/dh_t||")
    axes[-1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
