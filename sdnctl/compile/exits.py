"""Where each tenant goes out: its exit uplink, its NAT addresses, its gateway zone.

A tenant *goes out* when a rule of it names an external end (`external` or a
CIDR) and it has an address to go out with: a `snat` pool or a VM with a
`floating_ip`. Only VMs of its routed VLAN segments take part (gateways reach
VMs by VLAN and label, like hypervisors).

Its *exit* is a gateway uplink whose subnet holds all its NAT addresses, whose
port is up and whose gateway still has a live link; among several, a stable
hash of (tenant, uplink) picks, so tenants spread over the gateways and a tenant
moves only when its exit dies. On every gateway it has a conntrack zone of its
own (`nat_zones`), so tenants with overlapping addresses never meet.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from ipaddress import IPv4Address

from sdnctl.compile.context import NetworkView
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.model import VM, Segment, SnatPool
from sdnctl.topology.model import Uplink

# Conntrack zones of tenants on gateways: above the port numbers VMs get.
NAT_ZONE_BASE = 0xF000
NAT_ZONES = 0x1000


@dataclass(frozen=True, slots=True)
class NsTenant:
    """A tenant that goes out, as the gateways and its hypervisors see it."""

    name: str
    tid: int
    zone: int  # its conntrack zone on every gateway
    snat: SnatPool | None
    floating: tuple[tuple[VM, IPv4Address], ...]  # VMs (of `segments`) with a floating IP
    segments: tuple[Segment, ...]  # its routed VLAN segments: where north–south starts/ends
    exit: Uplink | None  # None: no live uplink can carry its addresses

    @property
    def segment_names(self) -> frozenset[str]:
        return frozenset(seg.name for seg in self.segments)

    @property
    def addresses(self) -> list[IPv4Address]:
        """Every address it is known by outside: its pool, then its floating IPs."""
        pool = self.snat.addresses() if self.snat is not None else []
        return pool + [fip for _, fip in self.floating]

    @property
    def entry_mac(self) -> str:
        """What a packet from outside is addressed to once inside: a gateway MAC of
        the tenant, which its shared routes (`route_tenant_flows`) match."""
        return gateway_mac(self.segments[0].id)


@dataclass(frozen=True, slots=True)
class NsPlan:
    tenants: dict[str, NsTenant]

    def on_exit(self, uplink: Uplink) -> list[tuple[IPv4Address, NsTenant]]:
        """The addresses `uplink` answers for now, with their tenants."""
        return [(addr, t) for t in self.tenants.values() if t.exit == uplink
                for addr in t.addresses]


def nat_zones(tenants: list[str]) -> dict[str, int]:
    """A stable zone per tenant (from its name; collisions resolved in name order)."""
    zones: dict[str, int] = {}
    used: set[int] = set()
    for name in sorted(tenants):
        slot = zlib.crc32(name.encode()) % NAT_ZONES
        while slot in used:
            slot = (slot + 1) % NAT_ZONES
        used.add(slot)
        zones[name] = NAT_ZONE_BASE + slot
    return zones


def exit_is_live(view: NetworkView, uplink: Uplink) -> bool:
    """Its port is up and its gateway has a link left to the fabric."""
    if uplink.ref in view.down_ports:
        return False
    return any(
        (link.a.switch == uplink.switch or link.b.switch == uplink.switch)
        and link.a not in view.down_ports and link.b not in view.down_ports
        for link in view.topology.links
    )


def build_plan(view: NetworkView) -> NsPlan:
    policy = view.policy
    going: dict[str, tuple[tuple[Segment, ...], tuple[tuple[VM, IPv4Address], ...]]] = {}
    for name in sorted(policy.tenants):
        tenant = policy.tenants[name]
        if not tenant.north_south:
            continue
        segments = tuple(sorted((s for s in tenant.segments.values()
                                 if s.routed and s.vlan is not None), key=lambda s: s.id))
        seg_names = {s.name for s in segments}
        floating = tuple((vm, vm.floating_ip) for vm in view.vms_by_tenant.get(name, ())
                         if vm.floating_ip is not None and vm.segment in seg_names)
        if segments and (tenant.snat is not None or floating):
            going[name] = (segments, floating)
    zones = nat_zones(list(going))
    live = [u for u in view.topology.uplinks() if exit_is_live(view, u)]
    tenants: dict[str, NsTenant] = {}
    for name, (segments, floating) in going.items():
        snat = policy.tenants[name].snat
        t = NsTenant(name, view.tenant_ids[name], zones[name], snat, floating, segments, None)
        able = [u for u in live if all(a in u.ip.network for a in t.addresses)]
        able.sort(key=lambda u: (zlib.crc32(f"{name}>{u.name}".encode()), u.name))
        tenants[name] = NsTenant(name, t.tid, t.zone, snat, floating, segments,
                                 able[0] if able else None)
    return NsPlan(tenants)


def ns_plan(view: NetworkView) -> NsPlan:
    plan = view.memo.get("ns_plan")
    if not isinstance(plan, NsPlan):
        plan = build_plan(view)
        view.memo["ns_plan"] = plan
    return plan


def may_go_out(view: NetworkView, vm: VM) -> bool:
    """Whether `vm` can open connections outside: its tenant goes out, its segment
    takes part, and it has a floating IP or its tenant a pool."""
    t = ns_plan(view).tenants.get(vm.tenant)
    if t is None or vm.segment not in t.segment_names:
        return False
    return vm.floating_ip is not None or t.snat is not None
