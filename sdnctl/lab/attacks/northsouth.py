"""North–south attacks: a hostile VM and a hostile internet against the gateways.

The lab: a topology with gateways and its internet (sdnctl.lab.internet), its
switches loaded with the compiled flows (sdnctl.lab.static: the data plane alone),
probe servers in every VM and on the internet. Each attack is one window: captures
start in every victim (the VMs on `eth0`, the internet on its bridge), the sender
sends marked frames (sdnctl.lab.rawsend), the captures stop; a frame that carries
the marker anywhere a victim received it leaked. Then allowed traffic must still
flow: VMs out through SNAT and their floating IP, the internet in through the
floating IP (`liveness`). The verdict is the east–west suite's: 0 leaked, allowed
traffic keeps flowing.

A control window sends marked frames the policy allows (out through SNAT, in
through a floating IP): each must be seen, or the captures could not see a leak.
The NAT-exhaustion attack opens and holds thousands of allowed connections from
one VM while witnesses keep connecting, and counts the conntrack entries it took.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from sdnctl.compile.exits import nat_zones
from sdnctl.lab.attacks.capture import start_captures, stop_captures
from sdnctl.lab.attacks.nsframes import build_frames
from sdnctl.lab.internet import BRIDGE
from sdnctl.lab.names import free_prefix
from sdnctl.lab.outside import INTERNET, OutsideProbe, outside_probes
from sdnctl.lab.outside_probe import InternetServer, prepare_internet, run_outside
from sdnctl.lab.plan import LabError, LabPlan, plan_lab
from sdnctl.lab.probe import start_servers
from sdnctl.lab.session import LabSession, stop_process
from sdnctl.lab.static import build_static
from sdnctl.policy.model import Policy, parse_service
from sdnctl.topology.model import Topology
from sdnctl.verify.semantics import probe_services

if TYPE_CHECKING:
    from mininet.node import Node

    from sdnctl.lab.build import Lab

SERVICES = ("icmp", "tcp/80", "tcp/443")  # answered by the servers, with the policy's probes
REPEAT = 3
SETTLE = 0.3
HOLD_PORT = 7000  # the internet's connection holder (NAT exhaustion)


@dataclass(frozen=True, slots=True)
class Roles:
    """Who plays what: `attacker` may go out (its tenant has a pool and a rule to
    the outside); `floating` has a floating IP and an inbound rule and may go out
    too; `witness` shares the attacker's pool (the NAT addresses exhaustion would
    take)."""

    attacker: str
    floating: str
    witness: str
    inbound_port: int  # a port the internet may open to `floating`
    outbound_port: int  # a port the VMs may open to the internet server


@dataclass
class NsLab:
    policy: Policy
    topology: Topology
    plan: LabPlan
    roles: Roles
    session: LabSession
    lab: Lab

    @property
    def internet(self) -> Node:
        assert self.lab.internet is not None
        return self.lab.internet

    def host(self, name: str) -> Node:
        return self.internet if name == INTERNET else self.lab.hosts[name]


@dataclass
class NsResult:
    name: str
    summary: str
    sent: int = 0
    leaks: dict[str, int] = field(default_factory=dict)  # victim -> marked frames
    delivered: dict[str, int] = field(default_factory=dict)  # control: victim -> frames
    liveness: list[str] = field(default_factory=list)  # allowed traffic that failed
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def leaked(self) -> int:
        return sum(self.leaks.values())

    @property
    def passed(self) -> bool:
        return self.leaked == 0 and not self.liveness


def own_tenant_names(policy: Policy, suffix: str) -> Policy:
    """`policy` with every tenant renamed NAME+suffix.

    A tenant's conntrack zone on the gateways comes from its name, and zones are
    shared by every bridge of the machine's one datapath: other labs of the same
    tenants would count into (and share a limit with) ours.
    """
    def name(t: str) -> str:
        return t + suffix

    tenants = {}
    for t in policy.tenants.values():
        tenants[name(t.name)] = replace(
            t, name=name(t.name),
            segments=MappingProxyType({k: replace(v, tenant=name(t.name))
                                       for k, v in t.segments.items()}),
            groups=MappingProxyType({k: replace(v, tenant=name(t.name))
                                     for k, v in t.groups.items()}),
            rules=tuple(replace(r, tenant=name(t.name)) for r in t.rules))
    vms = {n: replace(v, tenant=name(v.tenant)) for n, v in policy.vms.items()}
    return replace(policy, tenants=MappingProxyType(tenants), vms=MappingProxyType(vms))


@contextlib.contextmanager
def ns_attack_lab(policy: Policy, topology: Topology, roles: Roles,
                  prefix: str | None = None) -> Iterator[NsLab]:
    """Build the lab, load its flows, start every server; all undone on the way out."""
    with LabSession("ns-attacks") as session:
        plan = plan_lab(policy, topology, free_prefix("s") if prefix is None else prefix)
        if plan.internet is None:
            raise LabError("the north–south attacks need a topology with gateways")
        lab = build_static(session, plan, policy, topology)
        services = sorted({*probe_services(policy), *(parse_service(s) for s in SERVICES)})
        servers = start_servers(lab.hosts, services)
        session.add("probe servers", servers.stop)
        assert lab.internet is not None
        server = InternetServer(lab.internet, plan.internet, services)
        session.add("internet server", server.stop)
        prepare_internet(lab.internet, plan.internet, policy)
        yield NsLab(policy, topology, plan, roles, session, lab)


# ------------------------------------------------------------------ attacks


@dataclass(frozen=True, slots=True)
class NsAttack:
    name: str
    summary: str
    control: bool = False  # marked frames the policy allows: each must arrive


NS_ATTACKS: tuple[NsAttack, ...] = (
    NsAttack("ns-spoof-external-source",
             "a VM sends with external source addresses (invented, the internet server's"
             " and client's) to the internet, a floating IP and a VM of its tenant"),
    NsAttack("ns-floating-ip-source",
             "a VM sends with its own floating IP as source, out and to itself"),
    NsAttack("ns-other-snat-source",
             "a VM sends with every tenant's SNAT addresses and a floating IP as source"),
    NsAttack("ns-outside-to-inside",
             "the internet sends to inside addresses: routed at the uplink MAC, at the VMs'"
             " MACs, at the segment gateway MACs, broadcast, and in the fabric's"
             " tag + label format"),
    NsAttack("ns-nat-unallowed",
             "the internet sends to every SNAT address (new connections and guessed"
             " replies to unopened ports) and to a floating IP on ports no rule opens"),
)
NS_CONTROLS: tuple[NsAttack, ...] = (
    NsAttack("ns-control", "allowed: a VM's marked SYN out through SNAT", control=True),
    NsAttack("ns-control-in", "allowed: the internet's marked SYN to a floating IP",
             control=True),
)


def _send(host: Node, frames: Sequence[tuple[str, bytes]], repeat: int) -> int:
    """Send `frames` from `host` (grouped by interface); how many went out."""
    by_intf: dict[str, list[bytes]] = {}
    for intf, frame in frames:
        by_intf.setdefault(intf, []).append(frame)
    sent = 0
    for intf, group in by_intf.items():
        proc = host.popen([sys.executable, "-m", "sdnctl.lab.rawsend", intf, str(repeat), "0"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
        out, err = proc.communicate("\n".join(f.hex() for f in group).encode(), timeout=60)
        if proc.returncode != 0:
            raise LabError(f"rawsend on {intf}: {err.decode(errors='replace')}")
        sent += int(json.loads(out)["sent"])
    return sent


def _victims(ns: NsLab, sender: str) -> tuple[dict[str, Node], dict[str, Node]]:
    vms = {h.vm: ns.lab.hosts[h.vm] for h in ns.plan.hosts if h.vm != sender}
    inet = {INTERNET: ns.internet} if sender != INTERNET else {}
    return vms, inet


def run_ns_attack(ns: NsLab, attack: NsAttack) -> NsResult:
    result = NsResult(attack.name, attack.summary)
    marker = os.urandom(8)
    sender, frames = build_frames(ns, attack.name, marker)
    vms, inet = _victims(ns, sender)
    caps = start_captures(vms, ns.session.tmp, attack.name)
    try:
        caps.update(start_captures(inet, ns.session.tmp, attack.name, intf=BRIDGE))
        result.sent = _send(ns.host(sender), frames, 1 if attack.control else REPEAT)
        time.sleep(SETTLE)
    finally:
        captured = stop_captures(caps)
    for victim, cap in captured.items():
        marked = sum(marker in frame for frame in cap.frames)
        if marked:
            (result.delivered if attack.control else result.leaks)[victim] = marked
    result.liveness = check_liveness(ns)
    return result


def liveness_probes(ns: NsLab, attacker_too: bool = True) -> list[OutsideProbe]:
    """Allowed north–south traffic: the attacker (unless not `attacker_too`) and the
    witness out through their pool, the floating VM out and the internet in
    through its floating IP."""
    r = ns.roles
    wanted = {(r.witness, INTERNET, r.outbound_port), (r.floating, INTERNET, r.outbound_port),
              (INTERNET, f"{r.floating}@fip", r.inbound_port)}
    if attacker_too:
        wanted.add((r.attacker, INTERNET, r.outbound_port))
    vms = tuple(h.vm for h in ns.plan.hosts)
    services = [parse_service(f"tcp/{p}") for p in {r.outbound_port, r.inbound_port}]
    return [p for p in outside_probes(ns.policy, vms, services)
            if (p.src, p.dst, p.service.port_lo) in wanted and p.expected]


def check_liveness(ns: NsLab, retries: int = 1, attacker_too: bool = True) -> list[str]:
    """One line per allowed probe that did not get through (as promised)."""
    probes = liveness_probes(ns, attacker_too)
    assert ns.plan.internet is not None
    results = run_outside(ns.lab.hosts, ns.internet, ns.plan.internet, probes,
                          retries=retries)
    return [f"{p.src} -> {p.dst} {p.service}: {results[i].detail}"
            for i, p in enumerate(probes) if not results[i].reached]


# ------------------------------------------------------------------ exhaustion


def conntrack_entries(zone: int, port: int) -> int:
    """Entries of conntrack zone `zone` (the machine's userspace datapath) whose
    text names destination port `port`."""
    res = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", f"zone={zone}"],
                         capture_output=True, text=True, check=False)
    return sum(f"dport={port}" in line for line in res.stdout.splitlines())


def set_zone_limit(zone: int, limit: int | None) -> None:
    """Limit conntrack zone `zone` of the machine's datapath (None: take it back).
    What the daemon does per tenant on the gateways, done by hand for a static lab."""
    if limit is None:
        args = ["dpctl/ct-del-limits", f"zone={zone}"]
    else:
        args = ["dpctl/ct-set-limits", f"zone={zone},limit={limit}"]
    res = subprocess.run(["ovs-appctl", *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise LabError(f"ovs-appctl {' '.join(args)}: {res.stderr.strip()}")


def tenant_zone(ns: NsLab, vm: str) -> int:
    """The gateway conntrack zone of `vm`'s tenant."""
    going = sorted(t for t in ns.policy.tenants if ns.policy.tenants[t].north_south)
    return nat_zones(going)[ns.policy.vms[vm].tenant]


def run_exhaustion(ns: NsLab, count: int, rate: float, hold: float = 4.0,
                   nat_limit: int | None = None, port: int = HOLD_PORT) -> NsResult:
    """The attacker opens `count` connections to the internet and holds them; the
    witnesses' allowed connections are checked over and over meanwhile. With
    `nat_limit`, its tenant's zone on the gateways is limited to that many
    connections for the run (ovs-appctl dpctl/ct-set-limits). `port`: the server
    port, one per run (closed connections of an earlier run stay in the table a
    while, and entries are counted by port)."""
    r = ns.roles
    limited = f", its tenant's NAT zone limited to {nat_limit}" if nat_limit else ""
    result = NsResult("ns-nat-exhaustion" + ("-limited" if nat_limit else ""),
                      f"a VM opens and holds {count} allowed connections to the internet"
                      f" ({rate:.0f}/s) while other VMs keep connecting{limited}")
    assert ns.plan.internet is not None
    zone = tenant_zone(ns, r.attacker)
    holder = ns.internet.popen([sys.executable, "-m", "sdnctl.lab.attacks.connflood", "hold",
                                "--address", str(ns.plan.internet.server),
                                "--port", str(port)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None
        if not holder.stdout.readline().startswith(b"ready"):
            raise LabError("the connection holder did not start")
        if nat_limit:
            set_zone_limit(zone, nat_limit)
        flood = ns.host(r.attacker).popen(
            [sys.executable, "-m", "sdnctl.lab.attacks.connflood", "open",
             "--ip", str(ns.plan.internet.server), "--port", str(port),
             "--count", str(count), "--hold", str(hold), "--rate", str(rate)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        rounds = failures = 0
        peak = 0
        failed_by: dict[str, int] = {}
        stop = threading.Event()

        def witnesses() -> None:
            nonlocal rounds, failures
            while not stop.is_set():
                # The others, not the attacker (its own connections queue behind its
                # flood); one retry, as the loaded machine loses a first SYN at times.
                failed = check_liveness(ns, attacker_too=False)
                rounds += 1
                failures += len(failed)
                result.liveness += failed
                for line in failed:
                    who = line.split(" ", 1)[0]
                    failed_by[who] = failed_by.get(who, 0) + 1

        talker = threading.Thread(target=witnesses, name="ns-witnesses", daemon=True)
        talker.start()
        started = time.monotonic()
        try:
            while flood.poll() is None and time.monotonic() - started < count / rate + hold + 30:
                peak = max(peak, conntrack_entries(zone, port))
                time.sleep(0.5)
            out, err = flood.communicate(timeout=30)
        finally:
            stop.set()
            talker.join(timeout=30)
            if flood.poll() is None:
                stop_process(flood)
        if flood.returncode != 0:
            raise LabError(f"connflood: {err.decode(errors='replace')}")
        got = json.loads(out)
        result.sent = int(got["opened"]) + int(got["failed"])
        result.figures = {"opened": float(got["opened"]), "failed": float(got["failed"]),
                          "open_s": float(got["seconds"]), "gateway_zone_peak": float(peak),
                          "witness_rounds": float(rounds), "witness_failures": float(failures),
                          "max_conns": float(_max_conns())}
        result.figures.update({f"failures_{who}": float(n) for who, n in failed_by.items()})
    finally:
        stop_process(holder, grace=2.0)
        if nat_limit:
            set_zone_limit(zone, None)  # other sessions' labs share the datapath
    return result


def _max_conns() -> int:
    res = subprocess.run(["ovs-appctl", "dpctl/ct-get-maxconns"], capture_output=True,
                         text=True, check=False)
    try:
        return int(res.stdout.strip())
    except ValueError:
        return -1


# ------------------------------------------------------------------ output


def format_ns_table(results: Sequence[NsResult]) -> str:
    rows = [("attack", "frames sent", "leaked", "allowed traffic", "verdict")]
    for res in results:
        rows.append((res.name, str(res.sent), str(res.leaked),
                     "ok" if not res.liveness else f"{len(res.liveness)} failed",
                     "PASS" if res.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
