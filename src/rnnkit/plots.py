"""Figures: learning curves of a run, the gradient-norm analysis, CTC alignments of a recording,
confusion matrices, attention maps of a translation.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``) and written
straight to PNG, so importing this module never touches pyplot or switches the backend of a
notebook that imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rnnkit.run_dir import RunDir, read_metrics

__all__ = ["learning_curves", "gradient_norms", "records", "ctc_alignment", "confusion_matrix", "attention_map"]

STEP = "optimiser step"


def records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of a run's metrics.jsonl (see :func:`rnnkit.run_dir.read_metrics`)."""
    path = RunDir(Path(run_dir)).metrics
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no metrics.jsonl (is this a run directory?)")
    return read_metrics(path)


def _curve(ax: Axes, rows: list[dict[str, Any]], key: str, label: str | None = None, **style: Any) -> None:
    """``key`` against the step; markers when there are few points, so a short run still shows them."""
    points = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if not points:
        return
    xs, ys = zip(*points)
    few = len(points) < 40
    ax.plot(xs, ys, "o-" if few else "-", ms=3, lw=1.2 if few else 1, label=label, **style)


def _log_scale_if_wide(ax: Axes, values: list[float]) -> None:
    """A log axis only when the values span more than a factor of 10 (never for one point)."""
    positive = [v for v in values if v is not None and v > 0]
    if len(positive) > 1 and max(positive) > 10 * min(positive):
        ax.set_yscale("log")


def learning_curves(run_dir: str | Path) -> Path:
    """plots/learning_curves.png: train and dev loss, dev perplexity (language models), accuracy
    (models that report it), gradient norm before clipping, learning rate."""
    run = RunDir(Path(run_dir))
    rows = records(run.path)
    train = [r for r in rows if r["split"] == "train"]
    valid = [r for r in rows if r["split"] == "valid"]
    if not train and not valid:
        raise ValueError(f"{run.metrics} has no records yet")
    panels = ["loss"]
    if any("ppl" in r for r in valid):
        panels.append("ppl")
    if any("accuracy" in r for r in rows):
        panels.append("accuracy")
    panels += ["grad_norm", "lr"] if train else []
    fig = Figure(figsize=(4.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        if panel == "loss":
            _curve(ax, train, "loss", "train")
            _curve(ax, valid, "loss", "dev")
            ax.set(title="loss", ylabel="mean loss per token or step")
            ax.legend()
        elif panel == "ppl":
            _curve(ax, valid, "ppl", color="C1")
            _log_scale_if_wide(ax, [r.get("ppl") for r in valid])
            ax.set(title="dev perplexity", ylabel="perplexity (exp of nats per token)")
        elif panel == "accuracy":
            _curve(ax, train, "accuracy", "train")
            _curve(ax, valid, "accuracy", "dev")
            ax.set(title="accuracy", ylabel="fraction right", ylim=(-0.02, 1.02))
            ax.legend()
        elif panel == "grad_norm":
            _curve(ax, train, "grad_norm", color="C2")
            _log_scale_if_wide(ax, [r.get("grad_norm") for r in train])
            ax.set(title="gradient norm (before clipping)", ylabel="global L2 norm")
        else:
            lrs = [r["lr"] for r in train]
            _curve(ax, train, "lr", color="C3")
            constant = len(set(lrs)) == 1
            ax.set(title=f"learning rate (constant {lrs[0]:.3g})" if constant else "learning rate",
                   ylabel="learning rate")
            if constant:
                ax.set_ylim(0, 2 * lrs[0] if lrs[0] > 0 else 1)
        ax.set_xlabel(STEP)
    fig.tight_layout()
    out = run.plots / "learning_curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return out


def gradient_norms(results: dict[str, dict[str, list[float]]], out: Path, title: str,
                   notes: dict[str, str] | None = None) -> Path:
    """One panel per phase ("at initialisation", "after training"): ||dL/dh_t|| against the
    distance T - t from the loss, one line per cell, log scale; ``notes`` (per cell, e.g. the
    trained accuracy) join the cell's name in the last panel's legend."""
    phases = list(next(iter(results.values())).keys())
    fig = Figure(figsize=(5.2 * len(phases), 3.8))
    axes = fig.subplots(1, len(phases), sharey=True, squeeze=False)[0]
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
    return out


def ctc_alignment(view: Any, out: Path, title: str = "") -> Path:
    """The course's CTC alignment pictures for one recording (a :class:`rnnkit.speech.AlignmentView`),
    on one time axis in seconds: (1) the log-mel spectrogram; (2) the posteriors y_t(c), each
    symbol a line ("peaky": mostly blank, a spike per symbol), the blank in grey apart;
    (3) gamma(t, s) from forward-backward over the blank-extended target, with the Viterbi
    path drawn on it; (4) the Viterbi segments of the symbols, and the words. Dashed lines mark
    the word boundaries in every panel."""
    fig = Figure(figsize=(11, 9))
    ax = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [1.2, 1.1, 1.6, 0.6]})
    T, S = len(view.posteriors), len(view.target)
    dt, end = view.frame_seconds, len(view.posteriors) * view.frame_seconds
    f = view.features.T
    ax[0].imshow(f, origin="lower", aspect="auto", cmap="magma",
                 extent=(0, len(view.features) * view.feature_seconds, 0, f.shape[0]))
    ax[0].set_ylabel("mel band")
    ax[0].set_title(title or "log-mel features (normalised)", fontsize=10)

    times = (np.arange(T) + 0.5) * dt
    ax[1].plot(times, view.posteriors[:, view.blank], color="0.6", lw=1.2, ls="--", label="blank")
    colours = _symbol_colours(view.tokens, view.blank)
    for c, colour in colours.items():
        y = view.posteriors[:, c]
        if y.max() < 0.2:
            continue
        ax[1].plot(times, y, color=colour, lw=1.2)
        peak = int(y.argmax())
        ax[1].text(times[peak], min(y[peak] + 0.03, 1.02), view.tokens[c].replace(" ", "␣"), color=colour,
                   ha="center", va="bottom", fontsize=8)
    ax[1].set(ylabel="y_t(c)", ylim=(0, 1.12))
    ax[1].legend(loc="upper right", fontsize=8)

    ax[2].imshow(view.gamma.T, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                 extent=(0, end, -0.5, 2 * S + 0.5))
    ax[2].step(times, view.positions, where="mid", color="tab:red", lw=1.2, label="Viterbi path")
    labels = ["·" if s % 2 == 0 else view.tokens[view.target[s // 2]].replace(" ", "␣") for s in range(2 * S + 1)]
    ax[2].set_yticks(range(2 * S + 1), labels, fontsize=7 if S < 30 else 5)
    ax[2].set_ylabel("target position s\n(· = blank)")
    ax[2].legend(loc="upper left", fontsize=8)
    ax[2].set_title("gamma(t, s) = alpha beta / (y P): forward-backward occupancy", fontsize=9)

    positions = np.asarray(view.positions)
    for i, symbol in enumerate(view.target):
        frames = np.nonzero(positions == 2 * i + 1)[0]
        if len(frames):
            start, stop = frames[0] * dt, (frames[-1] + 1) * dt
            ax[3].axvspan(start, stop, ymin=0.55, ymax=0.95, color=colours.get(symbol, "0.5"), alpha=0.6)
            ax[3].text((start + stop) / 2, 0.75, view.tokens[symbol].replace(" ", "␣"), ha="center", va="center",
                       fontsize=8)
    for w in view.words:
        ax[3].text((w.start + w.end) / 2, 0.25, w.text, ha="center", va="center", fontsize=10, weight="bold")
        for a in ax:
            for x in (w.start, w.end):
                a.axvline(x, color="tab:blue", lw=0.8, ls="--", alpha=0.7)
    ax[3].set(ylim=(0, 1), yticks=[], xlabel="time (s)", xlim=(0, end))
    ax[3].set_ylabel("Viterbi", rotation=0, ha="right", va="center")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return out


def confusion_matrix(counts: Any, labels: list[str], out: Path, title: str = "") -> Path:
    """counts[i, j]: items of gold class i predicted as j. Each row is shown as fractions of its
    gold class (so rare classes are as visible as frequent ones), the diagonal apart: the
    errors get the whole colour scale. Cells hold the counts of the errors."""
    counts = np.asarray(counts, dtype=np.int64)
    K = len(labels)
    if counts.shape != (K, K):
        raise ValueError(f"counts must be ({K}, {K}) for {K} labels. Received: {counts.shape}")
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    errors = np.where(np.eye(K, dtype=bool), np.nan, rows)
    fig = Figure(figsize=(1.0 + 0.5 * K, 0.5 + 0.45 * K))
    ax = fig.subplots()
    shown = ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(float(np.nanmax(errors)) if K > 1 else 0, 1e-3))
    for i in range(K):
        ax.text(i, i, f"{rows[i, i]:.0%}" if counts[i].sum() else "-", ha="center", va="center", fontsize=7,
                color="tab:green", weight="bold")
        for j in range(K):
            if i != j and counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rows[i, j] > 0.6 * np.nanmax(errors) else "black")
    ax.set_xticks(range(K), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(K), [f"{name} ({counts[k].sum()})" for k, name in enumerate(labels)], fontsize=8)
    ax.set(xlabel="predicted", ylabel="gold (items)")
    ax.set_title(title or "confusions (rows: gold)", fontsize=10)
    fig.colorbar(shown, ax=ax, fraction=0.04, label="fraction of the gold row (errors)")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def attention_map(weights: Any, source: list[str], target: list[str], out: Path, title: str = "") -> Path:
    """weights[t, s] = alpha_t(s): how much output piece t (a row; the last row is the end
    symbol's) attends to source piece s (a column). Each row sums to 1."""
    weights = np.asarray(weights, dtype=np.float64)
    rows = [*target, "</s>"]
    if weights.shape != (len(rows), len(source)):
        raise ValueError(f"weights must be ({len(rows)}, {len(source)}): the target pieces and the end by the source "
                         f"pieces. Received: {weights.shape}")
    fig = Figure(figsize=(1.5 + 0.45 * len(source), 1.2 + 0.35 * len(rows)))
    ax = fig.subplots()
    shown = ax.imshow(weights, cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    ax.set(xlabel="source pieces", ylabel="output pieces")
    ax.set_title(title or "attention weights alpha_t(s)", fontsize=10)
    fig.colorbar(shown, ax=ax, fraction=0.04)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def memory_weightings(inputs: Any, outputs: Any, write: Any, read: Any, out: Path, title: str = "") -> Path:
    """A neural Turing machine on one sequence, as Graves et al. (2014) draw it: the inputs
    (T, F) and the outputs (S, D) of the answer steps above, the write and read weightings
    w_t(i) (T, N) below, time across and memory rows (those any head visits) down."""
    inputs, outputs = np.asarray(inputs, np.float64), np.asarray(outputs, np.float64)
    write, read = np.asarray(write, np.float64), np.asarray(read, np.float64)
    if write.shape != read.shape or write.shape[0] != len(inputs) or len(outputs) > len(inputs):
        raise ValueError(f"write and read weightings must both be (steps {len(inputs)}, rows), and the outputs at "
                         f"most {len(inputs)} steps. Received: {write.shape}, {read.shape}, {outputs.shape}")
    rows = _visited_rows((np.maximum(write, read) > 0.05).any(0))
    T = len(inputs)
    answer = np.full((T, outputs.shape[1]), np.nan)
    answer[T - len(outputs):] = outputs
    fig = Figure(figsize=(2 + 0.12 * T, 6.5))
    axes = fig.subplots(2, 2, sharex=True, height_ratios=[1, 3])
    panels = [(inputs, "inputs x_t"), (answer, "outputs y_t"), (write[:, rows], "write weightings w_t"),
              (read[:, rows], "read weightings w_t")]
    for ax, (values, name) in zip(axes.flat, panels):
        ax.imshow(values.T, cmap="Greys", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.yaxis.get_major_locator().set_params(integer=True)
    for ax in axes[1]:  # memory rows in circular order: the labels are the rows' numbers
        ticks = range(0, len(rows), max(1, len(rows) // 8))
        ax.set_yticks(ticks, [str(rows[k]) for k in ticks])
    for ax in axes[1]:
        ax.set(xlabel="time step t", ylabel="memory row i")
    fig.suptitle(title or "neural Turing machine weightings", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def _visited_rows(visited: Any, margin: int = 2) -> list[int]:
    """The memory rows to draw, in circular order: the shortest arc of rows that holds every
    visited one (heads shift modulo N, so a path may wrap from the last row to the first),
    plus ``margin`` rows each side; every row when none is visited."""
    N = len(visited)
    hits = np.flatnonzero(visited)
    if len(hits) == 0:
        return list(range(N))
    gaps = np.diff(np.r_[hits, hits[0] + N])  # from each visited row to the next, circularly
    start = hits[(int(gaps.argmax()) + 1) % len(hits)]  # the row after the widest unvisited gap
    span = N - int(gaps.max()) + 1
    count = min(N, span + 2 * margin)
    return [int((start - margin + k) % N) for k in range(count)]


def _symbol_colours(tokens: list[str], blank: int) -> dict[int, Any]:
    """A distinct colour per non-blank symbol."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    symbols = [i for i in range(len(tokens)) if i != blank]
    return {c: cmap(k % 20) for k, c in enumerate(symbols)}
