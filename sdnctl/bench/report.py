"""Tables on stdout and JSON on disk: what every benchmark prints and writes.

Timing on a shared machine is noisy, so figures are medians of repeats and the
headline of a comparison is a ratio of two figures measured back to back.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def median(values: Iterable[float]) -> float | None:
    """The median, or None when nothing was measured (a failed run is not a zero)."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:.0f}"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]],
                title: str = "") -> None:
    """Columns are (key in each row, header); nested keys as `a.b`."""
    cells = [[fmt(_get(r, key)) for key, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    if title:
        print(title)
    print("  ".join(h.rjust(w) for (_, h), w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.rjust(w) for v, w in zip(c, widths, strict=True)))
    print()


def _get(row: Mapping[str, Any], key: str) -> object:
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    ovs = _run(["ovs-vsctl", "--version"]).splitlines()
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ovs": ovs[0] if ovs else None,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def write_json(name: str, body: Mapping[str, Any], path: str | Path | None = None) -> Path:
    """Write {machine, ...body} to `path` (default benchmarks/results/NAME.json)."""
    out = Path(path) if path else RESULTS / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": name, "machine": machine(), **body}, indent=2,
                              default=str) + "\n")
    print(f"wrote {out}")
    return out


def repeat(fn: Callable[[], float], times: int) -> list[float]:
    return [fn() for _ in range(times)]
