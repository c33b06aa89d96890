"""Stage `port_security`: classify every frame by where it came in.

From a VM port only the bound VM's own untagged IPv4 and ARP pass (source MAC,
source IP, ARP sender MAC and IP all checked), and its DHCP requests (from 0.0.0.0
too) go to stage `dhcp` (`sdnctl.compile.dhcp`); DHCP answers and everything else
from that port are dropped. From a trunk, frames tagged with a carried segment are untagged and
handed to `l2_forward`; from the VXLAN port, IPv4 frames whose tunnel key is the
VNI of a segment with a VM here are handed to `l2_forward` the same way. Each
accepted frame leaves with the tenant in `metadata`, the segment (`Segment.id`) in
reg6 and, from a VM, the VM's conntrack zone in reg5.
"""

from __future__ import annotations

from collections.abc import Iterator

from sdnctl.compile.connlog import logging_meters
from sdnctl.compile.context import ROUTED_BIT, TENANT_MASK, NetworkView
from sdnctl.compile.dhcp import dhcp_meters, dhcp_port_flows
from sdnctl.compile.l2 import MPLS_TC_IP6
from sdnctl.compile.nd import ETH_IP6, nd_meters, nd_port_flows
from sdnctl.flows import (
    OFPVID_PRESENT,
    Flow,
    Goto,
    Match,
    MatchValue,
    Meter,
    MeterBand,
    PopMpls,
    PopVlan,
    SetField,
    WriteMetadata,
)
from sdnctl.pipeline import REG_SEGMENT, REG_ZONE

ETH_IP = 0x0800
ETH_ARP = 0x0806
ETH_MPLS = 0x8847
PRIO_ALLOW = 200
PRIO_PORT_DROP = 100


def tenant_metadata(view: NetworkView, tenant: str, routed: bool) -> WriteMetadata:
    value = view.tenant_ids[tenant] | (ROUTED_BIT if routed else 0)
    return WriteMetadata(value, ROUTED_BIT | TENANT_MASK)


def compile_port_security(view: NetworkView, switch: str) -> Iterator[Flow]:
    for lv in view.local_vms(switch):
        vm, seg, port = lv.vm, lv.segment, lv.port
        owner = f"vm:{vm.name}"
        meter = (Meter(port),) if vm.rate_limit_mbps else ()
        untagged_from_vm: dict[str, MatchValue] = {
            "in_port": port, "eth_src": vm.mac, "vlan_vid": 0}
        yield Flow(
            "port_security", PRIO_ALLOW,
            Match.of(untagged_from_vm, eth_type=ETH_IP, ipv4_src=str(vm.ip)),
            (*meter, SetField(REG_ZONE, port), SetField(REG_SEGMENT, seg.id),
             tenant_metadata(view, vm.tenant, seg.routed), Goto("ct_out")),
            owner,
        )
        yield Flow(
            "port_security", PRIO_ALLOW,
            Match.of(untagged_from_vm, eth_type=ETH_ARP, arp_spa=str(vm.ip), arp_sha=vm.mac),
            (*meter, SetField(REG_SEGMENT, seg.id),
             tenant_metadata(view, vm.tenant, seg.routed), Goto("arp")),
            owner,
        )
        yield from dhcp_port_flows(lv)
        yield from nd_port_flows(view, lv)
        # Anything else from a VM port is spoofed or unsupported: say so by name.
        yield Flow("port_security", PRIO_PORT_DROP, Match.of(in_port=port), (), owner)

    if not view.is_hypervisor(switch):
        # Fabric: labelled frames go on to l2_forward untouched, which switches them
        # by label alone. One flow per trunk.
        for trunk in view.trunk_ports(switch):
            yield Flow(
                "port_security", PRIO_ALLOW,
                Match.of(in_port=trunk, eth_type=ETH_MPLS,
                         vlan_vid=(OFPVID_PRESENT, OFPVID_PRESENT)),
                (Goto("l2_forward"),), "base",
            )
        return
    label = view.fabric_labels[switch]
    for trunk in view.trunk_ports(switch):
        for seg in view.ingress_segments(switch):
            if seg.vlan is None:
                continue  # overlay only: never on a trunk
            yield Flow(
                "port_security", PRIO_ALLOW,
                Match.of(in_port=trunk, vlan_vid=seg.vlan, eth_type=ETH_MPLS, mpls_label=label),
                (PopMpls(ETH_IP), PopVlan(), SetField(REG_SEGMENT, seg.vlan),
                 tenant_metadata(view, seg.tenant, seg.routed), Goto("l2_forward")),
                f"segment:{seg.id}",
            )
            if seg.subnet6 is not None:  # IPv6 crosses with MPLS traffic class 1
                yield Flow(
                    "port_security", PRIO_ALLOW + 1,
                    Match.of(in_port=trunk, vlan_vid=seg.vlan, eth_type=ETH_MPLS,
                             mpls_label=label, mpls_tc=MPLS_TC_IP6),
                    (PopMpls(ETH_IP6), PopVlan(), SetField(REG_SEGMENT, seg.vlan),
                     tenant_metadata(view, seg.tenant, seg.routed), Goto("l2_forward")),
                    f"segment:{seg.id}",
                )
    yield from _tunnel_ingress(view, switch)


def _tunnel_ingress(view: NetworkView, switch: str) -> Iterator[Flow]:
    """Frames from the VXLAN port: the key names the segment (VNIs are unique in a
    policy, so the key alone names the tenant too). Only IPv4 crosses, as on trunks."""
    if switch not in view.tunnel_ips:
        return
    port = view.topology.switches[switch].tunnel_port
    for seg in view.ingress_segments(switch):
        if seg.vni is None:
            continue
        yield Flow(
            "port_security", PRIO_ALLOW,
            Match.of(in_port=port, tun_id=seg.vni, eth_type=ETH_IP),
            (SetField(REG_SEGMENT, seg.id), tenant_metadata(view, seg.tenant, seg.routed),
             Goto("l2_forward")),
            f"segment:{seg.id}",
        )
        if seg.subnet6 is not None:
            yield Flow(
                "port_security", PRIO_ALLOW,
                Match.of(in_port=port, tun_id=seg.vni, eth_type=ETH_IP6),
                (SetField(REG_SEGMENT, seg.id), tenant_metadata(view, seg.tenant, seg.routed),
                 Goto("l2_forward")),
                f"segment:{seg.id}",
            )


def compile_meters(view: NetworkView, switch: str) -> Iterator[MeterBand]:
    """One meter per rate-limited VM, id = its port (unique on the switch), and the
    DHCP meters (`sdnctl.compile.dhcp`)."""
    yield from dhcp_meters(view, switch)
    yield from nd_meters(view, switch)
    yield from logging_meters(view, switch)
    for lv in view.local_vms(switch):
        if lv.vm.rate_limit_mbps:
            kbps = lv.vm.rate_limit_mbps * 1000
            # A burst of ~100 ms of traffic: without one, TCP sees far less than the rate.
            yield MeterBand(lv.port, kbps, max(kbps // 10, 1000), f"vm:{lv.vm.name}")
