"""The simulator is held to Open vSwitch itself.

`test_simulator_agrees_with_ofproto_trace`: each switch of several example networks
is loaded into a real netdev bridge; thousands of generated frames (every protocol,
TCP flag combinations, fragments, VLAN/QinQ/MPLS, ARP requests, replies, gratuitous
and spoofed, spoofed MACs and IPs, trunk and tunnel frames, unknown ports) go
through `ofproto/trace` with `--ct-next` conntrack states, and through the
simulator with the same states. The flows hit (table and flow, recirculation by
recirculation), the ports output to and, for a frame that leaves by one port, the
headers it leaves with (MACs, VLAN, MPLS label, TTL, ARP fields, tunnel key and
far end) must be the same for every frame. Where OVS recirculates after
`pop_mpls` (which `ofproto/trace` does not follow), the rest is traced from the
frozen state with `recirc_id`. Not covered: ct_mark (`--ct-next` sets states
only, so both sides read 0), and OVS's IP reassembly in front of conntrack.

`test_conntrack_model_agrees_with_ovs`: the simulator's conntrack model (which
states a packet gets) against OVS's userspace conntrack, with packet-outs through
`ct()` and per-state counters: every TCP flag combination as a first packet and
inside an established connection, handshakes with and without a commit, UDP,
ICMP requests, replies and errors, other protocols.
"""

from __future__ import annotations

import os
import random
import re
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6Unknown, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import raw

from sdnctl.bindings import planned_bindings
from sdnctl.compile.compiler import compile_network
from sdnctl.compile.context import NetworkView
from sdnctl.pipeline import TABLE_ID, gateway_mac
from sdnctl.policy.load import load_policy, parse_policy
from sdnctl.topology.load import load_topology
from sdnctl.verify.simulate import Conntrack, Simulator, Trace
from tests.integration.netdata import DUAL_STACK_POLICY
from tests.integration.simovs import (
    Appctl,
    Case,
    Host,
    ScriptedConntrack,
    SwitchBridge,
    SwitchView,
    Verdict,
    final_headers,
    generate_cases,
    headers,
    packet_fields,
    parse_trace,
    pop_mpls_bytes,
    sh,
    unfollowed_recirculation,
)

pytestmark = pytest.mark.ovs

ROOT = Path(__file__).resolve().parents[2]
NETWORKS = ["three-tier", "multi-tenant", "leaf-spine", "overlay", "single", "dual-stack"]
PACKETS = int(os.environ.get("SIM_OVS_PACKETS", "6000"))  # per run, over every switch
SEED = int(os.environ.get("SIM_OVS_SEED", "15"))


def _network(name: str):
    if name == "dual-stack":  # IPv6 beside IPv4, over the overlay topology
        topo = load_topology(ROOT / "topologies" / "overlay.topology.yaml")
        policy = parse_policy(DUAL_STACK_POLICY, "dual-stack.policy.yaml", topo)
        bindings = planned_bindings(policy, topo)
        return policy, topo, bindings, compile_network(policy, topo, bindings)
    topo = load_topology(ROOT / "topologies" / f"{name}.topology.yaml")
    policy = load_policy(ROOT / "topologies" / f"{name}.policy.yaml", topo)
    bindings = planned_bindings(policy, topo)
    return policy, topo, bindings, compile_network(policy, topo, bindings)


def _views(policy, topo, bindings) -> list[SwitchView]:
    view = NetworkView(policy, topo, bindings)
    hosts = [Host(vm.mac.lower(), str(vm.ip), str(vm.ip6) if vm.ip6 else None)
             for vm in policy.vms.values()]
    gateways = [Host(gateway_mac(seg.id), str(seg.gateway or seg.subnet.network_address + 1),
                     str(seg.gateway6) if seg.gateway6 else None)
                for t in policy.tenants.values() for seg in t.segments.values()
                if seg.gateway is not None or seg.gateway6 is not None]
    tcp, udp = {22, 80, 9, 0}, {53, 9}
    for t in policy.tenants.values():
        for rule in t.rules:
            for s in rule.services:
                ports = {s.port_lo, s.port_hi, s.port_lo - 1, s.port_hi + 1}
                (tcp if s.proto.value == "tcp" else udp).update(p for p in ports if 0 <= p < 65536)
    vlans = sorted({seg.vlan for t in policy.tenants.values() for seg in t.segments.values()
                    if seg.vlan is not None})
    vnis = sorted({seg.vni for t in policy.tenants.values() for seg in t.segments.values()
                   if seg.vni is not None})
    out = []
    for name in sorted(topo.switches):
        vm_ports = {lv.port: (Host(lv.vm.mac.lower(), str(lv.vm.ip),
                                   str(lv.vm.ip6) if lv.vm.ip6 else None), lv.segment.vlan)
                    for lv in view.local_vms(name)}
        out.append(SwitchView(
            name, vm_ports, view.trunk_ports(name), view.tunnel_port_of(name), vnis,
            sorted(view.fabric_labels.values()), vlans, hosts, gateways, sorted(tcp),
            sorted(udp), sorted(view.tunnel_ips.values()),
        ))
    return out


def _simulate(sim: Simulator, bridge: SwitchBridge, case: Case, tunnel_port: int | None
              ) -> Verdict:
    pkt = packet_fields(case.frame)
    if case.tunnel:
        pkt.update(tun_id=int(case.tunnel["tun_id"], 16), tun_src=case.tunnel["tun_src"],
                   tun_dst=case.tunnel["tun_dst"])
    trace = Trace()
    outputs = sim._run_switch(case.switch, case.in_port, pkt, ScriptedConntrack(case.ct), trace)
    hits = [(TABLE_ID[s.stage], bridge.cookie_of[id(s.flow)] if s.flow is not None else 0)
            for s in trace.steps]
    left = headers(outputs[0][1], outputs[0][0] == tunnel_port) if len(outputs) == 1 else {}
    return Verdict(hits, sorted(port for port, _ in outputs), left)


def test_simulator_agrees_with_ofproto_trace() -> None:
    nets = [(name, *_network(name)) for name in NETWORKS]
    switches = [(name, v, topo, fss) for name, policy, topo, bindings, fss in nets
                for v in _views(policy, topo, bindings)]
    per_switch = -(-PACKETS // len(switches))
    appctl = Appctl()
    divergences: list[str] = []
    traced = continued = compared = 0
    started = time.monotonic()
    try:
        for i, (net, v, topo, fss) in enumerate(switches):
            fs = fss[v.name]
            ports = set(v.vm_ports) | set(v.trunks)
            bridge = SwitchBridge(fs, ports, v.tunnel_port)
            try:
                sim = Simulator({v.name: fs}, topo)
                for case in generate_cases(v, per_switch, SEED * 1000 + i):
                    args = [bridge.name, case.flow_text(), raw(case.frame).hex()]
                    for state in case.ct:
                        args += ["--ct-next", state]
                    text = appctl.call("ofproto/trace", *args)
                    traced += 1
                    want = parse_trace(text, bridge.name, case.in_port)
                    rid = unfollowed_recirculation(text)
                    if rid is not None:  # after pop_mpls: trace the rest from where it froze
                        continued += 1
                        args = [bridge.name, f"recirc_id={rid},{case.flow_text()}",
                                pop_mpls_bytes(raw(case.frame)).hex()]
                        for state in case.ct:
                            args += ["--ct-next", state]
                        more = appctl.call("ofproto/trace", *args)
                        parse_trace(more, bridge.name, case.in_port, want)
                        want.outputs.sort()
                        text += "\n(continued)\n" + more
                    if len(want.outputs) == 1:  # left by one port: its headers too
                        compared += 1
                        want.left_with = final_headers(text, want.outputs[0] == v.tunnel_port)
                    got = _simulate(sim, bridge, case, v.tunnel_port)
                    if want != got:
                        divergences.append(
                            f"{net}/{v.name} in_port={case.in_port} {case.what} ct={case.ct}\n"
                            f"  frame: {case.frame!r}\n  simulator: {got.text()}\n"
                            f"  ovs:       {want.text()}\n{_indent(text)}")
            finally:
                bridge.remove()
    finally:
        appctl.close()
    seconds = time.monotonic() - started
    print(f"{traced} frames over {len(switches)} switches in {seconds:.1f} s"
          f" ({continued} traced on after an MPLS pop, {compared} output headers compared):"
          f" {len(divergences)} divergences")
    if os.environ.get("SIM_OVS_DUMP"):  # every divergence, for a human
        Path(os.environ["SIM_OVS_DUMP"]).write_text("\n\n".join(divergences))
    assert traced >= PACKETS
    assert not divergences, f"{len(divergences)} of {traced} diverge; first:\n" + "\n".join(
        divergences[:3])


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.splitlines())


# ---- conntrack: the model against OVS's userspace conntrack -------------------------

_STATES = ("+new+trk", "+est-rpl+trk", "+est+rpl+trk", "+inv+trk", "+rel-rpl+trk", "+rel+rpl+trk")
_STATE_BITS = {"+new+trk": 0x21, "+est-rpl+trk": 0x22, "+est+rpl+trk": 0x2A, "+inv+trk": 0x30,
               "+rel-rpl+trk": 0x24, "+rel+rpl+trk": 0x2C}
A_MAC, B_MAC = "02:00:00:00:00:01", "02:00:00:00:00:02"
# The userspace datapath has one conntrack for every bridge of the machine: a zone and
# addresses of this run's own, so no connection of an earlier run (or of anyone
# else) is found.
ZONE = random.randrange(20000, 60000)
A, B = (f"10.{random.randrange(256)}.{random.randrange(256)}.{n}" for n in (1, 2))
A6, B6 = (f"2001:db8:{random.randrange(1 << 16):x}::{n}" for n in (1, 2))


class ConntrackBridge:
    """A bridge where a packet-out runs `ct(zone=ZONE)` and table 1 counts each state
    (committing it when reg0=1), so each packet's state is read from the counters."""

    def __init__(self) -> None:
        self.name = f"ssc{uuid.uuid4().hex[:7]}"
        sh("ovs-vsctl", "add-br", self.name, "--", "set", "bridge", self.name,
           "datapath_type=netdev", "protocols=OpenFlow13", "fail_mode=secure")
        flows = []
        for i, state in enumerate(_STATES):
            commit = "drop" if "inv" in state else f"ct(commit,zone={ZONE})"
            for ip in ("ip", "ipv6"):
                flows.append(f"table=1,priority={100 + i},{ip},reg0=1,ct_state={state} "
                             f"actions={commit}")
                flows.append(f"table=1,priority={100 + i},{ip},reg0=0,ct_state={state} "
                             "actions=drop")
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", self.name, "-"],
                       input="\n".join(flows) + "\n", check=True, capture_output=True, text=True)
        self.counts = self._counts()

    def _counts(self) -> dict[str, int]:
        out = sh("ovs-ofctl", "-O", "OpenFlow13", "dump-flows", self.name, "table=1")
        got: dict[str, int] = {}
        for m in re.finditer(r"n_packets=(\d+).*ct_state=([^, ]+)", out):
            got[m.group(2)] = got.get(m.group(2), 0) + int(m.group(1))
        return got

    def send(self, frame, commit: bool) -> int | None:
        """The state OVS gave `frame` (bits as the simulator's), None: no ct state."""
        sh("ovs-ofctl", "-O", "OpenFlow13", "packet-out", self.name, "CONTROLLER",
           f"load:{int(commit)}->NXM_NX_REG0[],ct(zone={ZONE},table=1)", raw(frame).hex())
        now = self._counts()
        moved = [k for k in now if now[k] != self.counts.get(k, 0)]
        self.counts = now
        assert len(moved) <= 1, moved
        return _STATE_BITS[_canonical(moved[0])] if moved else None

    def remove(self) -> None:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", self.name], check=False)


def _canonical(text: str) -> str:
    """ovs-ofctl prints ct_state flags in its own order; ours is the tuple above."""
    flags = set(re.findall(r"[+-][a-z]+", text))
    for state in _STATES:
        if set(re.findall(r"[+-][a-z]+", state)) == flags:
            return state
    raise AssertionError(text)


def _tcp(src: str, dst: str, sport: int, dport: int, flags: int, seq: int = 100,
         ack: int = 0):
    mac = (A_MAC, B_MAC) if src == A else (B_MAC, A_MAC)
    return Ether(src=mac[0], dst=mac[1]) / IP(src=src, dst=dst) / TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack if flags & 0x10 else 0)


def _sequences() -> list[tuple[str, list[tuple[object, bool]]]]:
    """Named packet sequences, each on a connection of its own: (frame, commit)."""
    seqs: list[tuple[str, list[tuple[object, bool]]]] = []
    port = iter(range(20000, 60000))
    for flags in [*range(64), 0x42, 0x82, 0xC2, 0x52, 0xD0]:
        p = next(port)  # a first packet, committed if it may be, then an ACK after it
        seqs.append((f"first tcp {flags:#x}", [
            (_tcp(A, B, p, 80, flags), True), (_tcp(A, B, p, 80, 0x10, 101, 1), False)]))
    for flags in (0x00, 0x01, 0x02, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x16, 0x18, 0x1A,
                  0x29, 0x32, 0x3F):
        for forward in (True, False):
            p = next(port)
            last = (_tcp(A, B, p, 80, flags, 101, 501) if forward
                    else _tcp(B, A, 80, p, flags, 501, 101))
            seqs.append((f"established, {'forward' if forward else 'reply'} tcp {flags:#x}", [
                (_tcp(A, B, p, 80, 0x02, 100), True), (_tcp(B, A, 80, p, 0x12, 500, 101), False),
                (_tcp(A, B, p, 80, 0x10, 101, 501), False), (last, False)]))
    p = next(port)
    seqs.append(("SYN not committed, then SYN-ACK", [
        (_tcp(A, B, p, 80, 0x02), False), (_tcp(B, A, 80, p, 0x12, 500, 101), False)]))
    p = next(port)
    seqs.append(("SYN retransmitted before the SYN-ACK", [
        (_tcp(A, B, p, 80, 0x02), True), (_tcp(A, B, p, 80, 0x02), False),
        (_tcp(B, A, 80, p, 0x12, 500, 101), False), (_tcp(A, B, p, 80, 0x10, 101, 501), False)]))
    p = next(port)
    seqs.append(("mid-stream pickup, then the other side", [
        (_tcp(A, B, p, 80, 0x10, 100, 5), True), (_tcp(B, A, 80, p, 0x10, 5, 100), False)]))
    p = next(port)
    udp = [Ether(src=A_MAC, dst=B_MAC) / IP(src=A, dst=B) / UDP(sport=p, dport=53),
           Ether(src=B_MAC, dst=A_MAC) / IP(src=B, dst=A) / UDP(sport=53, dport=p)]
    seqs.append(("udp", [(udp[0], True), (udp[0], False), (udp[1], False), (udp[0], False)]))
    p = next(port)
    seqs.append(("udp, a reply first", [
        (Ether(src=B_MAC, dst=A_MAC) / IP(src=B, dst=A) / UDP(sport=53, dport=p), False)]))
    for t in range(19):
        seqs.append((f"icmp type {t} first", [
            (Ether(src=A_MAC, dst=B_MAC) / IP(src=A, dst=B) / ICMP(type=t, id=1000 + t), True)]))
    echo = [Ether(src=A_MAC, dst=B_MAC) / IP(src=A, dst=B) / ICMP(type=8, id=77),
            Ether(src=B_MAC, dst=A_MAC) / IP(src=B, dst=A) / ICMP(type=0, id=77),
            Ether(src=B_MAC, dst=A_MAC) / IP(src=B, dst=A) / ICMP(type=8, id=77)]
    seqs.append(("echo, again, reply, a request back with the same id", [
        (echo[0], True), (echo[0], False), (echo[1], False), (echo[2], False)]))
    seqs += _sequences6(port)
    gre = [Ether(src=A_MAC, dst=B_MAC) / IP(src=A, dst=B) / GRE(),
           Ether(src=B_MAC, dst=A_MAC) / IP(src=B, dst=A) / GRE()]
    seqs.append(("gre", [(gre[0], True), (gre[0], False), (gre[1], False)]))
    return seqs


def _v6(forward: bool):
    a, b = (A_MAC, B_MAC) if forward else (B_MAC, A_MAC)
    src, dst = (A6, B6) if forward else (B6, A6)
    return Ether(src=a, dst=b) / IPv6(src=src, dst=dst)


def _sequences6(port) -> list[tuple[str, list[tuple[object, bool]]]]:
    """IPv6: a handshake, UDP, every ICMPv6 type that matters as a first packet
    (neighbour discovery and MLD must be invalid), echo and its reply."""
    seqs: list[tuple[str, list[tuple[object, bool]]]] = []
    p = next(port)
    seqs.append(("tcp6 handshake", [
        (_v6(True) / TCP(sport=p, dport=80, flags=0x02, seq=100), True),
        (_v6(False) / TCP(sport=80, dport=p, flags=0x12, seq=500, ack=101), False),
        (_v6(True) / TCP(sport=p, dport=80, flags=0x10, seq=101, ack=501), False)]))
    for flags in (0x12, 0x00, 0x01, 0x04, 0x10):
        p = next(port)
        seqs.append((f"tcp6 first {flags:#x}", [
            (_v6(True) / TCP(sport=p, dport=80, flags=flags, seq=100,
                             ack=5 if flags & 0x10 else 0), True)]))
    p = next(port)
    seqs.append(("udp6", [(_v6(True) / UDP(sport=p, dport=53), True),
                          (_v6(False) / UDP(sport=53, dport=p), False)]))
    for t in (1, 2, 3, 4, 128, 129, 130, 131, 133, 134, 135, 136, 137, 143):
        frame = _v6(True) / ICMPv6Unknown(type=t, code=0, msgbody=struct.pack("!HH", 900 + t, 1))
        seqs.append((f"icmp6 type {t} first", [(Ether(raw(frame)), True)]))
    echo = [_v6(True) / ICMPv6EchoRequest(id=4242), _v6(False) / ICMPv6EchoReply(id=4242)]
    seqs.append(("icmp6 echo, reply", [(echo[0], True), (echo[0], False), (echo[1], False)]))
    return seqs


def test_conntrack_model_agrees_with_ovs() -> None:
    bridge = ConntrackBridge()
    wrong: list[str] = []
    sent = 0
    try:
        for name, steps in _sequences():
            model = Conntrack()
            for i, (frame, commit) in enumerate(steps):
                want = bridge.send(frame, commit)
                sent += 1
                pkt = packet_fields(frame)
                got = model.lookup("sw", 1, pkt)
                if commit and got & 0x01:  # ct(commit) on a new connection, as table 1 does
                    model.commit("sw", 1, pkt)
                if got != want:
                    wrong.append(f"{name}, packet {i + 1}: simulator {got:#x}, OVS {want}")
    finally:
        bridge.remove()
    print(f"{sent} packets through OVS conntrack: {len(wrong)} disagreements")
    assert not wrong, "\n".join(wrong)
