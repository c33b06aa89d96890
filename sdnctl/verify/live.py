"""`sdnctl verify`: is the network what the policy says, switch by switch and pair by pair?

Two questions, one report:

1. Flow tables: every switch's live tables against the daemon's intent
   (sdnctl.verify.tables): missing, extra, changed and unparsable entries, and
   switches that could not be read.
2. Behaviour: the simulator runs over the live tables (intent stands in for a
   switch that could not be read) and one representative pair per pair of VM
   classes (sdnctl.verify.classes) is probed for every service the policy names,
   plus `icmp`, a port no rule names, and every port a deviating flow names;
   each verdict is compared with the policy's semantics (sdnctl.verify.pairs).

The network equals intent (`ok`) only when both come out empty. `--offline`
asks the second question of the compiled flows alone, without a daemon.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sdnctl.bindings import Bindings
from sdnctl.flows import Flow, FlowSet
from sdnctl.policy.model import Policy, Proto, Service
from sdnctl.topology.model import PortRef, Topology
from sdnctl.verify.classes import vm_classes
from sdnctl.verify.outside import OutsideReport, check_outside
from sdnctl.verify.pairs import PairReport, check_pairs
from sdnctl.verify.semantics import probe_services
from sdnctl.verify.tables import Difference, compare_switch, deviating_flows

MAX_TEXT_LINES = 40  # per section of the text report; --json has everything


@dataclass
class LiveTables:
    """What was read from the switches, as `verify_network` takes it."""

    flowsets: dict[str, FlowSet] = field(default_factory=dict)
    unparsed: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    packets: dict[str, dict[tuple[str, int, object], int]] = field(default_factory=dict)
    unread: dict[str, str] = field(default_factory=dict)  # switch -> why it was not read
    read_s: float = 0.0


@dataclass
class VerifyReport:
    mode: str  # "live" | "offline"
    switches: dict[str, str]  # name -> "read" | why not
    differences: list[Difference]
    pairs: PairReport
    unbound: list[str]
    read_s: float = 0.0
    seconds: float = 0.0
    outside: OutsideReport = field(default_factory=OutsideReport)  # north–south cells

    @property
    def ok(self) -> bool:
        return not self.differences and not self.pairs.mismatches and not self.outside.mismatches

    def to_json(self) -> dict[str, object]:
        p = self.pairs
        return {
            "ok": self.ok, "mode": self.mode, "switches": self.switches,
            "differences": [d.to_json() for d in self.differences],
            "mismatches": [m.to_json() for m in p.mismatches],
            "classes": [{"representative": c.rep, "members": list(c.members)}
                        for c in p.classes],
            "services": [str(s) for s in p.services], "unbound": self.unbound,
            "outside": {"addresses": list(self.outside.addresses),
                        "probes": self.outside.probes,
                        "mismatches": [m.to_json() for m in self.outside.mismatches]},
            "figures": {"vms": sum(len(c.members) for c in p.classes), "classes": len(p.classes),
                        "class_pairs": p.class_pairs, "vm_pairs": p.vm_pairs,
                        "probes": p.probes, "injections": p.injections,
                        "read_s": self.read_s, "simulate_s": p.seconds, "total_s": self.seconds},
        }

    def to_text(self) -> str:
        p = self.pairs
        lines = []
        read = [n for n, s in self.switches.items() if s == "read"]
        if self.mode == "live":
            lines.append(f"flow tables: {len(read)} of {len(self.switches)} switches read in "
                         f"{self.read_s:.2f} s, {len(self.differences)} differences from intent")
        else:
            lines.append(f"offline: the compiled flows of {len(self.switches)} switches")
        lines += ["  " + d.to_text() for d in self.differences[:MAX_TEXT_LINES]]
        if len(self.differences) > MAX_TEXT_LINES:
            lines.append(f"  ... and {len(self.differences) - MAX_TEXT_LINES} more (--json)")
        vms = sum(len(c.members) for c in p.classes)
        lines.append(
            f"reachability: {vms} bound VMs in {len(p.classes)} classes, {p.class_pairs} class "
            f"pairs standing for {p.vm_pairs} VM pairs, x {len(p.services)} services "
            f"({', '.join(map(str, p.services))}): {len(p.mismatches)} verdicts differ from the "
            f"policy ({p.injections} packets simulated in {p.seconds:.2f} s)")
        lines += ["  " + m.to_text() for m in p.mismatches[:MAX_TEXT_LINES]]
        if len(p.mismatches) > MAX_TEXT_LINES:
            lines.append(f"  ... and {len(p.mismatches) - MAX_TEXT_LINES} more (--json)")
        o = self.outside
        if o.probes:
            lines.append(f"outside: {o.probes} probes to and from {', '.join(o.addresses)} "
                         f"through the gateways: {len(o.mismatches)} verdicts differ from the "
                         "policy")
            lines += ["  " + m.to_text() for m in o.mismatches[:MAX_TEXT_LINES]]
        if self.unbound:
            lines.append(f"not bound (not probed): {', '.join(self.unbound)}")
        if self.ok:
            lines.append("PASS: the network equals intent")
        else:
            lines.append(f"FAIL: the network differs from intent ({len(self.differences)} "
                         f"flow-table differences, {len(p.mismatches)} pair verdicts, "
                         f"{len(o.mismatches)} verdicts with the outside)")
        return "\n".join(lines) + "\n"


def deviation_services(flows: Iterable[tuple[str, Flow]]) -> set[Service]:
    """The services that flows outside intent single out, to be probed as well."""
    out: set[Service] = set()
    for _, f in flows:
        proto = f.match.get("ip_proto")
        for name, kind in (("tcp_dst", Proto.TCP), ("udp_dst", Proto.UDP)):
            value = f.match.get(name)
            if value is not None and proto in (6, 17):
                port = int(value[0]) if isinstance(value, tuple) else int(value)
                out.add(Service(kind, port, port))
        if proto in (1, 58):  # ICMP, ICMPv6
            out.add(Service(Proto.ICMP))
    return out


def verify_network(intent: Mapping[str, FlowSet], live: LiveTables, policy: Policy,
                   topology: Topology, bindings: Bindings,
                   down_ports: frozenset[PortRef] = frozenset()) -> VerifyReport:
    started = time.monotonic()
    diffs: list[Difference] = []
    switches: dict[str, str] = {}
    simulated: dict[str, FlowSet] = {}
    for name in sorted(intent):
        have = live.flowsets.get(name)
        if have is None:
            why = live.unread.get(name, "not read")
            switches[name] = why
            diffs.append(Difference(name, "unread", "switch", f"{name}: {why}",
                                    "its flows are unknown; intent stands in for them"))
            simulated[name] = intent[name]
            continue
        switches[name] = "read"
        diffs += compare_switch(intent[name], have, live.unparsed.get(name, ()),
                                live.packets.get(name))
        simulated[name] = have
    deviating = deviating_flows(diffs)
    classes = vm_classes(policy, bindings, deviating)
    services = tuple(sorted(set(probe_services(policy)) | deviation_services(deviating)))
    pairs = check_pairs(simulated, policy, topology, bindings, classes, services, down_ports)
    unbound = sorted(n for n in policy.vms if n not in bindings.ports)
    outside = check_outside(simulated, policy, topology, bindings, services)
    return VerifyReport("live", switches, diffs, pairs, unbound, live.read_s,
                        time.monotonic() - started + live.read_s, outside)


def verify_offline(policy: Policy, topology: Topology, bindings: Bindings,
                   compiled: Mapping[str, FlowSet]) -> VerifyReport:
    """The behaviour question alone, over compiled flows."""
    started = time.monotonic()
    classes = vm_classes(policy, bindings)
    pairs = check_pairs(compiled, policy, topology, bindings, classes, probe_services(policy))
    unbound = sorted(n for n in policy.vms if n not in bindings.ports)
    outside = check_outside(compiled, policy, topology, bindings, probe_services(policy))
    return VerifyReport("offline", {n: "compiled" for n in compiled}, [], pairs, unbound, 0.0,
                        time.monotonic() - started, outside)
