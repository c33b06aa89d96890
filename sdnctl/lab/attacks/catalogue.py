"""The attacks a hostile VM tries, by name: what it sends and what must hold.

Data only (no scapy): the runner, the tests and the threat model name attacks
from here; `frames` builds the packets for each name inside the attacker's VM.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Kind(enum.StrEnum):
    SPOOF = "spoofing"
    ARP = "arp poisoning"
    VLAN = "vlan hopping"
    MPLS = "fabric label injection"
    TENANT = "cross-tenant"
    SERVICE = "denied service"
    NON_IP = "non-ip"
    GATEWAY = "gateway spoofing"
    STORM = "packet-in storm"
    DHCP = "rogue dhcp"
    DHCP_STORM = "dhcp starvation"
    FUZZ = "packet fuzz"
    RA = "rogue router"
    ND = "neighbour spoofing"
    EXT_HEADERS = "extension headers"
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class Attack:
    name: str
    kind: Kind
    summary: str  # what the VM tries, in one line
    # Open an allowed TCP connection (evil -> rb1:8080) first and keep it open, so
    # crafted packets can claim to belong to it.
    needs_connection: bool = False
    # Afterwards, look into the victims' ARP caches and ask the switch again, and
    # into their IPv6 state (neighbours, addresses, default route, MTU).
    check_neighbours: bool = False
    # A flood: frames/s and seconds (0: send each built frame once, as fast as it goes).
    rate: int = 0
    seconds: float = 0.0

    @property
    def is_flood(self) -> bool:
        return self.rate > 0


STORM_RATE = 5000  # frames/s: "thousands", without starving a shared 2-CPU ovs-vswitchd
STORM_SECONDS = 4.0
FUZZ_RATE = 1000
FUZZ_SECONDS = 3.0

ATTACKS: tuple[Attack, ...] = (
    Attack("spoof-mac", Kind.SPOOF,
           "another VM's MAC (rf2, bx1) with its own IP, towards services rf2 may use"),
    Attack("spoof-ip", Kind.SPOOF,
           "its own MAC with another VM's IP (rf2's 10.0.1.12, also bx1's; wa's)"),
    Attack("spoof-vm", Kind.SPOOF,
           "another VM's MAC and IP together (rf2 to rb1:8080; blue bx1 to bx2, allow-all)"),
    Attack("made-up-source", Kind.SPOOF,
           "invented unicast, multicast, broadcast and zero source MACs and unused IPs"),
    Attack("arp-gratuitous", Kind.ARP,
           "gratuitous ARP (request and reply) claiming rf2's, the gateway's and its own IP",
           check_neighbours=True),
    Attack("arp-reply-forged", Kind.ARP,
           "unicast ARP replies to rf2 and bx1 with a foreign sender IP or MAC",
           check_neighbours=True),
    Attack("arp-request-spoofed", Kind.ARP,
           "ARP requests whose sender is another VM or the gateway (caches learn from them)",
           check_neighbours=True),
    Attack("vlan-tagged", Kind.VLAN,
           "802.1Q frames tagged with its own, red back, blue and priority-only VLANs"),
    Attack("vlan-double-tagged", Kind.VLAN,
           "double-tagged frames (8100/8100, QinQ 88a8/8100, 9100/8100) into other VLANs"),
    Attack("mpls-fabric-label", Kind.MPLS,
           "frames in the fabric's own format (segment tag + label 16+dpid) for hv1 and hv2"),
    Attack("cross-tenant", Kind.TENANT,
           "its true identity towards blue VMs that share its subnet (and rf2's IP)"),
    Attack("ip-fragments", Kind.SERVICE,
           "tcp/22 to rb1 and rf2 in tiny, overlapping (8080 then 22) and orphan fragments"),
    Attack("tcp-odd-flags", Kind.SERVICE,
           "tcp/22 with SYN+FIN, no flags, FIN, RST, ACK, SYN+ACK, SYN+RST, Xmas, all flags"),
    Attack("icmp-related-forged", Kind.SERVICE,
           "ICMP errors and echo replies that quote its allowed rb1:8080 connection, sent"
           " to third parties or quoting ports the connection never used",
           needs_connection=True),
    Attack("non-ip", Kind.NON_IP,
           "IPv6 echo and NA from its link-local, LLDP, STP, EAPOL, PPPoE, RARP, IPX,"
           " 802.3/LLC and raw experimental types"),
    Attack("gateway-spoof", Kind.GATEWAY,
           "frames from the gateway MACs or the gateway IP, and ARP answers for the gateway",
           check_neighbours=True),
    Attack("ttl-expiry", Kind.GATEWAY,
           "routed pings with TTL 0 and 1: the router answers evil alone (metered)"),
    Attack("dhcp-rogue-server", Kind.DHCP,
           "DHCP offers, acks and naks (udp 67 -> 68) from its true MAC and IP, broadcast"
           " and unicast to rf2 and bx1"),
    Attack("ra-rogue", Kind.RA,
           "router advertisements as itself and as the segment's router: its own prefix"
           " and the segment's, MTU 1280, router lifetime 0; to all nodes and unicast",
           check_neighbours=True),
    Attack("nd-spoof", Kind.ND,
           "neighbour advertisements claiming rf2's, bx2's, rb1's, the gateway6's and the"
           " router's addresses; solicitations from forged sources with its MAC",
           check_neighbours=True),
    Attack("ip6-spoof", Kind.SPOOF,
           "IPv6 from rf2's and wa's ip6, from addresses outside the segment, from another"
           " VM's link-local, from its own link-local beyond ND, from :: and multicast"),
    Attack("dhcp6-server", Kind.DHCP,
           "DHCPv6 advertise, reply and reconfigure (udp 547 -> 546) offering its own"
           " prefix and DNS, to rf2 and bx1 and to all nodes", check_neighbours=True),
    Attack("ip6-ext-headers", Kind.EXT_HEADERS,
           "tcp/22, RAs and NAs behind hop-by-hop, destination-options and routing headers,"
           " in atomic, tiny and overlapping fragments, the ICMPv6 header in fragment 2",
           check_neighbours=True),
    Attack("dhcp-starvation", Kind.DHCP_STORM,
           "DHCP discovers and requests for random client MACs, from its own MAC and from"
           " random ones, while rf2 and wa renew their leases",
           rate=STORM_RATE, seconds=STORM_SECONDS),
    Attack("packet-in-storm", Kind.STORM,
           "random source MACs and IPs: IPv4, ARP, TTL-1 and unknown destinations",
           rate=STORM_RATE, seconds=STORM_SECONDS),
    Attack("fuzz", Kind.FUZZ,
           "random and truncated frames: bytes, Ethernet, IPv4, TCP/UDP/ICMP, ARP, tags",
           rate=FUZZ_RATE, seconds=FUZZ_SECONDS),
)

# Not an attack: marked frames the policy allows (evil pings rf2 and rb1). Every one
# must be counted as delivered, or the harness could not see a leak if there were one.
CONTROL = Attack("control-allowed", Kind.CONTROL,
                 "marked pings the policy allows: each must arrive and be counted")

CONTROL6 = Attack("control-allowed6", Kind.CONTROL,
                  "marked ICMPv6 echoes the policy allows: each must arrive and be counted")

BY_NAME: dict[str, Attack] = {a.name: a for a in (*ATTACKS, CONTROL, CONTROL6)}
