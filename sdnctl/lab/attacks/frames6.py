"""The hostile IPv6 frames, built with scapy from a Scene: one builder per attack name.

Runs inside the attacker's VM, like `frames`. Neighbour discovery messages carry
the attack's marker in an option of an unassigned type (RFC 4861: a receiver
ignores unknown options), so a rogue advertisement stays one that Linux would
act on; every other frame ends with the marker. Advertisements go out with hop
limit 255, as a receiver demands of a valid one.

Every frame is addressed to a VM, a router or an all-nodes address of the lab.
"""

from __future__ import annotations

from collections.abc import Callable

from scapy.layers.dhcp6 import (
    DUID_LL,
    DHCP6_Advertise,
    DHCP6_Reconf,
    DHCP6_Reply,
    DHCP6OptClientId,
    DHCP6OptDNSServers,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptServerId,
)
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
    fragment6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from sdnctl.lab.attacks.frames import ALLOWED_PORT, DENIED_PORT, Ctx
from sdnctl.lab.attacks.scene import Scene, VmAddr

ALL_NODES, ALL_NODES_MAC = "ff02::1", "33:33:00:00:00:01"
ROGUE_PREFIX = "fd00:bad::"  # no segment's: an address from it would be the rogue's doing
ROGUE_MTU = 1280  # what a rogue router would like the victims to use
MARKER_OPTION = 253  # RFC 4727: an option type for experiments, which no one acts on
DHCP6_SERVER, DHCP6_CLIENT = 547, 546


def marker_option(c: Ctx) -> bytes:
    """A 16-byte ND option of the experimental type holding the marker."""
    return bytes((MARKER_OPTION, 2)) + c.marker.ljust(14, b"\0")[:14]


def ip6_frame(eth_src: str, eth_dst: str, src: str, dst: str, upper: Packet, c: Ctx,
              ext: tuple[Packet, ...] = (), hlim: int = 64) -> bytes:
    """Ethernet / IPv6 / extension headers / `upper` / marker."""
    pkt = Ether(src=eth_src, dst=eth_dst) / IPv6(src=src, dst=dst, hlim=hlim)
    for header in ext:
        pkt = pkt / header
    return bytes(pkt / upper / Raw(c.marker))


def nd_frame(eth_src: str, eth_dst: str, src: str, dst: str, message: Packet, c: Ctx,
             ext: tuple[Packet, ...] = ()) -> bytes:
    """A neighbour discovery message (hop limit 255) with the marker as an option."""
    pkt = Ether(src=eth_src, dst=eth_dst) / IPv6(src=src, dst=dst, hlim=255)
    for header in ext:
        pkt = pkt / header
    return bytes(pkt / message / Raw(marker_option(c)))


def six(a: VmAddr) -> tuple[str, str, str]:
    """A VM's (ip6, link-local, router link-local); the hostile lab is dual-stack."""
    assert a.ip6 and a.link_local and a.router6, f"{a.name} has no IPv6"
    return a.ip6, a.link_local, a.router6


def next_hop6(src: VmAddr, dst: VmAddr) -> str:
    """Where `src` sends IPv6 for `dst`: the VM itself on its segment, else its router."""
    if src.vlan == dst.vlan or src.router_mac is None:
        return dst.mac
    return src.router_mac


def rogue_ra(eth_src: str, prefix: str, lifetime: int = 9000) -> Packet:
    """"I am a default router; autoconfigure in `prefix`; use MTU 1280"."""
    return (ICMPv6ND_RA(chlim=64, routerlifetime=lifetime)
            / ICMPv6NDOptSrcLLAddr(lladdr=eth_src) / ICMPv6NDOptMTU(mtu=ROGUE_MTU)
            / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=64, L=1, A=1,
                                    validlifetime=86400, preferredlifetime=86400))


def spoofed_na(target: str, mac: str, router: int = 0) -> Packet:
    """"`target` is-at `mac`", overriding what the receiver knows."""
    return ICMPv6ND_NA(tgt=target, R=router, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=mac)


# ------------------------------------------------------------------ the attacks


def ra_rogue(s: Scene, c: Ctx) -> list[bytes]:
    """Router advertisements from evil as itself and as the segment's real router:
    a prefix of its own and the segment's, MTU 1280, or "no longer a router"."""
    me, rf2, bx1 = s.me, s.vm("rf2"), s.vm("bx1")
    _, my_ll, router_ll = six(me)
    assert me.router_mac and me.subnet6
    own_prefix = me.subnet6.split("/")[0]
    out = []
    for eth_src, src in ((me.mac, my_ll), (me.router_mac, router_ll)):
        for eth_dst, dst in ((ALL_NODES_MAC, ALL_NODES), (rf2.mac, six(rf2)[1]),
                             (rf2.mac, ALL_NODES), (bx1.mac, six(bx1)[1])):
            for prefix in (ROGUE_PREFIX, own_prefix):
                out.append(nd_frame(eth_src, eth_dst, src, dst, rogue_ra(eth_src, prefix), c))
        # Router lifetime 0: "forget me as your default router" (a denial of service).
        out.append(nd_frame(eth_src, rf2.mac, src, ALL_NODES, rogue_ra(eth_src, own_prefix, 0),
                            c))
    return out


def nd_spoof(s: Scene, c: Ctx) -> list[bytes]:
    """Neighbour advertisements claiming another VM's, the gateway6's and the router's
    addresses for evil's MAC (to all nodes and to each victim, from evil's addresses
    and from the claimed one), and solicitations whose source and link-layer option
    would teach a victim the same lie."""
    me, rf2, bx1, bx2, rb1 = s.me, s.vm("rf2"), s.vm("bx1"), s.vm("bx2"), s.vm("rb1")
    my_ip6, my_ll, router_ll = six(me)
    assert me.gateway6
    out = []
    claims = [(six(rf2)[0], 0), (me.gateway6, 1), (router_ll, 1), (six(bx2)[0], 0),
              (six(rb1)[0], 0)]
    for target, router in claims:
        na = spoofed_na(target, me.mac, router)
        for eth_dst, dst in ((ALL_NODES_MAC, ALL_NODES), (rf2.mac, six(rf2)[0]),
                             (rf2.mac, six(rf2)[1]), (bx1.mac, six(bx1)[0])):
            for src in (my_ip6, my_ll, target):
                out.append(nd_frame(me.mac, eth_dst, src, dst, na, c))
    # Solicitations: the receiver learns "source is-at SLL" from them.
    for src in (me.gateway6, router_ll, six(bx2)[0], my_ip6):
        for victim in (rf2, bx1):
            ns = ICMPv6ND_NS(tgt=six(victim)[0]) / ICMPv6NDOptSrcLLAddr(lladdr=me.mac)
            out.append(nd_frame(me.mac, victim.mac, src, six(victim)[0], ns, c))
            out.append(nd_frame(me.mac, "33:33:ff:00:00:12", src, "ff02::1:ff00:12", ns, c))
    return out


def ip6_spoof(s: Scene, c: Ctx) -> list[bytes]:
    """IPv6 from addresses that are not evil's: another VM's `ip6` (with evil's MAC,
    and with that VM's MAC too), addresses outside the segment, another VM's
    link-local, its own link-local for anything but neighbour discovery, ::, multicast."""
    me, rf2, rb1, bx1, bx2, wa = (s.vm(n) for n in ("evil", "rf2", "rb1", "bx1", "bx2", "wa"))
    rf2_ip6, rf2_ll, _ = six(rf2)
    rb1_ip6, rb1_ll, _ = six(rb1)
    _, my_ll, _ = six(me)
    to_rb1 = next_hop6(me, rb1)

    def echo(eth_src: str, eth_dst: str, src: str, dst: str) -> bytes:
        request = ICMPv6EchoRequest(id=c.rng.randrange(1, 0xFFFF))
        return ip6_frame(eth_src, eth_dst, src, dst, request, c)

    def syn(eth_src: str, eth_dst: str, src: str, dst: str, dport: int) -> bytes:
        return ip6_frame(eth_src, eth_dst, src, dst,
                         TCP(sport=c.rng.randrange(20000, 60000), dport=dport, flags="S"), c)

    out = [
        syn(me.mac, to_rb1, rf2_ip6, rb1_ip6, ALLOWED_PORT),  # rf2 may; evil is not rf2
        echo(me.mac, to_rb1, rf2_ip6, rb1_ip6),
        echo(me.mac, rf2.mac, rf2_ip6, rf2_ip6),  # LAND: the victim to itself
        syn(me.mac, rf2.mac, rf2_ip6, rf2_ip6, DENIED_PORT),
        syn(me.mac, bx2.mac, six(wa)[0], six(bx2)[0], 80),  # a blue address, blue allows all
        syn(rf2.mac, to_rb1, rf2_ip6, rb1_ip6, ALLOWED_PORT),  # rf2 entirely
        echo(bx1.mac, bx2.mac, six(bx1)[0], six(bx2)[0]),  # bx1 entirely
        echo(me.mac, rf2.mac, rb1_ll, rf2_ip6),  # another VM's link-local
        echo(me.mac, rf2.mac, rf2_ll, rf2_ip6),
        echo(me.mac, rf2.mac, my_ll, rf2_ip6),  # own link-local: ND only
        echo(me.mac, rf2.mac, my_ll, rf2_ll),
        syn(me.mac, to_rb1, my_ll, rb1_ip6, ALLOWED_PORT),
        echo(me.mac, rf2.mac, "::", rf2_ip6),
        echo(me.mac, rf2.mac, "ff02::1", rf2_ip6),
    ]
    for outside in (ROGUE_PREFIX + "66", "fd00:a2::66", "2001:db8::66", "::ffff:10.0.1.66"):
        out += [echo(me.mac, rf2.mac, outside, rf2_ip6),
                syn(me.mac, to_rb1, outside, rb1_ip6, ALLOWED_PORT)]
    return out


def dhcp6_server(s: Scene, c: Ctx) -> list[bytes]:
    """DHCPv6 advertise, reply and reconfigure (UDP 547 -> 546) from evil's addresses,
    offering an address of its own prefix and itself as DNS server."""
    me, rf2, bx1 = s.me, s.vm("rf2"), s.vm("bx1")
    my_ip6, my_ll, _ = six(me)
    out = []
    for victim in (rf2, bx1):
        options = (DHCP6OptServerId(duid=DUID_LL(lladdr=me.mac))
                   / DHCP6OptClientId(duid=DUID_LL(lladdr=victim.mac))
                   / DHCP6OptIA_NA(iaid=1, ianaopts=[DHCP6OptIAAddress(addr=ROGUE_PREFIX + "12")])
                   / DHCP6OptDNSServers(dnsservers=[my_ip6]))
        for kind in (DHCP6_Advertise, DHCP6_Reply, DHCP6_Reconf):
            message = kind(trid=c.rng.randrange(1 << 24)) / options
            for eth_dst, dst in ((victim.mac, six(victim)[1]), (ALL_NODES_MAC, ALL_NODES)):
                for src in (my_ll, my_ip6):
                    out.append(ip6_frame(me.mac, eth_dst, src, dst,
                                         UDP(sport=DHCP6_SERVER, dport=DHCP6_CLIENT) / message,
                                         c, hlim=255))
    return out


def ip6_ext_headers(s: Scene, c: Ctx) -> list[bytes]:
    """Denied TCP and router/neighbour advertisements hidden behind hop-by-hop,
    destination-options and routing headers, in atomic, tiny, overlapping fragments,
    and with the ICMPv6 header pushed into a second fragment (RFC 7113's RA-guard
    evasion)."""
    me, rf2, rb1 = s.me, s.vm("rf2"), s.vm("rb1")
    my_ip6, my_ll, _ = six(me)
    out: list[bytes] = []

    def pad(n: int = 4) -> list[Packet]:
        return [PadN(optdata=b"\0" * n)]

    chains: list[tuple[Packet, ...]] = [
        (IPv6ExtHdrHopByHop(options=pad()),),
        (IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]),),
        (IPv6ExtHdrDestOpt(options=pad()),),
        (IPv6ExtHdrHopByHop(options=pad()), IPv6ExtHdrDestOpt(options=pad(12))),
        (IPv6ExtHdrFragment(id=c.rng.randrange(1 << 32), offset=0, m=0),),  # atomic
        (IPv6ExtHdrHopByHop(options=pad()), IPv6ExtHdrFragment(id=c.rng.randrange(1 << 32))),
    ]
    for dst in (rf2, rb1):
        dst_ip6, eth_dst = six(dst)[0], next_hop6(me, dst)
        for chain in chains:
            out.append(ip6_frame(me.mac, eth_dst, my_ip6, dst_ip6,
                                 TCP(sport=43000, dport=DENIED_PORT, flags="S"), c, chain))
        # A routing header (type 0, deprecated) whose last stop is the victim.
        out.append(ip6_frame(me.mac, eth_dst, my_ip6, dst_ip6,
                             TCP(sport=43001, dport=DENIED_PORT, flags="S"), c,
                             (IPv6ExtHdrRouting(type=0, addresses=[dst_ip6], segleft=1),)))
        out += _fragments(me.mac, eth_dst, my_ip6, dst_ip6, c)
    # Advertisements behind extension headers, and split from their ICMPv6 header.
    ra = rogue_ra(me.mac, ROGUE_PREFIX) / Raw(marker_option(c))
    na = spoofed_na(six(rf2)[0], me.mac) / Raw(marker_option(c))
    for eth_dst, dst in ((ALL_NODES_MAC, ALL_NODES), (rf2.mac, six(rf2)[1])):
        for chain in chains:
            for message in (ra, na):
                out.append(bytes(Ether(src=me.mac, dst=eth_dst)
                                 / IPv6(src=my_ll, dst=dst, hlim=255) / _chain(chain) / message))
        big_pad = IPv6ExtHdrDestOpt(options=pad(200))  # pushes the ICMPv6 header out of fragment 1
        for message in (ra, na):
            whole = (IPv6(src=my_ll, dst=dst, hlim=255) / IPv6ExtHdrHopByHop(options=pad())
                     / IPv6ExtHdrFragment(id=c.rng.randrange(1 << 32)) / big_pad / message)
            out += [bytes(Ether(src=me.mac, dst=eth_dst) / f) for f in fragment6(whole, 160)]
    return out


def _chain(headers: tuple[Packet, ...]) -> Packet:
    """Fresh copies of `headers`, stacked (a scapy layer can sit in one packet only)."""
    stacked = headers[0].copy()
    for header in headers[1:]:
        stacked = stacked / header.copy()
    return stacked


def _fragments(eth_src: str, eth_dst: str, src: str, dst: str, c: Ctx) -> list[bytes]:
    """tcp/22 in tiny fragments; an allowed 8080 header overwritten by a 22 one at the
    same offset (and the other way round); an orphan middle fragment."""
    out = []
    whole = (IPv6(src=src, dst=dst) / IPv6ExtHdrFragment(id=c.rng.randrange(1 << 32))
             / TCP(sport=44000, dport=DENIED_PORT, flags="S") / Raw(c.marker * 8))
    out += [bytes(Ether(src=eth_src, dst=eth_dst) / f) for f in fragment6(whole, 64)]
    ident = c.rng.randrange(1 << 32)
    ok = bytes(TCP(sport=44001, dport=ALLOWED_PORT, flags="S"))
    bad = bytes(TCP(sport=44001, dport=DENIED_PORT, flags="S")) + c.marker
    for first, second in ((ok, bad), (bad, ok)):
        out.append(bytes(Ether(src=eth_src, dst=eth_dst) / IPv6(src=src, dst=dst)
                         / IPv6ExtHdrFragment(id=ident, nh=6, offset=0, m=1) / Raw(first)))
        out.append(bytes(Ether(src=eth_src, dst=eth_dst) / IPv6(src=src, dst=dst)
                         / IPv6ExtHdrFragment(id=ident, nh=6, offset=0, m=0) / Raw(second)))
    out.append(bytes(Ether(src=eth_src, dst=eth_dst) / IPv6(src=src, dst=dst)
                     / IPv6ExtHdrFragment(id=ident + 1, nh=6, offset=3, m=1)
                     / Raw(c.marker * 2)))
    return out


def control_allowed6(s: Scene, c: Ctx) -> list[bytes]:
    """Allowed ICMPv6 echoes, marked (evil -> rf2 on its segment, -> rb1 routed): the
    harness must count each of them as delivered."""
    me, rf2, rb1 = s.me, s.vm("rf2"), s.vm("rb1")
    return [ip6_frame(me.mac, next_hop6(me, dst), six(me)[0], six(dst)[0],
                      ICMPv6EchoRequest(id=c.rng.randrange(1, 0xFFFF)), c)
            for dst in (rf2, rb1)]


BUILDERS6: dict[str, Callable[[Scene, Ctx], list[bytes]]] = {
    "control-allowed6": control_allowed6,
    "ra-rogue": ra_rogue,
    "nd-spoof": nd_spoof,
    "ip6-spoof": ip6_spoof,
    "dhcp6-server": dhcp6_server,
    "ip6-ext-headers": ip6_ext_headers,
}
