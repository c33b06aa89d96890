"""Synthetic leaf-spine data centres for the scale benchmarks and tests, as objects.

Two placements of the same kind of tenants:

- `packed`: a tenant's VMs sit on a few neighbouring hypervisors, as a scheduler
  with affinity would put them (25 VMs per hypervisor, tenants of 50 VMs).
- `scattered`: the hostile case, a scheduler spreading every tenant over the
  whole data centre for anti-affinity: tenants of 125 VMs, VM k (counted over
  the whole data centre) on hypervisor k * 7919 mod n, so each hypervisor hosts
  VMs of almost every tenant and each tenant touches almost every hypervisor.

Both: 25 VMs per hypervisor on average, 20 hypervisors per leaf pair (every
hypervisor dual-homed), 4 spines; each tenant has routed web/app segments and an
unrouted db segment, label groups by tier and four rules; every fifth VM is rate
limited. Deterministic: the same arguments give the same network.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

from sdnctl.policy.model import (
    ANY,
    VM,
    Default,
    Group,
    Policy,
    Proto,
    Rule,
    Segment,
    Service,
    Tenant,
)
from sdnctl.topology.model import Link, PortRef, Role, Switch, Topology

VMS_PER_HV = 25
HVS_PER_LEAF_PAIR = 20
SPINES = 4
TENANT_SIZE = {"packed": 50, "scattered": 125}
PLACEMENTS = tuple(TENANT_SIZE)
SCATTER_PRIME = 7919
TIERS = ("web", "app", "db")


def leaf_spine(n_hv: int) -> Topology:
    """`n_hv` hypervisors, each dual-homed to a leaf pair; leaves to 4 spines."""
    n_pairs = max(1, -(-n_hv // HVS_PER_LEAF_PAIR))
    switches: dict[str, Switch] = {}
    links: list[Link] = []
    for s in range(SPINES):
        switches[f"spine{s}"] = Switch(f"spine{s}", 0x10000 + s, Role.FABRIC)
    for p in range(n_pairs):
        for side in (0, 1):
            leaf = f"leaf{p}{'ab'[side]}"
            switches[leaf] = Switch(leaf, 0x20000 + 2 * p + side, Role.FABRIC)
            for s in range(SPINES):
                links.append(Link(PortRef(leaf, 1 + s), PortRef(f"spine{s}", 1 + 2 * p + side)))
    for h in range(n_hv):
        hv = f"hv{h}"
        switches[hv] = Switch(hv, 1 + h, Role.HYPERVISOR)
        pair, slot = divmod(h, HVS_PER_LEAF_PAIR)
        for side in (0, 1):
            links.append(Link(PortRef(hv, 1 + side), PortRef(f"leaf{pair}{'ab'[side]}", 10 + slot)))
    return Topology(MappingProxyType(switches), tuple(links))


def host_of(index: int, n_hv: int, placement: str) -> str:
    """The hypervisor of the data centre's `index`-th VM."""
    if placement == "scattered":
        return f"hv{index * SCATTER_PRIME % n_hv}"
    return f"hv{index // VMS_PER_HV % n_hv}"


def tenant(name: str, number: int) -> Tenant:
    segs = {
        tier: Segment(name, tier, 3 * number + i + 1, IPv4Network(f"10.{i}.0.0/16"),
                      IPv4Address(f"10.{i}.0.1") if tier != "db" else None)
        for i, tier in enumerate(TIERS)
    }
    groups = {tier: Group(name, tier, MappingProxyType({"tier": tier})) for tier in TIERS}
    rules = (
        Rule(name, ANY, "web", (Service(Proto.TCP, 80, 80), Service(Proto.TCP, 443, 443))),
        Rule(name, "web", "app", (Service(Proto.TCP, 8000, 8100),)),
        Rule(name, "app", "db", (Service(Proto.TCP, 5432, 5432),)),
        Rule(name, "app", "app", (Service(Proto.UDP, 7000, 7000), Service(Proto.ICMP))),
    )
    return Tenant(name, Default.DENY, MappingProxyType(segs), MappingProxyType(groups), rules)


def vm_of(tenant_name: str, v: int, index: int, host: str) -> VM:
    """The tenant's `v`-th VM, the data centre's `index`-th."""
    tier = TIERS[v % 3]
    mac = (f"02:00:{index >> 24 & 0xFF:02x}:{index >> 16 & 0xFF:02x}:"
           f"{index >> 8 & 0xFF:02x}:{index & 0xFF:02x}")
    return VM(
        f"{tenant_name}vm{v}", tenant_name, tier, mac,
        IPv4Address(f"10.{TIERS.index(tier)}.{v // 200}.{10 + v % 200}"),
        MappingProxyType({"tier": tier}), host, 100 if v % 5 == 0 else None,
    )


def datacentre(n_vms: int, placement: str = "packed") -> tuple[Policy, Topology]:
    if placement not in TENANT_SIZE:
        raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}")
    n_hv = max(1, n_vms // VMS_PER_HV)
    size = TENANT_SIZE[placement]
    tenants: dict[str, Tenant] = {}
    vms: dict[str, VM] = {}
    for t in range(max(1, -(-n_vms // size))):
        name = f"t{t}"
        tenants[name] = tenant(name, t)
        for v in range(size):
            index = t * size + v
            if index >= n_vms:
                break
            vm = vm_of(name, v, index, host_of(index, n_hv, placement))
            vms[vm.name] = vm
    return Policy(MappingProxyType(tenants), MappingProxyType(vms)), leaf_spine(n_hv)
