"""What an experiment measured: named figures (medians over runs), the raw runs, notes.

Pure: building, summarising and printing results; `to_json` is what `--json` and
benchmarks/live_changes.py write.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Value = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Figure:
    name: str  # e.g. "unaffected_lost"
    value: Value
    unit: str = ""  # "packets", "ms", ...
    goal: str = ""  # what the issue asks for, e.g. "0" or "< 200"
    text: str = ""  # one line for people: what was measured

    def shown(self) -> str:
        if self.value is None:
            return "-"
        if isinstance(self.value, float):
            return f"{self.value:.1f}"
        return str(self.value)


@dataclass
class ExperimentResult:
    experiment: str
    figures: list[Figure] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # per-run raw numbers
    notes: list[str] = field(default_factory=list)
    setup: dict[str, Any] = field(default_factory=dict)  # flows, links, files used
    skipped: str | None = None  # why the experiment did not run (it is not a failure)
    # stream name -> loss over time (`loss.timeline`), drawn next to the JSON
    timelines: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, value: Value, unit: str = "", goal: str = "", text: str = "") -> None:
        self.figures.append(Figure(name, value, unit, goal, text))

    def figure(self, name: str) -> Value:
        for f in self.figures:
            if f.name == name:
                return f.value
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "skipped": self.skipped,
            "setup": self.setup,
            "figures": {f.name: {"value": f.value, "unit": f.unit, "goal": f.goal,
                                 "text": f.text} for f in self.figures},
            "runs": self.runs,
            "notes": self.notes,
            "timelines": self.timelines,
        }

    def format(self) -> str:
        lines = [f"== {self.experiment}"]
        if self.skipped:
            return "\n".join([*lines, f"   skipped: {self.skipped}"])
        for key, value in self.setup.items():
            lines.append(f"   {key}: {value}")
        width = max((len(f.name) for f in self.figures), default=0)
        for f in self.figures:
            goal = f"  (goal {f.goal})" if f.goal else ""
            text = f"  {f.text}" if f.text else ""
            lines.append(f"   {f.name:<{width}}  {f.shown():>8} {f.unit:<7}{goal}{text}")
        lines += [f"   note: {n}" for n in self.notes]
        return "\n".join(lines)


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def median(values: Sequence[float | int | None]) -> float | None:
    """Median of the values that were measured (None: not measured in that run)."""
    known = [v for v in values if v is not None]
    return round(float(statistics.median(known)), 1) if known else None


def worst(values: Sequence[float | int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(max(known)), 1) if known else None


def format_table(results: Sequence[ExperimentResult]) -> str:
    """One line per figure of every experiment: the benchmark's summary table."""
    rows = [("experiment", "figure", "value", "unit", "goal")]
    skipped = []
    for r in results:
        if r.skipped:
            rows.append((r.experiment, "(skipped)", "-", "", ""))
            skipped.append(f"{r.experiment} skipped: {r.skipped}")
        for f in r.figures:
            rows.append((r.experiment, f.name, f.shown(), f.unit, f.goal))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    out = []
    for i, row in enumerate(rows):
        out.append("  ".join(cell.ljust(w) if c != 2 else cell.rjust(w)
                             for c, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out + skipped)
