"""Judge probe results against the policy, print the matrix, write the JSON report.

Pure apart from `write_report`: the verdict of each probe is `reach(policy, ...)`
(the reference semantics of DESIGN.md §2) against what the wire said.
"""

from __future__ import annotations

import enum
import json
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdnctl.lab.probe import ProbeResult
from sdnctl.policy.model import Policy, Service
from sdnctl.verify.semantics import reach

CELL_WIDTH = 18  # a matrix cell wraps its services at this width


class Verdict(enum.Enum):
    OK = "ok"
    LEAK = "LEAK"  # reached, but the policy does not allow it
    BLOCKED = "BLOCKED"  # the policy allows it, but it did not get through


@dataclass(frozen=True, slots=True)
class Judged:
    probe: ProbeResult
    expected: bool

    @property
    def verdict(self) -> Verdict:
        if self.probe.reached == self.expected:
            return Verdict.OK
        return Verdict.LEAK if self.probe.reached else Verdict.BLOCKED


@dataclass(frozen=True, slots=True)
class LabReport:
    vms: tuple[str, ...]  # matrix order
    services: tuple[Service, ...]
    judged: tuple[Judged, ...]
    missing: tuple[tuple[str, str, Service], ...]  # (src, dst, service) never probed

    @property
    def mismatches(self) -> tuple[Judged, ...]:
        return tuple(j for j in self.judged if j.verdict is not Verdict.OK)

    @property
    def failures(self) -> int:
        """Mismatches plus probes that never ran: the lab passes only at zero."""
        return len(self.mismatches) + len(self.missing)


def judge_probes(
    policy: Policy, vms: Sequence[str], services: Sequence[Service], results: Iterable[ProbeResult]
) -> LabReport:
    """Each probe with the policy's promise; also which of vms x vms x services is missing."""
    judged = tuple(
        Judged(r, reach(policy, r.src, r.dst, r.service))
        for r in sorted(results, key=lambda r: (vms.index(r.src), vms.index(r.dst), r.service))
    )
    done = {(j.probe.src, j.probe.dst, j.probe.service) for j in judged}
    missing = tuple(
        (a, b, s) for a in vms for b in vms if a != b for s in services if (a, b, s) not in done
    )
    return LabReport(tuple(vms), tuple(services), judged, missing)


# ------------------------------------------------------------------- printing


def format_matrix(report: LabReport) -> str:
    """Rows: source VM; columns: destination VM; cells: services that got through.

    A mismatch is spelled out in the cell: `!LEAK tcp/22` (reached, not allowed)
    or `!BLOCKED tcp/80` (allowed, not reached).
    """
    cells: dict[tuple[str, str], list[str]] = {}
    for j in report.judged:
        token = {
            Verdict.OK: str(j.probe.service) if j.probe.reached else "",
            Verdict.LEAK: f"!LEAK {j.probe.service}",
            Verdict.BLOCKED: f"!BLOCKED {j.probe.service}",
        }[j.verdict]
        cell = cells.setdefault((j.probe.src, j.probe.dst), [])
        if token:
            cell.append(token)
    label = max([len(v) for v in report.vms] + [len("from \\ to")])
    widths = {
        dst: max(
            [len(dst)]
            + [len(line) for src in report.vms for line in _cell_lines(src, dst, cells)]
        )
        for dst in report.vms
    }
    rule = "-" * label + "".join("-+-" + "-" * widths[d] for d in report.vms)
    lines = [
        "reachability: rows = from, columns = to, cells = services that got through;",
        "!LEAK = got through but not allowed, !BLOCKED = allowed but did not get through",
        "",
        ("from \\ to".ljust(label) + "".join(" | " + d.ljust(widths[d]) for d in report.vms))
        .rstrip(),
        rule,
    ]
    for src in report.vms:
        columns = [_cell_lines(src, dst, cells) for dst in report.vms]
        for i in range(max(len(c) for c in columns)):
            head = src if i == 0 else ""
            lines.append(
                head.ljust(label)
                + "".join(
                    " | " + (col[i] if i < len(col) else "").ljust(widths[d])
                    for d, col in zip(report.vms, columns, strict=True)
                ).rstrip()
            )
        lines.append(rule)
    return "\n".join(lines)


def _cell_lines(src: str, dst: str, cells: Mapping[tuple[str, str], list[str]]) -> list[str]:
    """Services that got through as agreed, wrapped; then each mismatch on its own line."""
    if src == dst:
        return ["."]
    tokens = cells.get((src, dst), [])
    fine = [t for t in tokens if not t.startswith("!")]
    loud = [t for t in tokens if t.startswith("!")]
    lines = textwrap.wrap(" ".join(fine), CELL_WIDTH, break_long_words=False) + loud
    return lines or ["-"]


def format_summary(report: LabReport) -> str:
    """One line of totals, then one line per mismatch and per missing probe."""
    probes = len(report.judged)
    reached = sum(j.probe.reached for j in report.judged)
    expected = sum(j.expected for j in report.judged)
    lines = [
        f"{len(report.vms)} VMs, {len(report.services)} services "
        f"({', '.join(str(s) for s in report.services)}): {probes} probes, "
        f"{reached} reached, {expected} allowed by the policy, "
        f"{len(report.mismatches)} mismatches"
    ]
    for j in report.mismatches:
        p = j.probe
        why = (
            "got through, but the policy does not allow it"
            if j.verdict is Verdict.LEAK
            else "allowed by the policy, but did not get through"
        )
        lines.append(
            f"  {j.verdict.value:<8} {p.src} -> {p.dst} {p.service}: {why} "
            f"({p.detail}, {p.tries} {'try' if p.tries == 1 else 'tries'})"
        )
    for src, dst, service in report.missing:
        lines.append(f"  MISSING  {src} -> {dst} {service}: never probed")
    if report.failures == 0:
        lines.append("PASS: the data plane does what the policy says")
    else:
        lines.append(f"FAIL: {report.failures} probes disagree with the policy")
    return "\n".join(lines)


# ----------------------------------------------------------------------- JSON


def report_json(report: LabReport, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `--report` document (DESIGN.md §4): probes, mismatch count, summary."""
    judged = report.judged
    return {
        "probes": [
            {
                "src": j.probe.src,
                "dst": j.probe.dst,
                "service": str(j.probe.service),
                "reached": j.probe.reached,
                "expected": j.expected,
                "verdict": j.verdict.value,
                "detail": j.probe.detail,
                "tries": j.probe.tries,
            }
            for j in judged
        ],
        "mismatches": len(report.mismatches),
        "summary": {
            "vms": list(report.vms),
            "services": [str(s) for s in report.services],
            "probes": len(judged),
            "reached": sum(j.probe.reached for j in judged),
            "expected": sum(j.expected for j in judged),
            "leaks": sum(j.verdict is Verdict.LEAK for j in judged),
            "blocked": sum(j.verdict is Verdict.BLOCKED for j in judged),
            "missing": [
                {"src": a, "dst": b, "service": str(s)} for a, b, s in report.missing
            ],
            "passed": report.failures == 0,
            **(extra or {}),
        },
    }


def write_report(path: str | Path, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
