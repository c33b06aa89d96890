"""The north–south attacks' frames, built with scapy from the lab's policy and plan.

One builder for every attack name of `sdnctl.lab.attacks.northsouth`: it says who
sends (a VM, or the internet host) and which frames, each with the attack's marker
in its payload. Runs in the test process; `sdnctl.lab.rawsend` sends the bytes
from inside the sender's namespace. Every frame is addressed to a VM, gateway,
uplink or broadcast address of the lab, or to the lab internet's own addresses.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from sdnctl.lab.outside import INTERNET
from sdnctl.lab.plan import HOST_INTF
from sdnctl.pipeline import gateway_mac
from sdnctl.topology.model import Topology

if TYPE_CHECKING:
    from sdnctl.lab.attacks.northsouth import NsLab

DOC_OUTSIDE = ("198.51.100.66", "192.0.2.66")  # invented external sources (doc ranges)


def build_frames(ns: NsLab, name: str, marker: bytes) -> tuple[str, list[tuple[str, bytes]]]:
    """(sender, [(interface, frame)]) of attack `name`, built with scapy."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    pol, r = ns.policy, ns.roles
    rng = random.Random(marker)
    inet = ns.plan.internet
    assert inet is not None
    server, client = str(inet.server), str(inet.client)

    def vm_frame(vm: str, src_ip: str, dst_ip: str, l4: object) -> tuple[str, bytes]:
        v = pol.vms[vm]
        seg = pol.segment_of(v)
        return HOST_INTF, bytes(Ether(src=v.mac, dst=gateway_mac(seg.id))
                                / IP(src=src_ip, dst=dst_ip) / l4 / Raw(marker))

    def syn(port: int, flags: str = "S") -> object:
        return TCP(sport=rng.randrange(20000, 60000), dport=port, flags=flags)

    uplinks = [(end.inner, _uplink_mac(ns.topology, end.switch, end.port))
               for end in inet.ends]

    def outside(eth_dst: str | None, dst_ip: str, l4: object) -> list[tuple[str, bytes]]:
        return [(inner, bytes(Ether(src=inet.mac, dst=eth_dst or mac)
                              / IP(src=client, dst=dst_ip) / l4 / Raw(marker)))
                for inner, mac in uplinks]

    fip = pol.vms[r.floating].floating_ip
    pools = {t: pol.tenants[t].snat for t in pol.tenants if pol.tenants[t].snat is not None}
    me = pol.vms[r.attacker]
    if name == "ns-control":
        # Allowed, marked: out through SNAT (seen by the internet), in through the
        # floating IP (seen by its VM).
        frames = [vm_frame(r.attacker, str(me.ip), server, syn(r.outbound_port))]
        return r.attacker, frames
    if name == "ns-control-in":
        return INTERNET, outside(None, str(fip), syn(r.inbound_port))
    if name == "ns-spoof-external-source":
        frames = []
        for src in (*DOC_OUTSIDE, server, client):
            for dst, l4 in ((server, syn(r.outbound_port)), (server, ICMP()),
                            (str(fip), syn(r.inbound_port)),
                            (str(pol.vms[r.witness].ip), syn(80))):
                frames.append(vm_frame(r.attacker, src, dst, l4))
        return r.attacker, frames
    if name == "ns-floating-ip-source":
        frames = [vm_frame(r.floating, str(fip), dst, l4)
                  for dst, l4 in ((server, syn(r.outbound_port)), (server, ICMP()),
                                  (server, UDP(sport=5353, dport=53)),
                                  (str(fip), syn(r.inbound_port)))]
        return r.floating, frames
    if name == "ns-other-snat-source":
        frames = []
        for pool in pools.values():
            assert pool is not None
            for addr in (*pool.addresses(), fip):
                frames += [vm_frame(r.attacker, str(addr), server, syn(r.outbound_port)),
                           vm_frame(r.attacker, str(addr), server, ICMP())]
        return r.attacker, frames
    if name == "ns-outside-to-inside":
        frames = []
        for vm in ns.plan.hosts:
            v = pol.vms[vm.vm]
            seg = pol.segment_of(v)
            for l4 in (syn(80), syn(r.inbound_port), syn(22), ICMP(),
                       UDP(sport=53, dport=5353)):
                frames += outside(None, str(v.ip), l4)  # routed at the uplink MAC
                frames += outside(v.mac, str(v.ip), l4)  # straight at the VM's MAC
                frames += outside(gateway_mac(seg.id), str(v.ip), l4)
                frames += outside("ff:ff:ff:ff:ff:ff", str(v.ip), l4)
            if seg.vlan is not None:  # the fabric's own format: segment tag + label
                ip = bytes(IP(src=client, dst=str(v.ip)) / syn(80) / Raw(marker))
                for label in sorted(_labels(ns).values()):
                    fabric = (b"\x81\x00" + seg.vlan.to_bytes(2, "big") + b"\x88\x47"
                              + ((label << 12) | 0x100 | 64).to_bytes(4, "big"))
                    for inner, _mac in uplinks:
                        frames.append((inner, _mac_bytes(v.mac) + _mac_bytes(inet.mac)
                                       + fabric + ip))
        return INTERNET, frames
    if name == "ns-nat-unallowed":
        frames = []
        for pool in pools.values():
            assert pool is not None
            for addr in pool.addresses():
                for l4 in (syn(80), syn(r.inbound_port), syn(22), ICMP(),
                           UDP(sport=53, dport=5353)):
                    frames += outside(None, str(addr), l4)
                for _ in range(8):  # guessed NAT mappings: replies to ports never opened
                    for flags in ("SA", "A", "R", "FA"):
                        l4 = TCP(sport=r.outbound_port, dport=rng.randrange(1024, 65536),
                                 flags=flags)
                        frames += outside(None, str(addr), l4)
        for l4 in (syn(22), syn(8080), UDP(sport=53, dport=5353)):
            frames += outside(None, str(fip), l4)  # ports no inbound rule opens
        return INTERNET, frames
    raise KeyError(name)


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _uplink_mac(topology: Topology, switch: str, port: int) -> str:
    return next(u.mac for u in topology.switches[switch].uplinks if u.port == port)


def _labels(ns: NsLab) -> dict[str, int]:
    from sdnctl.bindings import planned_bindings
    from sdnctl.compile.context import NetworkView

    view = NetworkView(ns.policy, ns.topology, planned_bindings(ns.policy, ns.topology))
    return {sw: view.fabric_labels[sw] for sw in view.fabric_labels
            if ns.topology.switches[sw].role.edge}
