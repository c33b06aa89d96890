"""Sprawl warnings: what the policy names but nothing runs, and what runs but the
policy does not name. Pure: it reads the daemon's /status document (the daemon
is the one that watches bindings over time) and the policy, and returns Problems
in the lint's format, so `sdnctl check --live` prints them beside the others.

- a VM of the policy that has not been bound for longer than `stale_after_s`
  (the daemon's clock starts when it starts: "at least" is said when the VM has
  been unbound ever since);
- a hypervisor port with no vm-id at all (plugged, bound to nothing, dropping
  everything);
- a port whose vm-id names no VM of the policy (a deleted VM's leftover NIC).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sdnctl.policy.model import Policy
from sdnctl.yamlsrc import Problem

NO_SUCH_VM = "vm-id names no VM of the policy"  # sdnctl.southbound.ovsdb's reason
FIRST_LOOK_S = 30.0


def sprawl_warnings(policy: Policy, status: Mapping[str, Any], stale_after_s: float,
                    now: float | None = None) -> list[Problem]:
    now = time.time() if now is None else now
    warnings: list[Problem] = []
    daemon = status.get("daemon") or {}
    started = now - float(daemon.get("uptime_s") or 0.0)
    for name, info in sorted((status.get("vms") or {}).items()):
        since = info.get("unbound_since")
        vm = policy.vms.get(name)
        if since is None or vm is None or now - since < stale_after_s:
            continue
        # Unbound since the daemon's first look at the bindings, which can come some
        # seconds after its start on a busy host: then only a lower bound is known.
        bound_never_seen = since <= started + FIRST_LOOK_S
        warnings.append(Problem(policy.source, vm.line, (
            f"VM {name} has not been bound for {'at least ' if bound_never_seen else ''}"
            f"{_duration(now - since)} (no port with vm-id={name}); "
            "remove it from the policy if it is gone")))
    for port in status.get("unclaimed_ports") or []:
        warnings.append(Problem(policy.source, 0, (
            f"port {port['switch']}:{port['port']} ({port['interface']}) is bound to no VM "
            "(no vm-id): its traffic is dropped; unplug it or bind it")))
    for port in status.get("unknown_ports") or []:
        if port.get("reason") == NO_SUCH_VM:
            warnings.append(Problem(policy.source, 0, (
                f"port {port['switch']}:{port['port']} ({port['interface']}) claims "
                f"vm-id={port['vm']}, which the policy does not name: a leftover of a "
                "deleted VM?")))
    return sorted(warnings)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def parse_duration(text: str) -> float:
    """'90s', '30m', '12h', '7d' (or plain seconds) -> seconds; ValueError otherwise."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    scale = units.get(text[-1:])
    number = text[:-1] if scale else text
    value = float(number) * (scale or 1)
    if value < 0:
        raise ValueError(f"negative duration: {text}")
    return value
