"""Judge probe results against the policy, print the matrix, write the JSON report.

Pure apart from `write_report`: the verdict of each probe is `reach(policy, ...)`
(the reference semantics of DESIGN.md §2) in the probe's family against what the
wire said. IPv4 and IPv6 probes get a matrix each.
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
    vms6: tuple[str, ...] = ()  # the VMs probed in IPv6 too (those with an address)
    missing6: tuple[tuple[str, str, Service], ...] = ()  # the same, in IPv6

    def family(self, family: int) -> tuple[Judged, ...]:
        return tuple(j for j in self.judged if j.probe.family == family)

    @property
    def mismatches(self) -> tuple[Judged, ...]:
        return tuple(j for j in self.judged if j.verdict is not Verdict.OK)

    @property
    def failures(self) -> int:
        """Mismatches plus probes that never ran: the lab passes only at zero."""
        return len(self.mismatches) + len(self.missing) + len(self.missing6)


def judge_probes(
    policy: Policy, vms: Sequence[str], services: Sequence[Service],
    results: Iterable[ProbeResult], vms6: Sequence[str] = (),
) -> LabReport:
    """Each probe with the policy's promise in its family; also which of vms x vms x
    services (and vms6 x vms6 x services in IPv6) is missing."""
    judged = tuple(
        Judged(r, reach(policy, r.src, r.dst, r.service, r.family))
        for r in sorted(results, key=lambda r: (r.family, vms.index(r.src), vms.index(r.dst),
                                                r.service))
    )

    def missing_in(family: int, names: Sequence[str]) -> tuple[tuple[str, str, Service], ...]:
        done = {(j.probe.src, j.probe.dst, j.probe.service) for j in judged
                if j.probe.family == family}
        return tuple((a, b, s) for a in names for b in names if a != b for s in services
                     if (a, b, s) not in done)

    return LabReport(tuple(vms), tuple(services), judged, missing_in(4, vms),
                     tuple(vms6), missing_in(6, vms6))


# ------------------------------------------------------------------- printing


def format_matrices(report: LabReport) -> str:
    """The IPv4 matrix, then the IPv6 one when any VM was probed in IPv6."""
    if not report.vms6:
        return format_matrix(report)
    return format_matrix(report, 4) + "\n\n" + format_matrix(report, 6)


def format_matrix(report: LabReport, family: int = 4) -> str:
    """Rows: source VM; columns: destination VM; cells: services that got through,
    in IPv4 (`family` 4) or IPv6 (6: VMs without an IPv6 address show `n/a`).

    A mismatch is spelled out in the cell: `!LEAK tcp/22` (reached, not allowed)
    or `!BLOCKED tcp/80` (allowed, not reached).
    """
    cells: dict[tuple[str, str], list[str]] = {}
    if family == 6:
        cells = {(a, b): ["n/a"] for a in report.vms for b in report.vms
                 if a != b and (a not in report.vms6 or b not in report.vms6)}
    for j in report.family(family):
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
        f"{'IPv6' if family == 6 else 'IPv4'} reachability: rows = from, columns = to,"
        " cells = services that got through;",
        "!LEAK = got through but not allowed, !BLOCKED = allowed but did not get through"
        + (";\nn/a = a VM without an IPv6 address" if family == 6 and cells else ""),
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
    lines = []
    for family, names in ((4, report.vms), (6, report.vms6)):
        if not names:
            continue
        judged = report.family(family)
        reached = sum(j.probe.reached for j in judged)
        expected = sum(j.expected for j in judged)
        mismatches = sum(j.verdict is not Verdict.OK for j in judged)
        lines.append(
            f"IPv{family}: {len(names)} VMs, {len(report.services)} services "
            f"({', '.join(str(s) for s in report.services)}): {len(judged)} probes, "
            f"{reached} reached, {expected} allowed by the policy, {mismatches} mismatches")
    for j in report.mismatches:
        p = j.probe
        why = (
            "got through, but the policy does not allow it"
            if j.verdict is Verdict.LEAK
            else "allowed by the policy, but did not get through"
        )
        lines.append(
            f"  {j.verdict.value:<8} {p.src} -> {p.dst} {p.service} IPv{p.family}: {why} "
            f"({p.detail}, {p.tries} {'try' if p.tries == 1 else 'tries'})"
        )
    for family, missing in ((4, report.missing), (6, report.missing6)):
        for src, dst, service in missing:
            lines.append(f"  MISSING  {src} -> {dst} {service} IPv{family}: never probed")
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
                "family": j.probe.family,
            }
            for j in judged
        ],
        "mismatches": len(report.mismatches),
        "summary": {
            "vms": list(report.vms),
            "vms6": list(report.vms6),
            "services": [str(s) for s in report.services],
            "probes": len(judged),
            "reached": sum(j.probe.reached for j in judged),
            "expected": sum(j.expected for j in judged),
            "leaks": sum(j.verdict is Verdict.LEAK for j in judged),
            "blocked": sum(j.verdict is Verdict.BLOCKED for j in judged),
            "missing": [
                {"src": a, "dst": b, "service": str(s), "family": family}
                for family, missing in ((4, report.missing), (6, report.missing6))
                for a, b, s in missing
            ],
            "passed": report.failures == 0,
            **(extra or {}),
        },
    }


def write_report(path: str | Path, document: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=2) + "\n")
