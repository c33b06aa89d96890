"""What DHCP tells a VM, from the policy alone, and which answer a request gets.

A VM's lease is its policy `ip` in its segment's prefix, the segment's `gateway`
as router (routed segments only), the segment's `dns` (else its tenant's), an
interface MTU that fits every path its frames may take, and a fixed lease time.
The server identifier is the gateway; a segment without one uses its last usable
address instead (`server_address`), which the policy loader keeps free of VMs.

Decisions (RFC 2131 §4.3): DISCOVER -> OFFER; REQUEST -> ACK when it asks for the
VM's own address (selecting, init-reboot, renewing, rebinding), NAK otherwise, and
nothing when it selects another server; INFORM -> ACK without a lease; RELEASE and
DECLINE -> no answer (the address is the VM's by policy whatever it says); anything
relayed (giaddr set) or sent by a server -> nothing.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from sdnctl.dhcp.wire import (
    BROADCAST_MAC,
    LIMITED_BROADCAST,
    ZERO,
    MessageType,
    Option,
    Reply,
    Request,
)
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.model import VM, Policy, Segment
from sdnctl.topology.model import Topology

LEASE_SECONDS = 86400  # the address is the VM's by policy: a long lease costs nothing
MAX_MTU = 1500  # what a VM's NIC is assumed to do without jumbo frames
VLAN_MPLS_OVERHEAD = 8  # 802.1Q tag + MPLS label on fabric trunks
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8


def server_address(seg: Segment) -> IPv4Address:
    """The address the DHCP answers of `seg` come from: its gateway, else the last
    usable address of its subnet (reserved by the policy loader).

    >>> from ipaddress import IPv4Network as N
    >>> str(server_address(Segment("t", "s", 10, N("10.1.30.0/24"), None)))
    '10.1.30.254'
    """
    if seg.gateway is not None:
        return seg.gateway
    return seg.subnet.broadcast_address - 1


def segment_mtu(seg: Segment, topology: Topology) -> int:
    """The largest IP packet every path of `seg` carries: a VLAN segment's frames
    cross fabric trunks with a tag and a label (8 bytes), an overlay's cross the
    underlay in VXLAN (50 bytes); the underlay's MTU is the topology's
    `underlay_mtu` (1500 when it says nothing).

    >>> from ipaddress import IPv4Network as N
    >>> from types import MappingProxyType as P
    >>> segment_mtu(Segment("t", "s", 10, N("10.1.30.0/24"), None), Topology(P({}), ()))
    1492
    """
    overhead = max(VLAN_MPLS_OVERHEAD if seg.vlan is not None else 0,
                   VXLAN_OVERHEAD if seg.vni is not None else 0)
    return min(MAX_MTU, topology.underlay_mtu - overhead)


@dataclass(frozen=True, slots=True)
class Lease:
    """Everything DHCP tells one VM."""

    vm: str
    mac: str
    ip: IPv4Address
    network: IPv4Network
    router: IPv4Address | None
    dns: tuple[IPv4Address, ...]
    mtu: int
    server_ip: IPv4Address
    server_mac: str
    seconds: int = LEASE_SECONDS


def lease_of(policy: Policy, topology: Topology, vm: VM) -> Lease:
    seg = policy.segment_of(vm)
    dns = seg.dns if seg.dns is not None else policy.tenants[vm.tenant].dns
    return Lease(vm.name, vm.mac, vm.ip, seg.subnet, seg.gateway, dns,
                 segment_mtu(seg, topology), server_address(seg), gateway_mac(seg.id))


class Verdict(enum.Enum):
    ANSWERED = "answered"
    IGNORED = "ignored"  # RELEASE, DECLINE, another server's, relayed, or a server message


def answer(req: Request, lease: Lease) -> Reply | None:
    """The reply `req` gets from `lease`'s server, or None for no answer."""
    if req.eth_src != lease.mac or req.chaddr != lease.mac:
        return None  # only the bound VM, asking for itself (no proxying, no starvation)
    if req.ip_src not in (ZERO, lease.ip):
        return None
    if req.giaddr != ZERO:
        return None  # VMs are attached directly; a relayed request is someone's game
    match req.kind:
        case MessageType.DISCOVER:
            return _reply(MessageType.OFFER, req, lease)
        case MessageType.REQUEST:
            return _answer_request(req, lease)
        case MessageType.INFORM:
            return _inform(req, lease)
    return None


def _answer_request(req: Request, lease: Lease) -> Reply | None:
    if req.server_id is not None and req.server_id != lease.server_ip:
        return None  # SELECTING another server's offer: stay silent (RFC 2131 §4.3.2)
    asked = req.requested_ip if req.requested_ip is not None else req.ciaddr
    if asked == lease.ip:
        return _reply(MessageType.ACK, req, lease)
    return _nak(req, lease)


def _reply(kind: MessageType, req: Request, lease: Lease) -> Reply:
    options = (*_header_options(kind, lease), *_lease_options(lease), *_config_options(lease))
    ciaddr = req.ciaddr if kind is MessageType.ACK else ZERO
    eth_dst, ip_dst = _destination(req, lease.ip)
    return Reply(kind, req, lease.ip, ciaddr, lease.server_ip, lease.server_mac,
                 eth_dst, ip_dst, options)


def _inform(req: Request, lease: Lease) -> Reply | None:
    if req.ciaddr != lease.ip:
        return None  # INFORM is for a client that already has its address: not this one
    options = (*_header_options(MessageType.ACK, lease), *_config_options(lease))
    return Reply(MessageType.ACK, req, ZERO, req.ciaddr, lease.server_ip, lease.server_mac,
                 req.chaddr, req.ciaddr, options)


def _nak(req: Request, lease: Lease) -> Reply:
    # RFC 2131 §4.1: a NAK goes to the broadcast address (the client's address is wrong).
    options = (*_header_options(MessageType.NAK, lease),
               (int(Option.MESSAGE), f"{req.requested_ip or req.ciaddr} is not yours".encode()))
    return Reply(MessageType.NAK, req, ZERO, ZERO, lease.server_ip, lease.server_mac,
                 BROADCAST_MAC, LIMITED_BROADCAST, options)


def _destination(req: Request, yiaddr: IPv4Address) -> tuple[str, IPv4Address]:
    """RFC 2131 §4.1: to ciaddr when the client has one; broadcast when it asks for
    it; else unicast to the address being handed out."""
    if req.ciaddr != ZERO:
        return req.chaddr, req.ciaddr
    if req.wants_broadcast:
        return BROADCAST_MAC, LIMITED_BROADCAST
    return req.chaddr, yiaddr


def _header_options(kind: MessageType, lease: Lease) -> tuple[tuple[int, bytes], ...]:
    return ((int(Option.MESSAGE_TYPE), bytes((kind,))),
            (int(Option.SERVER_ID), lease.server_ip.packed))


def _lease_options(lease: Lease) -> tuple[tuple[int, bytes], ...]:
    t1, t2 = lease.seconds // 2, lease.seconds * 7 // 8  # RFC 2131 §4.4.5 defaults
    return ((int(Option.LEASE_TIME), struct.pack("!I", lease.seconds)),
            (int(Option.RENEWAL_TIME), struct.pack("!I", t1)),
            (int(Option.REBINDING_TIME), struct.pack("!I", t2)))


def _config_options(lease: Lease) -> tuple[tuple[int, bytes], ...]:
    options = [(int(Option.SUBNET_MASK), lease.network.netmask.packed),
               (int(Option.BROADCAST), lease.network.broadcast_address.packed)]
    if lease.router is not None:
        options.append((int(Option.ROUTER), lease.router.packed))
    if lease.dns:
        options.append((int(Option.DNS), b"".join(a.packed for a in lease.dns)))
    options.append((int(Option.INTERFACE_MTU), struct.pack("!H", lease.mtu)))
    options.append((int(Option.HOST_NAME), lease.vm.encode()[:255]))
    return tuple(options)
