"""The simulator's NAT is held to Open vSwitch, with real packets.

`ofproto/trace` cannot show NAT faithfully (OVS 3.1, seen on a netdev bridge): with
`--ct-next` it invents conntrack states without running conntrack; after a commit
with `nat(src|dst=range)` and `table=` it rewrites the resumed flow to the range's
first address ("Replacing src/dst IP/ports to simulate NAT"), but for a plain `nat`
(a reply de-NATed, a later packet translated) its "Modified flow" is empty, and
without `table` its "Final flow" is unchanged although the datapath action
translates the packet. So frames are run for real instead (tests/integration/
natovs.py): packet-outs through a small gateway pipeline on a netdev bridge, through
the datapath's own conntrack, and every frame the bridge outputs is read from the
far end of its veth port in a namespace of the test's own.

The pipeline: VM A (port 1) goes out (port 3) with source NAT in zone ZS after its
packets pass zone ZF, where inbound connections to A's floating IP were committed
with destination NAT (so A's replies leave from the floating IP); VM B (port 2) is
source-NATed in zone ZD by a ct *without* `table`, and its replies de-NATed the same
way, the following table matching on the header from before the translation (what
OVS does: measured, the frame leaves translated while the lookup saw the original).
Conversations (TCP handshakes, UDP, ICMP echo, inbound to the floating IP) and
noise (unsolicited packets, stray flags) are generated, interleaved, and run
through OVS and through the simulator with one conntrack: for every frame, the
ports it left by and the addresses and ports it left with must agree, and at the
end every flow's packet count.

Modelled, and so generated: single-address ranges, and no two connections whose
translated reply tuples would clash (OVS would pick another port by a hash).

`test_compiled_gateway_nat_agrees_with_real_packets` does the same to the gateway
the compiler makes (tests/unit/nsnet.py's border1): frames from its trunk as the
hypervisors send them (tag, label), from the internet on its uplink; the frames
that leave must agree in MACs, tag and label too.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import raw

from sdnctl.flowjson import lenient_flow
from sdnctl.flows import (
    Ct,
    Flow,
    FlowSet,
    Goto,
    Match,
    Nat,
    Output,
    render_flow_ofctl,
)
from sdnctl.topology.load import load_topology
from sdnctl.verify.simulate import Conntrack, Packet, Simulator, Trace
from tests.integration.natovs import NatBridge, OfSession, Taps, send_and_read
from tests.integration.simovs import packet_fields

pytestmark = pytest.mark.ovs

ROOT = Path(__file__).resolve().parents[2]
RNG = random.Random()
# The userspace datapath has one conntrack for the machine: zones and addresses of
# this run's own.
ZF, ZS, ZD = (RNG.randrange(20000, 60000) + i for i in (0, 1, 2))
_NET = f"{RNG.randrange(1, 250)}.{RNG.randrange(256)}"
A, B = f"10.{_NET}.11", f"10.{_NET}.12"
_PUB = f"100.{64 + RNG.randrange(60)}.{RNG.randrange(256)}"
SNAT, SNAT_B, FIP = f"{_PUB}.10", f"{_PUB}.11", f"{_PUB}.20"
OUTSIDE = [f"198.18.{RNG.randrange(256)}.{n}" for n in (7, 8, 9)]
MAC = {1: "02:00:00:00:00:0a", 2: "02:00:00:00:00:0b", 3: "02:00:00:00:00:fe"}
GW_MAC = "02:00:00:00:00:01"
PACKETS = 700


def pipeline() -> list[Flow]:
    """The gateway's flows, sorted as a FlowSet keeps them; cookies are their numbers."""
    ip = {"eth_type": 0x0800}
    specs: list[tuple[str, int, dict[str, object], tuple[object, ...]]] = [
        ("port_security", 100, {"in_port": 1, **ip}, (Ct(zone=ZF, table="ct_out", nat=Nat()),)),
        ("port_security", 100, {"in_port": 2, **ip},
         (Ct(zone=ZD, commit=True, nat=Nat("src", SNAT_B)), Goto("l2_forward"))),
        ("port_security", 100, {"in_port": 3, **ip, "ipv4_dst": SNAT},
         (Ct(zone=ZS, table="ct_in", nat=Nat()),)),
        ("port_security", 100, {"in_port": 3, **ip, "ipv4_dst": SNAT_B},
         (Ct(zone=ZD, nat=Nat()), Goto("l2_forward"))),
        ("port_security", 100, {"in_port": 3, **ip, "ipv4_dst": FIP},
         (Ct(zone=ZF, commit=True, table="ct_in", nat=Nat("dst", A)),)),
        # A after zone ZF: a reply of an inbound connection leaves (from FIP now);
        # anything else goes through source NAT in zone ZS.
        ("ct_out", 100, {**ip, "ct_state": "+est+rpl+trk"}, (Output(3),)),
        ("ct_out", 50, {**ip, "ct_state": "-inv+trk"},
         (Ct(zone=ZS, commit=True, table="acl", nat=Nat("src", SNAT)),)),
        ("acl", 100, {**ip, "ct_state": "+inv+trk"}, ()),
        ("acl", 50, {**ip, "ipv4_src": SNAT}, (Output(3),)),
        ("acl", 10, ip, (Output(4),)),  # never, if the translation is seen after table=
        # B's frames after a ct without table: the lookup sees the header from before.
        ("l2_forward", 100, {"in_port": 2, **ip, "ipv4_src": SNAT_B}, (Output(4),)),
        ("l2_forward", 90, {"in_port": 2, **ip}, (Output(3),)),
        ("l2_forward", 100, {"in_port": 3, **ip, "ipv4_dst": B}, (Output(4),)),
        ("l2_forward", 90, {"in_port": 3, **ip, "ipv4_dst": SNAT_B}, (Output(2),)),
        # Towards A after de-NAT (a reply to its SNAT) or DNAT (to its floating IP).
        ("ct_in", 100, {**ip, "ct_state": "+est+trk", "ipv4_dst": A}, (Output(1),)),
        ("ct_in", 100, {**ip, "ct_state": "+new+trk", "ipv4_dst": A}, (Output(1),)),
        ("ct_in", 90, {**ip, "ct_state": "+est+trk"}, (Output(4),)),
    ]
    flows = [lenient_flow(stage, prio, Match.of(match), actions, f"f{i}", i + 1)  # type: ignore[arg-type]
             for i, (stage, prio, match, actions) in enumerate(specs)]
    return sorted(flows, key=lambda f: (f.table, -f.priority, f.cookie))


# ---- traffic ----------------------------------------------------------------------


def _eth(port: int) -> Ether:
    return Ether(src=MAC[port], dst=GW_MAC)


class Traffic:
    """Interleaved conversations and noise: (in_port, frame, what) in sending order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ports = iter(rng.sample(range(20000, 60000), 4000))
        self.ids = iter(rng.sample(range(1, 65535), 2000))

    def outbound(self, port: int, snat: str) -> list[tuple[int, object, str]]:
        me, x = (A if port == 1 else B), self.rng.choice(OUTSIDE)
        kind, sp = self.rng.choice(["tcp", "udp", "icmp"]), next(self.ports)
        tag = f"{kind} {me}:{sp} -> {x}"
        if kind == "tcp":
            return [(port, _eth(port) / IP(src=me, dst=x) / TCP(sport=sp, dport=443, flags="S",
                                                                seq=100), f"{tag} syn"),
                    (3, _eth(3) / IP(src=x, dst=snat) / TCP(sport=443, dport=sp, flags="SA",
                                                            seq=500, ack=101), f"{tag} syn-ack"),
                    (port, _eth(port) / IP(src=me, dst=x) / TCP(sport=sp, dport=443, flags="A",
                                                                seq=101, ack=501), f"{tag} ack"),
                    (3, _eth(3) / IP(src=x, dst=snat) / TCP(sport=443, dport=sp, flags="PA",
                                                            seq=501, ack=101), f"{tag} data")]
        if kind == "udp":
            return [(port, _eth(port) / IP(src=me, dst=x) / UDP(sport=sp, dport=53), f"{tag} udp"),
                    (3, _eth(3) / IP(src=x, dst=snat) / UDP(sport=53, dport=sp), f"{tag} answer"),
                    (port, _eth(port) / IP(src=me, dst=x) / UDP(sport=sp, dport=53),
                     f"{tag} again")]
        i = next(self.ids)
        return [(port, _eth(port) / IP(src=me, dst=x) / ICMP(type=8, id=i), f"{tag} echo"),
                (3, _eth(3) / IP(src=x, dst=snat) / ICMP(type=0, id=i), f"{tag} echo reply")]

    def inbound(self) -> list[tuple[int, object, str]]:
        x, sp = self.rng.choice(OUTSIDE), next(self.ports)
        dport = self.rng.choice([22, 80, 443])
        tag = f"in {x}:{sp} -> {FIP}:{dport}"
        return [(3, _eth(3) / IP(src=x, dst=FIP) / TCP(sport=sp, dport=dport, flags="S", seq=9),
                 f"{tag} syn"),
                (1, _eth(1) / IP(src=A, dst=x) / TCP(sport=dport, dport=sp, flags="SA", seq=70,
                                                     ack=10), f"{tag} syn-ack"),
                (3, _eth(3) / IP(src=x, dst=FIP) / TCP(sport=sp, dport=dport, flags="A", seq=10,
                                                       ack=71), f"{tag} ack"),
                (1, _eth(1) / IP(src=A, dst=x) / TCP(sport=dport, dport=sp, flags="PA", seq=71,
                                                     ack=10), f"{tag} data")]

    def noise(self) -> list[tuple[int, object, str]]:
        x, sp = self.rng.choice(OUTSIDE), next(self.ports)
        dst = self.rng.choice([SNAT, SNAT_B, FIP])
        flags = self.rng.choice(["SA", "A", "R", "F", "S", "PA"])
        r = self.rng.random()
        if r < 0.4:
            return [(3, _eth(3) / IP(src=x, dst=dst) / TCP(sport=80, dport=sp, flags=flags),
                     f"unsolicited {flags} to {dst}")]
        if r < 0.6:
            return [(3, _eth(3) / IP(src=x, dst=dst) / UDP(sport=53, dport=sp),
                     f"unsolicited udp to {dst}")]
        if r < 0.75:
            return [(3, _eth(3) / IP(src=x, dst=dst) / ICMP(type=0, id=next(self.ids)),
                     f"unsolicited echo reply to {dst}")]
        port = self.rng.choice([1, 2])
        me = A if port == 1 else B
        return [(port, _eth(port) / IP(src=me, dst=x) / TCP(sport=sp, dport=80, flags=flags),
                 f"stray {flags} from {me}")]

    def frames(self, n: int) -> list[tuple[int, object, str]]:
        """About `n` frames: conversations started at random, their steps interleaved."""
        running: list[list[tuple[int, object, str]]] = []
        out: list[tuple[int, object, str]] = []
        while len(out) < n:
            if not running or self.rng.random() < 0.35:
                r = self.rng.random()
                running.append(self.outbound(1, SNAT) if r < 0.3 else
                               self.outbound(2, SNAT_B) if r < 0.55 else
                               self.inbound() if r < 0.8 else self.noise())
            conv = self.rng.choice(running)
            out.append(conv.pop(0))
            if not conv:
                running.remove(conv)
        for conv in running:
            out += conv
        return out


def _left_with(pkt: Packet) -> tuple[object, ...]:
    sport = pkt.get("tcp_src", pkt.get("udp_src", pkt.get("icmp_id")))
    dport = pkt.get("tcp_dst", pkt.get("udp_dst", pkt.get("icmp_id")))
    return (pkt.get("ipv4_src"), sport, pkt.get("ipv4_dst"), dport)


def _checksums_good(frame: Ether) -> bool:
    """OVS rewrote the headers: the IP and L4 checksums must still be right."""
    again = Ether(raw(frame))
    ip = again[IP]
    l4 = ip.payload
    want_ip = ip.chksum
    del ip.chksum
    want_l4 = getattr(l4, "chksum", None)
    if want_l4 is not None:
        del l4.chksum
    rebuilt = Ether(raw(again))
    return rebuilt[IP].chksum == want_ip and (
        want_l4 is None or rebuilt[IP].payload.chksum == want_l4)


def test_simulator_nat_agrees_with_real_packets(cleanup) -> None:
    flows = pipeline()
    bridge = NatBridge(cleanup, [1, 2, 3, 4])
    bridge.add_flows([render_flow_ofctl(f) for f in flows])
    installed = bridge.ofctl("dump-flows")
    assert installed.count("cookie=") == len(flows), installed
    taps = Taps(bridge)
    session = OfSession(bridge.name)
    traffic = Traffic(random.Random(RNG.randrange(1 << 30))).frames(PACKETS)
    try:
        got = send_and_read(session, taps, [(port, frame) for port, frame, _ in traffic])
        counts = _counts(bridge)
        conntrack = _conntrack()
    finally:
        session.close()
        taps.close()

    sim = Simulator({"gw": FlowSet.of("gw", flows)},
                    load_topology(ROOT / "topologies" / "single.topology.yaml"))
    ct = Conntrack()
    hits: dict[int, int] = {}
    wrong: list[str] = []
    translated = de_nated = 0
    for i, (port, frame, what) in enumerate(traffic):
        trace = Trace()
        outputs = sim._run_switch("gw", port, packet_fields(frame), ct, trace)
        for step in trace.steps:
            if step.flow is not None:
                hits[step.flow.cookie] = hits.get(step.flow.cookie, 0) + 1
        want = sorted((p, _left_with(packet_fields(f))) for p, f in got[i])
        mine = sorted((p, _left_with(q)) for p, q in outputs)
        if want != mine:
            wrong.append(f"#{i} in_port={port} {what}:\n  ovs:       {want}\n"
                         f"  simulator: {mine}")
        for _, f in got[i]:
            if not _checksums_good(f):
                wrong.append(f"#{i} {what}: left with a bad checksum: {f!r}")
        sent = packet_fields(frame)
        for _, q in outputs:
            translated += q.get("ipv4_src") != sent.get("ipv4_src")
            de_nated += q.get("ipv4_dst") != sent.get("ipv4_dst")
    for cookie in sorted(set(counts) | set(hits)):
        if counts.get(cookie, 0) != hits.get(cookie, 0):
            flow = next(f for f in flows if f.cookie == cookie)
            wrong.append(f"flow {cookie} ({flow.stage} {flow.match}): OVS counted "
                         f"{counts.get(cookie, 0)}, the simulator {hits.get(cookie, 0)}")
    # The connections OVS holds are those the simulator translated, as it translated them.
    model = {(zone, t): nat for (_, zone, t), nat in ct.nats.items()}
    for zone, orig, reply in conntrack:
        if (zone, orig) in model:
            kind, address = model[(zone, orig)]
            expect = (orig[3], orig[4], address, orig[2]) if kind == "src" else (
                address, orig[4], orig[1], orig[2])
            if reply[1:] != expect:
                wrong.append(f"zone {zone} {orig}: OVS replies {reply}, simulator {expect}")
    n_nat_ovs = sum(1 for zone, orig, reply in conntrack if zone in (ZF, ZS, ZD)
                    and (orig[1], orig[3]) != (reply[3], reply[1]))
    out_frames = sum(len(v) for v in got.values())
    print(f"{len(traffic)} frames ({out_frames} left the bridge; {translated} left with a "
          f"translated source, {de_nated} with a translated destination); OVS holds "
          f"{n_nat_ovs} translated connections, the simulator {len(ct.nats)}: "
          f"{len(wrong)} divergences")
    assert translated > 50 and de_nated > 50, "the traffic exercises NAT both ways"
    assert n_nat_ovs == len(ct.nats)
    assert not wrong, f"{len(wrong)} divergences; first:\n" + "\n".join(wrong[:5])


def _counts(bridge: NatBridge) -> dict[int, int]:
    out: dict[int, int] = {}
    for line in bridge.ofctl("dump-flows").splitlines():
        cookie = re.search(r"cookie=0x([0-9a-f]+)", line)
        n = re.search(r"n_packets=(\d+)", line)
        if cookie and n:
            out[int(cookie.group(1), 16)] = int(n.group(1))
    return out


_CT_LINE = re.compile(r"^(\w+),orig=\(([^)]*)\),reply=\(([^)]*)\),zone=(\d+)")


def _conntrack() -> list[tuple[int, tuple[object, ...], tuple[object, ...]]]:
    """(zone, original tuple, reply tuple) of every connection of the run's zones, as
    the simulator spells tuples: (proto, src, sport, dst, dport)."""
    out = []
    for zone in (ZF, ZS, ZD):
        text = subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", f"zone={zone}"],
                              capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            m = _CT_LINE.match(line)
            if m:
                out.append((zone, _tuple(m.group(1), m.group(2)), _tuple(m.group(1), m.group(3))))
    return out


_PROTO = {"tcp": 6, "udp": 17, "icmp": 1}


def _tuple(proto: str, text: str) -> tuple[object, ...]:
    f = dict(kv.split("=", 1) for kv in text.split(","))
    if proto == "icmp":
        port: object = (int(f["id"]), 8)
        return (1, f["src"], port, f["dst"], port)
    return (_PROTO.get(proto, 0), f["src"], int(f.get("sport", 0)), f["dst"],
            int(f.get("dport", 0)))


# ---- the compiled gateway --------------------------------------------------------

GATEWAY = "border1"
UPLINK, TRUNK = 1, 2
ROUTER_MAC = "02:aa:00:00:00:01"


def _gateway_traffic(rng: random.Random, pol, topo, view) -> list[tuple[int, object, str]]:
    """What border1 of tests/unit/nsnet.py meets: tenants' frames from its trunk as
    their hypervisors send them (segment tag, the gateway's label), and frames from
    the internet on its uplink; conversations out through SNAT (one-address pools
    and floating IPs only: OVS picks among several by a hash), inbound to the
    floating IP (allowed tcp/80, denied tcp/22), unsolicited frames."""
    from scapy.contrib.mpls import MPLS
    from scapy.layers.l2 import Dot1Q

    from sdnctl.compile.exits import ns_plan
    from sdnctl.pipeline import gateway_mac

    plan = ns_plan(view)
    uplink = topo.switches[GATEWAY].uplinks[0]
    label = view.fabric_labels[GATEWAY]
    out_vms = []  # (vm, segment vlan, gateway MAC, the source address it leaves with)
    inbound = []  # (vm, vlan, gateway MAC, floating IP)
    for t in plan.tenants.values():
        floating = {vm.name: fip for vm, fip in t.floating}
        for vm in pol.vms.values():
            if vm.tenant != t.name:
                continue
            seg = pol.tenants[t.name].segments[vm.segment]
            if vm.name in floating:
                out_vms.append((vm, seg.vlan, gateway_mac(seg.id), str(floating[vm.name])))
                inbound.append((vm, seg.vlan, gateway_mac(seg.id), str(floating[vm.name])))
            elif t.snat is not None and t.snat.first == t.snat.last:
                out_vms.append((vm, seg.vlan, gateway_mac(seg.id), str(t.snat.first)))
    assert out_vms and inbound
    ports = iter(rng.sample(range(20000, 60000), 4000))

    def from_vm(vm, vlan, gw, l4):
        return (TRUNK, Ether(src=vm.mac, dst=gw) / Dot1Q(vlan=vlan, type=0x8847)
                / MPLS(label=label, s=1, ttl=64) / l4)

    def from_net(l4):
        return (UPLINK, Ether(src=ROUTER_MAC, dst=uplink.mac) / l4)

    convs: list[list[tuple[int, object, str]]] = []
    for _ in range(120):
        r, x, sp = rng.random(), rng.choice(OUTSIDE), next(ports)
        if r < 0.5:
            vm, vlan, gw, addr = rng.choice(out_vms)
            me = str(vm.ip)
            tag = f"{vm.name} {me}:{sp} -> {x} as {addr}"
            if rng.random() < 0.6:
                steps = [
                    (*from_vm(vm, vlan, gw, IP(src=me, dst=x, ttl=63) / TCP(
                        sport=sp, dport=443, flags="S", seq=1)), f"{tag} syn"),
                    (*from_net(IP(src=x, dst=addr) / TCP(sport=443, dport=sp, flags="SA",
                                                         seq=7, ack=2)), f"{tag} syn-ack"),
                    (*from_vm(vm, vlan, gw, IP(src=me, dst=x, ttl=63) / TCP(
                        sport=sp, dport=443, flags="A", seq=2, ack=8)), f"{tag} ack"),
                ]
            else:
                steps = [
                    (*from_vm(vm, vlan, gw, IP(src=me, dst=x, ttl=63) / UDP(sport=sp, dport=53)),
                     f"{tag} udp"),
                    (*from_net(IP(src=x, dst=addr) / UDP(sport=53, dport=sp)), f"{tag} answer"),
                ]
        elif r < 0.8:
            vm, vlan, gw, fip = rng.choice(inbound)
            dport = rng.choice([80, 80, 22])
            tag = f"{x}:{sp} -> {fip}:{dport} ({vm.name})"
            steps = [
                (*from_net(IP(src=x, dst=fip) / TCP(sport=sp, dport=dport, flags="S", seq=5)),
                 f"{tag} syn"),
                (*from_vm(vm, vlan, gw, IP(src=str(vm.ip), dst=x, ttl=63) / TCP(
                    sport=dport, dport=sp, flags="SA", seq=9, ack=6)), f"{tag} syn-ack"),
                (*from_net(IP(src=x, dst=fip) / TCP(sport=sp, dport=dport, flags="A", seq=6,
                                                    ack=10)), f"{tag} ack"),
            ]
        else:
            addr = rng.choice([a for *_, a in out_vms])
            flags = rng.choice(["SA", "A", "R", "S"])
            steps = [(*from_net(IP(src=x, dst=addr) / TCP(sport=80, dport=sp, flags=flags)),
                      f"unsolicited {flags} -> {addr}")]
        convs.append(steps)
    out: list[tuple[int, object, str]] = []
    running: list[list[tuple[int, object, str]]] = []
    while convs or running:
        if convs and (not running or rng.random() < 0.4):
            running.append(convs.pop())
        conv = rng.choice(running)
        out.append(conv.pop(0))
        if not conv:
            running.remove(conv)
    return out


def _left(pkt: Packet) -> tuple[object, ...]:
    from tests.integration.simovs import headers

    h = headers(pkt, False)
    return (*_left_with(pkt), h.get("eth_src"), h.get("eth_dst"), h.get("vlan"),
            h.get("mpls_label"), h.get("ip_ttl"))


def test_compiled_gateway_nat_agrees_with_real_packets(cleanup) -> None:
    """The same comparison on the gateway the compiler makes (tests/unit/nsnet.py's
    border1: two tenants, SNAT, a floating IP with an inbound rule)."""
    from sdnctl.bindings import planned_bindings
    from sdnctl.compile.compiler import compile_network
    from sdnctl.compile.context import NetworkView
    from sdnctl.flows import render_group_ofctl
    from tests.unit.nsnet import net

    pol, topo = net()
    bindings = planned_bindings(pol, topo)
    fs = compile_network(pol, topo, bindings)[GATEWAY]
    view = NetworkView(pol, topo, bindings)
    # Cookies of their own (the flow's number), so counts name flows exactly.
    flows = [lenient_flow(f.stage, f.priority, f.match, f.actions, f.owner, i + 1)
             for i, f in enumerate(fs.flows)]
    bridge = NatBridge(cleanup, [UPLINK, TRUNK])
    for g in fs.groups:
        bridge.ofctl("add-group", render_group_ofctl(g))
    bridge.add_flows([render_flow_ofctl(f) for f in flows])
    taps = Taps(bridge)
    session = OfSession(bridge.name)
    traffic = _gateway_traffic(random.Random(RNG.randrange(1 << 30)), pol, topo, view)
    try:
        got = send_and_read(session, taps, [(port, frame) for port, frame, _ in traffic])
        counts = _counts(bridge)
    finally:
        session.close()
        taps.close()
    sim = Simulator({GATEWAY: FlowSet.of(GATEWAY, flows, fs.groups, fs.meters)}, topo)
    ct = Conntrack()
    hits: dict[int, int] = {}
    wrong: list[str] = []
    for i, (port, frame, what) in enumerate(traffic):
        trace = Trace()
        outputs = sim._run_switch(GATEWAY, port, packet_fields(frame), ct, trace)
        for step in trace.steps:
            if step.flow is not None:
                hits[step.flow.cookie] = hits.get(step.flow.cookie, 0) + 1
        want = sorted((p, _left(packet_fields(f))) for p, f in got[i])
        mine = sorted((p, _left(q)) for p, q in outputs)
        if want != mine:
            wrong.append(f"#{i} in_port={port} {what}:\n  ovs:       {want}\n"
                         f"  simulator: {mine}")
    for cookie in sorted(set(counts) | set(hits)):
        if counts.get(cookie, 0) != hits.get(cookie, 0):
            flow = flows[cookie - 1]
            wrong.append(f"flow {cookie} ({render_flow_ofctl(flow)}): OVS counted "
                         f"{counts.get(cookie, 0)}, the simulator {hits.get(cookie, 0)}")
    out_frames = sum(len(v) for v in got.values())
    print(f"compiled {GATEWAY}: {len(traffic)} frames ({out_frames} left), "
          f"{len(ct.nats)} translated connections: {len(wrong)} divergences")
    assert out_frames > 50 and len(ct.nats) > 20
    assert not wrong, f"{len(wrong)} divergences; first:\n" + "\n".join(wrong[:5])
