"""Which advertisement a VM's solicitation gets, from the policy and the bindings.

A neighbour solicitation from a bound VM for
- the address of another bound VM of its segment (its `ip6`) gets that VM's MAC;
- its segment's `gateway6`, or the router's link-local address, gets the
  segment's gateway MAC, with the router flag;
- anything else (an unknown or unbound address, its own address, another VM's
  link-local: VMs talk to each other by their `ip6` only) gets nothing.
A duplicate address detection probe (source `::`) gets nothing: the address is
the VM's by policy, and nobody else may claim it. The advertisement goes to the
asker alone (unicast, out of the port it came in on).

A router solicitation gets the segment's router advertisement: the prefix
(on-link; autonomous when it is a /64, so SLAAC builds the VM's EUI-64 address),
the MTU DHCP gives, and a router lifetime only when the segment has a `gateway6`
(else the VM learns the prefix but no default router). The source is the
router's link-local address, `fe80::` + the EUI-64 of the gateway MAC.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from sdnctl.bindings import Bindings
from sdnctl.dhcp.lease import segment_mtu
from sdnctl.nd.wire import (
    ALL_NODES,
    NEIGHBOR_SOLICIT,
    UNSPECIFIED,
    Advert,
    RouterInfo,
    Solicitation,
    neighbor_advert,
    router_advert,
)
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.ipv6 import SLAAC_PREFIX, link_local
from sdnctl.policy.model import VM, Policy, Segment
from sdnctl.topology.model import Topology

ROUTER_LIFETIME = 9000  # seconds, the most RFC 4861 allows


def router_link_local(seg: Segment) -> IPv6Address:
    return link_local(gateway_mac(seg.id))


def neighbour_mac(policy: Policy, bindings: Bindings, vm: VM, target: IPv6Address
                  ) -> tuple[str, bool] | None:
    """(MAC, is the router) that answers `vm` asking for `target`; None: no answer."""
    seg = policy.segment_of(vm)
    if seg.subnet6 is None:
        return None
    if target == seg.gateway6 or target == router_link_local(seg):
        return gateway_mac(seg.id), True
    for other in policy.vms_of(vm.tenant):
        if (other.ip6 == target and other.name != vm.name and other.segment == vm.segment
                and other.name in bindings.ports):
            return other.mac, False
    return None


def router_info(policy: Policy, topology: Topology, vm: VM) -> RouterInfo | None:
    seg = policy.segment_of(vm)
    if seg.subnet6 is None:
        return None
    return RouterInfo(gateway_mac(seg.id), router_link_local(seg), seg.subnet6,
                      segment_mtu(seg, topology), ROUTER_LIFETIME if seg.routed6 else 0,
                      seg.subnet6.prefixlen == SLAAC_PREFIX)


def answer_solicitation(policy: Policy, topology: Topology, bindings: Bindings, vm: VM,
                        asked: Solicitation) -> Advert | None:
    """The advertisement for `vm`'s solicitation, or None."""
    if vm.ip6 is None or asked.eth_src != vm.mac:
        return None
    if asked.kind == NEIGHBOR_SOLICIT:
        if asked.source == UNSPECIFIED or asked.target is None:
            return None  # duplicate address detection: silence means "yours"
        if asked.source not in (vm.ip6, link_local(vm.mac)):
            return None
        found = neighbour_mac(policy, bindings, vm, asked.target)
        return neighbor_advert(asked, *found) if found is not None else None
    info = router_info(policy, topology, vm)
    if info is None:
        return None
    destination = asked.source if asked.source != UNSPECIFIED else ALL_NODES
    return router_advert(info, vm.mac, destination)


def periodic_advert(policy: Policy, topology: Topology, vm: VM) -> Advert | None:
    """An unsolicited router advertisement for one VM (to all nodes, its MAC only)."""
    info = router_info(policy, topology, vm) if vm.ip6 is not None else None
    return router_advert(info, vm.mac, ALL_NODES) if info is not None else None
