"""Allowed VM pairs that no path connects: what `verify --offline` would find
BLOCKED although the policy allows it, found without compiling anything.

A pair needs its two hypervisors connected (sdnctl.topology.paths.Carriage:
linked to each other, or hanging off one connected piece of fabric, or both
tunnel endpoints when both VMs' segments are overlays): another hypervisor is
never transit.
Only hypervisor pairs that are not connected are looked at, so a well-built
fabric costs one comparison per pair of hypervisors.
"""

from __future__ import annotations

from collections import defaultdict

from sdnctl.policy.model import Policy
from sdnctl.topology.model import Topology
from sdnctl.topology.paths import carriage
from sdnctl.verify.plan import AllowedServices
from sdnctl.yamlsrc import Problem

MAX_NAMED = 5  # source VMs named per problem


def pairs_without_path(policy: Policy, topology: Topology) -> list[Problem]:
    """One problem per destination VM that some VM may open a connection to (by the
    policy) from a hypervisor no path connects to its own; at the VM's line."""
    fabric = carriage(topology)
    side = AllowedServices(policy, topology, fabric, set(policy.tenants))
    on_host: dict[str, list[str]] = defaultdict(list)
    for name, host in sorted(side.host.items()):
        on_host[host].append(name)
    hosts = sorted(on_host)
    # Without overlays (the stricter test): pairs in overlay segments are judged
    # pair by pair below, with their tunnels.
    cut = [(a, b) for a in hosts for b in hosts if a != b and not fabric.connected(a, b)]
    sources: dict[str, list[str]] = defaultdict(list)
    for ha, hb in cut:
        for a in on_host[ha]:
            for b in on_host[hb]:
                if not side.carried(a, b) and side.allowed(side.keys[a], side.keys[b]):
                    sources[b].append(a)
    problems = []
    for b, found in sorted(sources.items()):
        vm = policy.vms[b]
        named = ", ".join(f"{a} ({side.host[a]})" for a in found[:MAX_NAMED])
        more = f" and {len(found) - MAX_NAMED} more" if len(found) > MAX_NAMED else ""
        problems.append(Problem(
            policy.source, vm.line,
            f"vm {b} (on {side.host[b]}): the policy lets {named}{more} reach it, but no "
            f"path connects their hypervisors to {side.host[b]} (a hypervisor is never "
            "transit: link both to the fabric, or place the VMs elsewhere)"))
    return problems
