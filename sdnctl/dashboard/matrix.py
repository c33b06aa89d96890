"""The live reachability matrix: every ordered pair of bound VMs x service, three ways.

- `live`: simulated over what the daemon knows each switch holds (`installed`;
  intent stands in for a switch not read yet, as in `sdnctl verify`),
- `intent`: simulated over the FlowSets the daemon wants on the switches,
- `promised`: the policy's reference semantics (sdnctl.verify.semantics.reach).

A cell is `allowed` or `denied` when all three agree and `mismatch` otherwise
(`why` says which disagree). The network's verdict is judged as `sdnctl verify`
judges it (sdnctl.verify.pairs.verdict): an allowed connection must open, a
denied one must not even deliver its first packet. Services are those
`sdnctl plan` and the lab probe (sdnctl.verify.semantics.probe_services).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sdnctl.flows import FlowSet
from sdnctl.policy.model import Service
from sdnctl.verify.pairs import CachingSimulator, verdict
from sdnctl.verify.reach import probe
from sdnctl.verify.semantics import reach

from .view import View

ALLOWED, DENIED, MISMATCH = "allowed", "denied", "mismatch"
MAX_MATRIX_VMS = 64  # rows x columns x services probes, twice: a dashboard, not `verify`


@dataclass(frozen=True, slots=True)
class Cell:
    live: bool
    intent: bool
    promised: bool

    @property
    def state(self) -> str:
        if self.live == self.intent == self.promised:
            return ALLOWED if self.live else DENIED
        return MISMATCH

    @property
    def why(self) -> str:
        if self.live != self.intent:
            return ("the switches let it through, intent does not" if self.live else
                    "intent lets it through, the switches do not")
        if self.intent != self.promised:
            return ("the compiled flows let it through, the policy denies it" if self.intent
                    else "the policy allows it, the compiled flows do not")
        return ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"state": self.state, "live": self.live,
                                  "intent": self.intent, "promised": self.promised}
        if self.state == MISMATCH:
            out["why"] = self.why
        return out


def _verdicts(flowsets: Mapping[str, FlowSet], view: View, names: Sequence[str],
              services: Sequence[Service]) -> dict[tuple[str, str, Service], bool]:
    sim = CachingSimulator(flowsets, view.topology, view.down_ports)
    out: dict[tuple[str, str, Service], bool] = {}
    for a in names:
        for b in names:
            if a == b:
                continue
            for s in services:
                result = probe(sim, view.policy, view.bindings, a, b, s)
                out[(a, b, s)] = verdict(result.reached, result.delivered,
                                         reach(view.policy, a, b, s))
    return out


def matrix_doc(view: View, services: Sequence[Service]) -> dict[str, object]:
    """{"vms", "services", "cells": {service: rows of cells (null on the diagonal)}, ...}."""
    started = time.monotonic()
    bound = sorted(n for n in view.policy.vms if n in view.bindings.ports)
    names = bound[:MAX_MATRIX_VMS]
    intent = _verdicts(view.intent, view, names, services)
    live = intent if view.live_is_intent else _verdicts(view.live, view, names, services)
    cells: dict[str, list[list[dict[str, object] | None]]] = {}
    mismatches = 0
    for s in services:
        rows: list[list[dict[str, object] | None]] = []
        for a in names:
            row: list[dict[str, object] | None] = []
            for b in names:
                if a == b:
                    row.append(None)
                    continue
                cell = Cell(live[(a, b, s)], intent[(a, b, s)], reach(view.policy, a, b, s))
                mismatches += cell.state == MISMATCH
                row.append(cell.to_json())
            rows.append(row)
        cells[str(s)] = rows
    return {
        "policy": view.policy_sha,
        "vms": names,
        "tenants": {n: view.policy.vms[n].tenant for n in names},
        "unbound": sorted(n for n in view.policy.vms if n not in view.bindings.ports),
        "left_out": bound[MAX_MATRIX_VMS:],
        "services": [str(s) for s in services],
        "live_from": dict(sorted(view.live_from.items())),
        "cells": cells,
        "mismatches": mismatches,
        "seconds": round(time.monotonic() - started, 4),
    }
