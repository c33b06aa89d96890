"""The hostile frames, built with scapy from a Scene: one builder per attack name.

Runs inside the attacker's VM (see `hostile`). Every frame that has room for it
ends with the attack's marker (in its payload, or as Ethernet trailer padding),
so the judge recognises an attack frame wherever it turns up, even one that
impersonates a VM perfectly. Each builder returns the frames to send once; the
agent repeats them (the first copy goes through the OVS upcall path, later ones
through the datapath flow cache, and both must drop).

Every frame is addressed to a VM, gateway or broadcast address of the lab.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from random import Random

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror, fragment
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NA, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from sdnctl.lab.attacks.scene import Scene, VmAddr

BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
TPID_8021Q, TPID_8021AD, TPID_9100 = 0x8100, 0x88A8, 0x9100
ETH_IP, ETH_ARP, ETH_IPV6, ETH_MPLS, ETH_MPLS_MC = 0x0800, 0x0806, 0x86DD, 0x8847, 0x8848
DENIED_PORT = 22  # no rule allows tcp/22 to anyone in the hostile policy
ALLOWED_PORT = 8080  # red front -> red back


@dataclass(frozen=True, slots=True)
class Ctx:
    """What a builder may vary: the marker, randomness, and the open connection."""

    marker: bytes
    rng: Random
    sport: int = 0  # local port of evil's open connection to rb1:8080 (needs_connection)


# ------------------------------------------------------------------ helpers


def next_hop(src: VmAddr, dst: VmAddr) -> str:
    """Where `src` would send a frame for `dst`: the VM itself, or its own gateway."""
    if src.vlan == dst.vlan or src.gateway_mac is None:
        return dst.mac
    return src.gateway_mac


def ip_frame(eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, l4: Packet,
             c: Ctx, ttl: int = 64) -> bytes:
    return bytes(Ether(src=eth_src, dst=eth_dst) / IP(src=ip_src, dst=ip_dst, ttl=ttl)
                 / l4 / Raw(c.marker))


def syn(eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, dport: int, c: Ctx,
        flags: str = "S") -> bytes:
    return ip_frame(eth_src, eth_dst, ip_src, ip_dst,
                    TCP(sport=c.rng.randrange(20000, 60000), dport=dport, flags=flags), c)


def echo(eth_src: str, eth_dst: str, ip_src: str, ip_dst: str, c: Ctx, ttl: int = 64,
         kind: int = 8) -> bytes:
    l4 = ICMP(type=kind, id=c.rng.randrange(1, 0xFFFF), seq=1)
    return ip_frame(eth_src, eth_dst, ip_src, ip_dst, l4, c, ttl)


def arp(eth_src: str, eth_dst: str, op: int, hwsrc: str, psrc: str, pdst: str, c: Ctx,
        hwdst: str = ZERO_MAC) -> bytes:
    return bytes(Ether(src=eth_src, dst=eth_dst)
                 / ARP(op=op, hwsrc=hwsrc, psrc=psrc, hwdst=hwdst, pdst=pdst) / Raw(c.marker))


def raw_frame(eth_dst: str, eth_src: str, tags: list[tuple[int, int]], ethertype: int,
              payload: bytes) -> bytes:
    """Ethernet with any stack of (TPID, VID) tags, built by hand so any TPID goes."""
    out = _mac(eth_dst) + _mac(eth_src)
    for tpid, vid in tags:
        out += struct.pack("!HH", tpid, vid & 0x0FFF)
    return out + struct.pack("!H", ethertype) + payload


def mpls_stack(labels: list[int], ttl: int = 64) -> bytes:
    """Label stack entries, bottom-of-stack set on the last one."""
    out = b""
    for i, label in enumerate(labels):
        bos = 1 if i == len(labels) - 1 else 0
        out += struct.pack("!I", (label << 12) | (bos << 8) | ttl)
    return out


def ip_payload(src: str, dst: str, dport: int, c: Ctx, flags: str = "S") -> bytes:
    """An IPv4 packet (no Ethernet) for the inside of tagged and labelled frames."""
    return bytes(IP(src=src, dst=dst) / TCP(sport=40000, dport=dport, flags=flags) / Raw(c.marker))


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


# ------------------------------------------------------------------ spoofing


def spoof_mac(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, rb1, bx1 = s.me, s.vm("rf2"), s.vm("rb1"), s.vm("bx1")
    out = []
    for mac in (rf2.mac, bx1.mac):  # someone else's MAC, our own (allowed) IP
        out += [
            syn(mac, next_hop(me, rb1), me.ip, rb1.ip, ALLOWED_PORT, c),
            echo(mac, rf2.mac, me.ip, rf2.ip, c),
            echo(mac, next_hop(me, rb1), me.ip, rb1.ip, c),
            syn(mac, bx1.mac, me.ip, bx1.ip, 80, c),
        ]
    return out


def spoof_ip(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, rb1, bx2, wa = s.me, s.vm("rf2"), s.vm("rb1"), s.vm("bx2"), s.vm("wa")
    gw = next_hop(me, rb1)
    return [
        syn(me.mac, gw, rf2.ip, rb1.ip, ALLOWED_PORT, c),  # rf2 may do this; we are not rf2
        echo(me.mac, gw, rf2.ip, rb1.ip, c),
        syn(me.mac, bx2.mac, wa.ip, bx2.ip, 80, c),  # a blue address
        echo(me.mac, rf2.mac, rf2.ip, rf2.ip, c),  # LAND: the victim to itself
        syn(me.mac, rf2.mac, rf2.ip, rf2.ip, DENIED_PORT, c),
    ]


def spoof_vm(s: Scene, c: Ctx) -> list[bytes]:
    rf2, rb1, bx1, bx2, wa = (s.vm(n) for n in ("rf2", "rb1", "bx1", "bx2", "wa"))
    return [
        syn(rf2.mac, next_hop(rf2, rb1), rf2.ip, rb1.ip, ALLOWED_PORT, c),
        echo(rf2.mac, next_hop(rf2, rb1), rf2.ip, rb1.ip, c),
        syn(bx1.mac, bx2.mac, bx1.ip, bx2.ip, 80, c),  # blue allows everything
        echo(bx1.mac, bx2.mac, bx1.ip, bx2.ip, c),
        syn(bx1.mac, wa.mac, bx1.ip, wa.ip, 80, c),
    ]


def made_up_source(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, rb1, bx1 = s.me, s.vm("rf2"), s.vm("rb1"), s.vm("bx1")
    invented = [f"02:de:ad:{c.rng.randrange(256):02x}:{c.rng.randrange(256):02x}:01"
                for _ in range(2)]
    macs = [*invented, "01:00:5e:00:00:01", BROADCAST, ZERO_MAC]
    ips = ["10.0.1.201", "0.0.0.0", "255.255.255.255", "10.0.1.255"]
    out = []
    for mac in macs:
        for ip in (ips[0], me.ip):
            out += [echo(mac, rf2.mac, ip, rf2.ip, c),
                    syn(mac, next_hop(me, rb1), ip, rb1.ip, ALLOWED_PORT, c),
                    syn(mac, bx1.mac, ip, bx1.ip, 80, c)]
    for ip in ips:  # our own MAC with an address nobody owns
        out += [echo(me.mac, rf2.mac, ip, rf2.ip, c), echo(me.mac, BROADCAST, ip, "10.0.1.255", c)]
    return out


# ------------------------------------------------------------------ ARP


def arp_gratuitous(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2 = s.me, s.vm("rf2")
    out = []
    for claim in (rf2.ip, me.gateway_ip or "10.0.1.1", me.ip, s.vm("wa").ip):
        out += [arp(me.mac, BROADCAST, 1, me.mac, claim, claim, c),  # request form
                arp(me.mac, BROADCAST, 2, me.mac, claim, claim, c, hwdst=BROADCAST)]  # reply
    return out


def arp_reply_forged(s: Scene, c: Ctx) -> list[bytes]:
    me = s.me
    rf2, rb1, bx1, bx2 = (s.vm(n) for n in ("rf2", "rb1", "bx1", "bx2"))
    gw = me.gateway_ip or "10.0.1.1"
    return [
        arp(me.mac, rf2.mac, 2, me.mac, gw, rf2.ip, c, hwdst=rf2.mac),  # foreign IP
        arp(me.mac, rf2.mac, 2, rf2.mac, me.ip, rf2.ip, c, hwdst=rf2.mac),  # foreign MAC
        arp(me.mac, rf2.mac, 2, me.mac, me.ip, rf2.ip, c, hwdst=rf2.mac),  # true, unsolicited
        arp(me.mac, rf2.mac, 2, me.mac, rb1.ip, rf2.ip, c, hwdst=rf2.mac),
        arp(rf2.mac, rf2.mac, 2, me.mac, me.ip, rf2.ip, c, hwdst=rf2.mac),  # Ethernet/ARP differ
        arp(me.mac, bx1.mac, 2, me.mac, gw, bx1.ip, c, hwdst=bx1.mac),  # the other tenant
        arp(me.mac, bx1.mac, 2, me.mac, bx2.ip, bx1.ip, c, hwdst=bx1.mac),
    ]


def arp_request_spoofed(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, bx2 = s.me, s.vm("rf2"), s.vm("bx2")
    gw = me.gateway_ip or "10.0.1.1"
    return [
        arp(me.mac, BROADCAST, 1, me.mac, gw, rf2.ip, c),  # "10.0.1.1 asks": caches learn
        arp(me.mac, rf2.mac, 1, me.mac, gw, rf2.ip, c),
        arp(me.mac, BROADCAST, 1, me.mac, bx2.ip, rf2.ip, c),  # a blue sender
        arp(me.mac, BROADCAST, 1, rf2.mac, me.ip, rf2.ip, c),  # foreign sender MAC
        arp(me.mac, BROADCAST, 1, me.mac, me.ip, rf2.ip, c),  # honest: the switch answers it
        arp(me.mac, BROADCAST, 1, me.mac, me.ip, bx2.ip, c),  # honest, for a blue address
    ]


# ------------------------------------------------------------------ VLAN and MPLS


def vlan_tagged(s: Scene, c: Ctx) -> list[bytes]:
    me = s.me
    rf2, rb1, bx1, bx2 = (s.vm(n) for n in ("rf2", "rb1", "bx1", "bx2"))
    out = []
    for vid, dst in ((me.vlan, rf2), (rb1.vlan, rb1), (bx1.vlan, bx1), (bx2.vlan, bx2),
                     (0, rf2), (4095, bx1)):
        for dport in (80, DENIED_PORT):
            out.append(raw_frame(dst.mac, me.mac, [(TPID_8021Q, vid)], ETH_IP,
                                 ip_payload(me.ip, dst.ip, dport, c)))
    arp_who = bytes(ARP(op=1, hwsrc=me.mac, psrc=me.ip, pdst=bx2.ip)) + c.marker
    out.append(raw_frame(BROADCAST, me.mac, [(TPID_8021Q, bx2.vlan)], ETH_ARP, arp_who))
    return out


def vlan_double_tagged(s: Scene, c: Ctx) -> list[bytes]:
    me, rb1, bx1, bx2 = s.me, s.vm("rb1"), s.vm("bx1"), s.vm("bx2")
    out = []
    for outer in (TPID_8021Q, TPID_8021AD, TPID_9100):
        for dst in (bx1, bx2, rb1):
            for first in (me.vlan, dst.vlan):
                tags = [(outer, first), (TPID_8021Q, dst.vlan)]
                out.append(raw_frame(dst.mac, me.mac, tags, ETH_IP,
                                     ip_payload(me.ip, dst.ip, 80, c)))
    return out


def mpls_fabric_label(s: Scene, c: Ctx) -> list[bytes]:
    me, rb1, bx1, bx2 = s.me, s.vm("rb1"), s.vm("bx1"), s.vm("bx2")
    out = []
    for dst in (rb1, bx1, bx2):
        inner = ip_payload(me.ip, dst.ip, DENIED_PORT, c)
        inner_ok = ip_payload(me.ip, dst.ip, ALLOWED_PORT, c)
        for eth_src in (me.mac, dst.gateway_mac or me.mac):  # as the router would rewrite it
            # Exactly what the fabric carries: segment tag, then the hypervisor's label.
            out.append(raw_frame(dst.mac, eth_src, [(TPID_8021Q, dst.vlan)], ETH_MPLS,
                                 mpls_stack([dst.label]) + inner))
            out.append(raw_frame(dst.mac, eth_src, [(TPID_8021Q, dst.vlan)], ETH_MPLS,
                                 mpls_stack([dst.label]) + inner_ok))
        out.append(raw_frame(dst.mac, me.mac, [], ETH_MPLS, mpls_stack([dst.label]) + inner))
        out.append(raw_frame(dst.mac, me.mac, [(TPID_8021Q, dst.vlan)], ETH_MPLS,
                             mpls_stack([dst.label, dst.label]) + inner))
        out.append(raw_frame(dst.mac, me.mac, [(TPID_8021Q, dst.vlan)], ETH_MPLS_MC,
                             mpls_stack([dst.label]) + inner))
    return out


# ------------------------------------------------------------------ tenants and services


def cross_tenant(s: Scene, c: Ctx) -> list[bytes]:
    me, bx1, bx2, wa = s.me, s.vm("bx1"), s.vm("bx2"), s.vm("wa")
    ours = {a.ip for a in s.vms.values() if a.tenant == me.tenant}
    out = []
    for dst in (bx1, bx2, wa):
        for eth_dst in (dst.mac, me.gateway_mac or dst.mac, dst.gateway_mac or dst.mac):
            out += [syn(me.mac, eth_dst, me.ip, dst.ip, 80, c),
                    ip_frame(me.mac, eth_dst, me.ip, dst.ip, UDP(sport=5353, dport=53), c)]
            # Sent to a router MAC (ours or blue's: the router takes any gateway MAC and
            # routes within our tenant), bx1's address is rf2's, whom we may ping.
            if not (eth_dst != dst.mac and dst.ip in ours):
                out.append(echo(me.mac, eth_dst, me.ip, dst.ip, c))
    out += [echo(me.mac, BROADCAST, me.ip, "10.0.1.255", c),  # directed broadcast
            echo(me.mac, BROADCAST, me.ip, "255.255.255.255", c),
            echo(me.mac, "01:00:5e:00:00:01", me.ip, "224.0.0.1", c)]
    return out


def ip_fragments(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, rb1, bx1 = s.me, s.vm("rf2"), s.vm("rb1"), s.vm("bx1")
    out = []
    for dst in (rb1, rf2, bx1):
        eth = Ether(src=me.mac, dst=next_hop(me, dst))
        whole = IP(src=me.ip, dst=dst.ip, id=c.rng.randrange(1, 0xFFFF)) / TCP(
            sport=41000, dport=DENIED_PORT, flags="S") / Raw(c.marker * 4)
        out += [bytes(eth / f) for f in fragment(whole, fragsize=8)]  # tiny fragments
        # Overlap: the first fragment names an allowed port, a second one at offset 0
        # rewrites it to the denied one (and the other way round).
        ipid = c.rng.randrange(1, 0xFFFF)
        head_ok = bytes(TCP(sport=41001, dport=ALLOWED_PORT, flags="S"))
        head_bad = bytes(TCP(sport=41001, dport=DENIED_PORT, flags="S")) + c.marker
        for first, second in ((head_ok, head_bad), (head_bad, head_ok)):
            out.append(bytes(eth / IP(src=me.ip, dst=dst.ip, id=ipid, proto=6, flags="MF",
                                      frag=0) / Raw(first)))
            out.append(bytes(eth / IP(src=me.ip, dst=dst.ip, id=ipid, proto=6, frag=0)
                             / Raw(second)))
        # Orphans: a middle fragment, and a first fragment whose rest never comes.
        out.append(bytes(eth / IP(src=me.ip, dst=dst.ip, id=ipid + 1, proto=6, frag=3)
                         / Raw(c.marker * 2)))
        out.append(bytes(eth / IP(src=me.ip, dst=dst.ip, id=ipid + 2, proto=6, flags="MF")
                         / TCP(sport=41002, dport=DENIED_PORT, flags="S") / Raw(c.marker)))
    return out


TCP_ODD_FLAGS = ("SF", "", "F", "R", "A", "SA", "SR", "FPU", "FSRPAUEC", "PA", "U")


def tcp_odd_flags(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, rb1 = s.me, s.vm("rf2"), s.vm("rb1")
    return [syn(me.mac, next_hop(me, dst), me.ip, dst.ip, DENIED_PORT, c, flags=flags)
            for dst in (rb1, rf2) for flags in TCP_ODD_FLAGS]


def icmp_related_forged(s: Scene, c: Ctx) -> list[bytes]:
    """ICMP that claims to be about evil's real connection evil:sport -> rb1:8080."""
    me, rf2, rb1, bx1 = s.me, s.vm("rf2"), s.vm("rb1"), s.vm("bx1")
    sp = c.sport

    def error(dst: VmAddr, kind: int, code: int, quoted: Packet, gw: str = "0.0.0.0") -> bytes:
        icmp = ICMP(type=kind, code=code, gw=gw) if kind == 5 else ICMP(type=kind, code=code)
        return ip_frame(me.mac, next_hop(me, dst), me.ip, dst.ip, icmp / quoted, c)

    real = IPerror(src=rb1.ip, dst=me.ip) / TCPerror(sport=ALLOWED_PORT, dport=sp)
    return [
        # To rb1, quoting connections that do not exist.
        error(rb1, 3, 3, IPerror(src=rb1.ip, dst=me.ip) / TCPerror(sport=DENIED_PORT, dport=sp)),
        error(rb1, 3, 3, IPerror(src=me.ip, dst=rb1.ip) / TCPerror(sport=sp, dport=ALLOWED_PORT)),
        error(rb1, 11, 0, IPerror(src=rb1.ip, dst=me.ip)
              / TCPerror(sport=ALLOWED_PORT, dport=sp + 1)),
        error(rb1, 3, 4, IPerror(src=rb1.ip, dst=me.ip) / UDPerror(sport=ALLOWED_PORT, dport=sp)),
        # To third parties, quoting the real connection.
        error(rf2, 3, 1, real),
        error(bx1, 3, 1, real),
        error(rf2, 5, 1, IPerror(src=rf2.ip, dst=rb1.ip) / TCPerror(sport=sp, dport=ALLOWED_PORT),
              gw=me.ip),  # redirect: "send rb1's traffic to me"
        # Echo replies nobody asked for.
        echo(me.mac, next_hop(me, rb1), me.ip, rb1.ip, c, kind=0),
        echo(me.mac, rf2.mac, me.ip, rf2.ip, c, kind=0),
    ]


def non_ip(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, bx1 = s.me, s.vm("rf2"), s.vm("bx1")
    body = c.marker * 6  # also pads every frame past the 60-byte minimum
    ll = "fe80::ff:fe0e:166"
    out = [
        bytes(Ether(src=me.mac, dst=rf2.mac) / IPv6(src=ll, dst="fe80::ff:fe0a:112")
              / ICMPv6EchoRequest(data=body)),
        bytes(Ether(src=me.mac, dst="33:33:00:00:00:01") / IPv6(src=ll, dst="ff02::1")
              / ICMPv6EchoRequest(data=body)),
        bytes(Ether(src=me.mac, dst="33:33:00:00:00:01") / IPv6(src=ll, dst="ff02::1")
              / ICMPv6ND_NA(tgt="fe80::ff:fe0a:112", R=0, S=0, O=1) / Raw(body)),
        raw_frame("01:80:c2:00:00:0e", me.mac, [], 0x88CC, _lldp(me.mac) + body),
        raw_frame("01:80:c2:00:00:03", me.mac, [], 0x888E, b"\x01\x01\x00\x00" + body),  # EAPOL
        raw_frame(BROADCAST, me.mac, [], 0x8863, b"\x11\x09\x00\x00\x00\x00" + body),  # PADI
        raw_frame(BROADCAST, me.mac, [], 0x8035, bytes(ARP(op=3, hwsrc=me.mac)) + body),
        raw_frame(rf2.mac, me.mac, [], 0x8137, b"\xff\xff" + body),  # IPX
        raw_frame(BROADCAST, me.mac, [], 0x0842, b"\xff" * 6 + _mac(rf2.mac) * 16 + body),
        raw_frame(rf2.mac, me.mac, [], 0x9000, b"\x00\x00" + body),  # loopback
    ]
    for dst in (rf2.mac, bx1.mac, BROADCAST):
        out.append(raw_frame(dst, me.mac, [], 0x88B5, body))  # local experimental
    # 802.3 length field + LLC: spanning tree BPDU, and SNAP carrying IPv4.
    bpdu = b"\x42\x42\x03" + b"\x00" * 35 + body
    out.append(_mac("01:80:c2:00:00:00") + _mac(me.mac) + struct.pack("!H", len(bpdu)) + bpdu)
    snap = b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + ip_payload(me.ip, rf2.ip, DENIED_PORT, c)
    out.append(_mac(rf2.mac) + _mac(me.mac) + struct.pack("!H", len(snap)) + snap)
    return out


def _lldp(mac: str) -> bytes:
    def tlv(kind: int, value: bytes) -> bytes:
        return struct.pack("!H", (kind << 9) | len(value)) + value

    return tlv(1, b"\x04" + _mac(mac)) + tlv(2, b"\x07eth0") + tlv(3, b"\x00\x78") + tlv(0, b"")


def gateway_spoof(s: Scene, c: Ctx) -> list[bytes]:
    me, rf2, rb1, bx1 = s.me, s.vm("rf2"), s.vm("rb1"), s.vm("bx1")
    gw_ip, gw_mac = me.gateway_ip or "10.0.1.1", me.gateway_mac or BROADCAST
    return [
        echo(gw_mac, rf2.mac, me.ip, rf2.ip, c),  # from the gateway's MAC
        echo(gw_mac, rf2.mac, gw_ip, rf2.ip, c),
        syn(gw_mac, rf2.mac, gw_ip, rf2.ip, DENIED_PORT, c),
        echo(rb1.gateway_mac or gw_mac, rb1.mac, rb1.gateway_ip or gw_ip, rb1.ip, c),
        syn(bx1.gateway_mac or gw_mac, bx1.mac, bx1.gateway_ip or gw_ip, bx1.ip, 80, c),
        echo(me.mac, rf2.mac, gw_ip, rf2.ip, c),  # the gateway's IP from our MAC
        echo(me.mac, next_hop(me, rb1), gw_ip, rb1.ip, c),
        arp(me.mac, rf2.mac, 2, me.mac, gw_ip, rf2.ip, c, hwdst=rf2.mac),  # "gw is-at me"
        arp(me.mac, BROADCAST, 2, me.mac, gw_ip, gw_ip, c, hwdst=BROADCAST),
        arp(gw_mac, rf2.mac, 2, gw_mac, gw_ip, rf2.ip, c, hwdst=rf2.mac),  # the switch's answer
        arp(gw_mac, BROADCAST, 1, gw_mac, gw_ip, rf2.ip, c),
        arp(me.mac, bx1.mac, 2, me.mac, bx1.gateway_ip or gw_ip, bx1.ip, c, hwdst=bx1.mac),
    ]


def ttl_expiry(s: Scene, c: Ctx) -> list[bytes]:
    me, rb1 = s.me, s.vm("rb1")
    gw = next_hop(me, rb1)
    return [echo(me.mac, gw, me.ip, rb1.ip, c, ttl=1), echo(me.mac, gw, me.ip, rb1.ip, c, ttl=0),
            ip_frame(me.mac, gw, me.ip, rb1.ip,
                     TCP(sport=42000, dport=ALLOWED_PORT, flags="S"), c, ttl=1)]


def dhcp_rogue_server(s: Scene, c: Ctx) -> list[bytes]:
    """evil answers as a DHCP server, with its own valid addresses: no VM may hear it."""
    from scapy.layers.dhcp import BOOTP, DHCP

    me, rf2, bx1 = s.me, s.vm("rf2"), s.vm("bx1")
    out = []
    for kind in ("offer", "ack", "nak"):
        for victim in (rf2, bx1):
            for eth_dst, ip_dst in ((BROADCAST, "255.255.255.255"), (victim.mac, victim.ip)):
                bootp = (BOOTP(op=2, yiaddr=victim.ip, siaddr=me.ip, chaddr=_mac(victim.mac),
                               xid=c.rng.randrange(1, 1 << 32))
                         / DHCP(options=[("message-type", kind), ("server_id", me.ip),
                                         ("router", me.ip), ("name_server", me.ip), "end"]))
                out.append(ip_frame(me.mac, eth_dst, me.ip, ip_dst,
                                    UDP(sport=67, dport=68) / bootp, c))
    return out


def dhcp_request(eth_src: str, chaddr: bytes, kind: str, c: Ctx,
                 requested: str | None = None) -> bytes:
    """A DHCP client message from 0.0.0.0, as a booting VM sends it."""
    from scapy.layers.dhcp import BOOTP, DHCP

    options: list[object] = [("message-type", kind)]
    if requested is not None:
        options.append(("requested_addr", requested))
    bootp = (BOOTP(op=1, chaddr=chaddr, xid=c.rng.randrange(1, 1 << 32))
             / DHCP(options=[*options, "end"]))
    return ip_frame(eth_src, BROADCAST, "0.0.0.0", "255.255.255.255",
                    UDP(sport=68, dport=67) / bootp, c)


def control_allowed(s: Scene, c: Ctx) -> list[bytes]:
    """Allowed pings, marked: the harness must count each of them as delivered."""
    me, rf2, rb1 = s.me, s.vm("rf2"), s.vm("rb1")
    return [echo(me.mac, rf2.mac, me.ip, rf2.ip, c),
            echo(me.mac, next_hop(me, rb1), me.ip, rb1.ip, c)]


BUILDERS: dict[str, Callable[[Scene, Ctx], list[bytes]]] = {
    "control-allowed": control_allowed,
    "spoof-mac": spoof_mac,
    "spoof-ip": spoof_ip,
    "spoof-vm": spoof_vm,
    "made-up-source": made_up_source,
    "arp-gratuitous": arp_gratuitous,
    "arp-reply-forged": arp_reply_forged,
    "arp-request-spoofed": arp_request_spoofed,
    "vlan-tagged": vlan_tagged,
    "vlan-double-tagged": vlan_double_tagged,
    "mpls-fabric-label": mpls_fabric_label,
    "cross-tenant": cross_tenant,
    "ip-fragments": ip_fragments,
    "tcp-odd-flags": tcp_odd_flags,
    "icmp-related-forged": icmp_related_forged,
    "non-ip": non_ip,
    "gateway-spoof": gateway_spoof,
    "dhcp-rogue-server": dhcp_rogue_server,
    "ttl-expiry": ttl_expiry,
}
