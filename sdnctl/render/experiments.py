"""`sdnctl lab experiment --json FILE` results as pictures next to the JSON (matplotlib).

- FILE-loss.png: loss over time, one panel per probe stream an experiment recorded
  (`timelines`: probes lost per bin of send time, the probes sent behind them, and
  the events — edit, cut, SIGKILL, move — as vertical lines): where an outage sits
  against what caused it.
- FILE-latency.png: the distribution of every latency an experiment measured per
  run (its per-run figures in ms), one panel per experiment: each run a dot, the
  median a bar, so a slow outlier shows beside the median the table reports.

A picture is drawn only for what the results hold (no timeline: no loss plot).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOST = "#e41a1c"
SENT = "#c8c8c8"
EVENT = "#377eb8"
DOT = "#4d4d4d"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_paths(json_path: str | Path) -> tuple[Path, Path]:
    """Where the two pictures of `json_path` go: FILE-loss.png and FILE-latency.png."""
    path = Path(json_path)
    stem = path.with_suffix("")
    return (stem.with_name(stem.name + "-loss.png"), stem.with_name(stem.name + "-latency.png"))


def latencies(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """Per-run figures in ms (keys ending in `_ms`), by name, measured runs only.

    >>> latencies([{"a_ms": 3.0, "lost": 1}, {"a_ms": None}, {"a_ms": 5}])
    {'a_ms': [3.0, 5.0]}
    """
    out: dict[str, list[float]] = {}
    for run in runs:
        for key, value in run.items():
            if key.endswith("_ms") and isinstance(value, int | float) \
                    and not isinstance(value, bool):
                out.setdefault(key, []).append(float(value))
    return out


def write_experiment_plots(doc: Mapping[str, Any], json_path: str | Path) -> list[Path]:
    """Draw what `doc` (the --json document) holds next to `json_path`; the files written."""
    loss_path, latency_path = plot_paths(json_path)
    experiments = [e for e in doc.get("experiments", []) if not e.get("skipped")]
    written = []
    timelines = [(e["experiment"], name, t) for e in experiments
                 for name, t in sorted((e.get("timelines") or {}).items()) if t.get("sent")]
    if timelines:
        _draw_loss(timelines, loss_path)
        written.append(loss_path)
    measured = [(e["experiment"], lat) for e in experiments
                if (lat := latencies(e.get("runs") or []))]
    if measured:
        _draw_latency(measured, latency_path)
        written.append(latency_path)
    return written


def _draw_loss(timelines: list[tuple[str, str, dict[str, Any]]], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(len(timelines), 1, figsize=(10, 2.2 * len(timelines) + 0.6),
                             squeeze=False)
    for ax, (experiment, stream, t) in zip(axes[:, 0], timelines, strict=True):
        width = float(t["bin_s"])
        xs = [i * width for i in range(len(t["sent"]))]
        ax.bar(xs, t["sent"], width=width, align="edge", color=SENT, label="probes sent")
        ax.bar(xs, t["lost"], width=width, align="edge", color=LOST, label="probes lost")
        for when, what in t.get("events", []):
            ax.axvline(float(when), color=EVENT, linewidth=1, linestyle="--")
            ax.annotate(str(what), (float(when), 1), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color=EVENT)
        lost = sum(t["lost"])
        ax.set_title(f"{experiment}: {stream} ({lost} of {sum(t['sent'])} probes lost)",
                     fontsize=9, loc="left")
        ax.set_ylabel(f"per {width * 1000:.0f} ms", fontsize=8)
        ax.set_xlim(0, max(xs[-1] + width, 0.1))
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("seconds since the stream started")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _draw_latency(measured: list[tuple[str, dict[str, list[float]]]], path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(len(measured), 1, squeeze=False,
                             figsize=(10, 1.2 + sum(0.45 * len(lat) + 0.5 for _, lat in measured)),
                             gridspec_kw={"height_ratios": [len(lat) + 1 for _, lat in measured]})
    for ax, (experiment, lat) in zip(axes[:, 0], measured, strict=True):
        names = sorted(lat)
        for row, name in enumerate(names):
            values = lat[name]
            ax.scatter(values, [row] * len(values), color=DOT, s=14, zorder=3)
            mid = statistics.median(values)
            ax.plot([mid, mid], [row - 0.3, row + 0.3], color=LOST, linewidth=2, zorder=2)
        ax.set_yticks(range(len(names)), [n.removesuffix("_ms") for n in names], fontsize=7)
        ax.set_ylim(-0.7, len(names) - 0.3)
        ax.set_title(f"{experiment}: per run (dots), median (bar)", fontsize=9, loc="left")
        ax.set_xlim(left=0)
        ax.grid(axis="x", color="#eeeeee")
        ax.tick_params(axis="x", labelsize=7)
    axes[-1, 0].set_xlabel("ms")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
