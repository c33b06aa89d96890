"""Frame pools for the two floods: the packet-in storm and the packet-path fuzz.

The storm is a few hundred scapy-built templates whose source MAC the agent
overwrites with a fresh random one for every frame sent, so every frame is a
new flow to the switch (a datapath flow-cache miss, the path that would reach a
controller in a reactive design). The fuzz pool is built by hand with struct:
random bytes, truncated headers, bogus lengths, random ethertypes and tags.

Neither pool contains a frame the policy allows (an echo request to a red VM or
TCP to rb1:8080 from evil's true address), so anything delivered is a leak.
Destination MACs and IPs are always lab addresses (or broadcast).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from sdnctl.lab.attacks.frames import (
    BROADCAST,
    DENIED_PORT,
    ETH_ARP,
    ETH_IP,
    Ctx,
    arp,
    echo,
    ip_frame,
    next_hop,
    raw_frame,
    syn,
)
from sdnctl.lab.attacks.scene import Scene, VmAddr
from sdnctl.lab.icmp import checksum

STORM_TEMPLATES = 256
FUZZ_POOL = 3000


@dataclass(frozen=True, slots=True)
class Template:
    frame: bytes
    randomise_mac: bool  # overwrite the source MAC (and ARP sender MAC) per frame sent


def storm_templates(s: Scene, c: Ctx) -> list[Template]:
    """Random-source IPv4 and ARP, plus true-source TTL-1 and no-route pings."""
    from scapy.layers.inet import UDP

    me, rf2, rb1, bx1 = s.me, s.vm("rf2"), s.vm("rb1"), s.vm("bx1")
    rng, out = c.rng, []
    for i in range(STORM_TEMPLATES):
        src_ip = f"10.0.1.{rng.randrange(100, 250)}"
        pick = i % 8
        if pick < 3:
            frame = ip_frame(me.mac, BROADCAST, src_ip, "10.0.1.255",
                             UDP(sport=rng.randrange(1024, 65535), dport=rng.randrange(1, 1024)),
                             c)
        elif pick < 5:
            frame = arp(me.mac, BROADCAST, 1, me.mac, src_ip, f"10.0.1.{rng.randrange(2, 250)}", c)
        elif pick == 5:
            dst = rng.choice((rf2, bx1))
            frame = syn(me.mac, dst.mac, src_ip, dst.ip, rng.randrange(1, 1024), c)
        elif pick == 6:  # our true identity, routed with TTL 1: dec_ttl drops it
            out.append(Template(echo(me.mac, next_hop(me, rb1), me.ip, rb1.ip, c, ttl=1), False))
            continue
        else:  # our true identity towards an address with no VM: no route, no flood
            gw = me.gateway_mac or BROADCAST
            dst_ip = f"10.0.{rng.choice((1, 2, 9))}.{rng.randrange(150, 250)}"
            out.append(Template(echo(me.mac, gw, me.ip, dst_ip, c), False))
            continue
        out.append(Template(frame, True))
    return out


def dhcp_starvation_templates(s: Scene, c: Ctx) -> list[Template]:
    """DISCOVERs and REQUESTs for made-up clients (a new chaddr each): from evil's own
    MAC, which the switch meters per VM, and from random MACs, which port security
    drops. The controller answers none of them (chaddr is not evil's)."""
    from sdnctl.lab.attacks.frames import dhcp_request

    me, rng, out = s.me, c.rng, []
    for i in range(STORM_TEMPLATES):
        chaddr = bytes([0x02, *(rng.randrange(256) for _ in range(5))])
        if i % 2:
            frame = dhcp_request(me.mac, chaddr, "discover", c)
        else:
            frame = dhcp_request(me.mac, chaddr, "request", c,
                                 f"10.0.1.{rng.randrange(100, 250)}")
        out.append(Template(frame, randomise_mac=i % 4 == 3))
    return out


def patch_source_mac(frame: bytes, mac: bytes) -> bytes:
    """The frame with Ethernet source (and ARP sender hardware address) set to `mac`."""
    out = bytearray(frame)
    out[6:12] = mac
    if len(out) >= 28 and out[12:14] == b"\x08\x06":
        out[22:28] = mac
    return bytes(out)


def random_unicast_mac(rng_bytes: bytes) -> bytes:
    """Six random bytes made a locally administered unicast MAC."""
    return bytes([(rng_bytes[0] & 0xFC) | 0x02]) + rng_bytes[1:6]


# ---------------------------------------------------------------------- fuzz


def fuzz_pool(s: Scene, c: Ctx, size: int = FUZZ_POOL) -> list[bytes]:
    kinds: list[Callable[[Scene, Ctx], bytes]] = [
        _random_bytes, _truncated_ethernet, _random_ethertype, _bad_ipv4_header,
        _truncated_l4, _random_tags, _bad_arp, _ip_options,
    ]
    return [kinds[i % len(kinds)](s, c) for i in range(size)]


def _victim(s: Scene, c: Ctx) -> VmAddr:
    return s.vm(c.rng.choice(("rf2", "rb1", "bx1", "bx2", "wa", "wb")))


def _dst_mac(s: Scene, c: Ctx) -> str:
    dst = _victim(s, c)
    return c.rng.choice((dst.mac, next_hop(s.me, dst), BROADCAST))


def _noise(c: Ctx, lo: int, hi: int) -> bytes:
    return c.rng.randbytes(c.rng.randrange(lo, hi + 1))


def _random_bytes(s: Scene, c: Ctx) -> bytes:
    # At least a whole Ethernet header: a veth (like AF_PACKET) refuses anything shorter.
    return bytes.fromhex(_dst_mac(s, c).replace(":", "")) + _noise(c, 8, 120)


def _truncated_ethernet(s: Scene, c: Ctx) -> bytes:
    """An Ethernet header and at most a few bytes of what its type announces."""
    kind = c.rng.choice((ETH_IP, ETH_ARP, 0x8100, 0x88A8, 0x8847, 0x86DD))
    return raw_frame(_dst_mac(s, c), s.me.mac, [], kind, _noise(c, 0, 4))


def _random_ethertype(s: Scene, c: Ctx) -> bytes:
    return raw_frame(_dst_mac(s, c), s.me.mac, [], c.rng.randrange(0x0600, 0x10000),
                     _noise(c, 0, 100) + c.marker)


def _ipv4_header(c: Ctx, src: str, dst: str, proto: int, length: int, ihl: int = 5,
                 options: bytes = b"", version: int = 4, frag: int = 0) -> bytes:
    def addr(ip: str) -> bytes:
        return bytes(int(x) for x in ip.split("."))

    head = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, length, c.rng.randrange(0x10000),
                       frag, c.rng.randrange(1, 256), proto, 0, addr(src), addr(dst)) + options
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:]


def _safe_proto(c: Ctx) -> int:
    """Any IP protocol but ICMP and TCP (echo to red VMs and rb1:8080 are allowed)."""
    proto = c.rng.randrange(256)
    return 17 if proto in (1, 6) else proto


def _bad_ipv4_header(s: Scene, c: Ctx) -> bytes:
    dst = _victim(s, c)
    rng = c.rng
    head = _ipv4_header(c, s.me.ip, dst.ip, _safe_proto(c), rng.randrange(0x10000),
                        ihl=rng.randrange(16), version=rng.choice((4, 4, 4, 6, 0, 15)),
                        frag=rng.randrange(0x10000))
    body = (head + _noise(c, 0, 40) + c.marker)[: rng.randrange(1, 80)]
    return raw_frame(next_hop(s.me, dst), s.me.mac, [], ETH_IP, body)


def _truncated_l4(s: Scene, c: Ctx) -> bytes:
    dst = _victim(s, c)
    rng = c.rng
    proto = rng.choice((6, 17, 1))
    if proto == 6:
        dport = rng.choice((DENIED_PORT, rng.randrange(1, 8000)))
        l4 = struct.pack("!HHIIBBHHH", rng.randrange(1, 65536), dport, rng.getrandbits(32),
                         rng.getrandbits(32), 0x50, rng.randrange(256), 512, 0, 0)
    elif proto == 17:
        l4 = struct.pack("!HHHH", rng.randrange(1, 65536), rng.randrange(1, 65536), 8, 0)
    else:
        l4 = struct.pack("!BBHI", rng.choice((3, 5, 11, 13, 17, 42)), rng.randrange(16), 0, 0)
    cut = l4[: rng.randrange(0, len(l4))]  # always short of a whole header
    claimed = rng.choice((20 + len(cut), 20 + len(l4) + 100))
    return raw_frame(next_hop(s.me, dst), s.me.mac, [], ETH_IP,
                     _ipv4_header(c, s.me.ip, dst.ip, proto, claimed) + cut)


def _random_tags(s: Scene, c: Ctx) -> bytes:
    rng = c.rng
    tags = [(rng.choice((0x8100, 0x88A8, 0x9100, rng.randrange(0x0600, 0x10000))),
             rng.randrange(4096)) for _ in range(rng.randrange(1, 4))]
    inner = rng.choice((ETH_IP, ETH_ARP, 0x8847, rng.randrange(0x0600, 0x10000)))
    return raw_frame(_dst_mac(s, c), s.me.mac, tags, inner, _noise(c, 0, 60) + c.marker)


def _bad_arp(s: Scene, c: Ctx) -> bytes:
    rng, me = c.rng, s.me
    sha = bytes.fromhex(me.mac.replace(":", ""))
    spa = bytes(int(x) for x in me.ip.split("."))
    tpa = bytes(int(x) for x in _victim(s, c).ip.split("."))
    # Hardware/protocol types and lengths mostly right, the operation mostly not a request.
    body = struct.pack("!HHBBH",
                       rng.choice((1, rng.randrange(0x10000))),
                       rng.choice((ETH_IP, rng.randrange(0x10000))),
                       rng.choice((6, rng.randrange(256))),
                       rng.choice((4, rng.randrange(256))),
                       rng.choice((2, 3, 4, rng.randrange(0x10000))))
    body += sha + spa + b"\0" * 6 + tpa
    if rng.random() < 0.5:
        body = body[: rng.randrange(0, 28)]
    return raw_frame(_dst_mac(s, c), me.mac, [], ETH_ARP, body)


def _ip_options(s: Scene, c: Ctx) -> bytes:
    dst = _victim(s, c)
    rng = c.rng
    words = rng.randrange(1, 11)
    options = rng.randbytes(words * 4)
    udp = struct.pack("!HHHH", rng.randrange(1, 65536), rng.randrange(1, 65536), 8 + 8, 0)
    head = _ipv4_header(c, s.me.ip, dst.ip, 17, 20 + len(options) + 16, ihl=5 + words,
                        options=options)
    return raw_frame(next_hop(s.me, dst), s.me.mac, [], ETH_IP, head + udp + c.marker)
