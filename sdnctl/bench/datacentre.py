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
from sdnctl.topology.model import TUNNEL_PORT, Link, PortRef, Role, Switch, Topology

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


def two_vm_tenants(n_tenants: int, shared_plan: bool = True) -> tuple[Policy, Topology]:
    """`n_tenants` tenants of two VMs, one on each of two hypervisors under one leaf:
    the many-small-tenants case (scale issue). One routed segment per tenant, VMs .10
    and .11 of it, one rule a -> b on tcp/80, default deny. With `shared_plan` every
    tenant uses 10.0.0.0/24; without, tenant t has a /24 of its own in 10.0.0.0/8.
    Segments are VLANs while they fit (up to 4,000 tenants), else VXLAN overlays (the
    hypervisors then get tunnel endpoints)."""
    overlay = n_tenants > 4000
    tenants: dict[str, Tenant] = {}
    vms: dict[str, VM] = {}
    for t in range(n_tenants):
        name = f"t{t}"
        net = IPv4Network(f"10.{t >> 8 & 0xFF}.{t & 0xFF}.0/24" if not shared_plan
                          else "10.0.0.0/24")
        seg = Segment(name, "net", None if overlay else 1 + t, net, net.network_address + 1,
                      vni=10_000 + t if overlay else None)
        groups = {g: Group(name, g, MappingProxyType({"role": g})) for g in ("a", "b")}
        rules = (Rule(name, "a", "b", (Service(Proto.TCP, 80, 80),)),)
        tenants[name] = Tenant(name, Default.DENY, MappingProxyType({"net": seg}),
                               MappingProxyType(groups), rules)
        for i, role in enumerate(("a", "b")):
            n = 2 * t + i
            mac = (f"02:01:{n >> 24 & 0xFF:02x}:{n >> 16 & 0xFF:02x}:"
                   f"{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}")
            vm = VM(f"{name}{role}", name, "net", mac, net.network_address + 10 + i,
                    MappingProxyType({"role": role}), f"hv{i}", None)
            vms[vm.name] = vm
    tunnel = (lambda h: IPv4Address(int(IPv4Address("198.18.0.1")) + h)) if overlay else (
        lambda h: None)
    switches = {f"hv{h}": Switch(f"hv{h}", 1 + h, Role.HYPERVISOR, tunnel_ip=tunnel(h))
                for h in range(2)}
    switches["leaf"] = Switch("leaf", 0x100, Role.FABRIC)
    links = tuple(Link(PortRef(f"hv{h}", 1), PortRef("leaf", 1 + h)) for h in range(2))
    return (Policy(MappingProxyType(tenants), MappingProxyType(vms)),
            Topology(MappingProxyType(switches), links))


def policy_doc(policy: Policy) -> dict[str, object]:
    """`policy` as a YAML-ready policy file (version 1), for the CLI benchmarks."""
    tenants: dict[str, object] = {}
    for t in policy.tenants.values():
        segments: dict[str, object] = {}
        for s in t.segments.values():
            seg: dict[str, object] = {}
            if s.vlan is not None:
                seg["vlan"] = s.vlan
            if s.vni is not None:
                seg["vni"] = s.vni
            seg["subnet"] = str(s.subnet)
            if s.gateway is not None:
                seg["gateway"] = str(s.gateway)
            segments[s.name] = seg
        groups: dict[str, object] = {}
        for g in t.groups.values():
            group: dict[str, object] = {}
            if g.labels:
                group["labels"] = dict(g.labels)
            if g.vms:
                group["vms"] = list(g.vms)
            groups[g.name] = group
        tenants[t.name] = {
            "default": t.default.value, "segments": segments, "groups": groups,
            "rules": [{"from": r.src, "to": r.dst, "allow": [str(s) for s in r.services]}
                      for r in t.rules],
        }
    vms: dict[str, object] = {}
    for vm in policy.vms.values():
        doc: dict[str, object] = {"tenant": vm.tenant, "segment": vm.segment, "mac": vm.mac,
                                  "ip": str(vm.ip)}
        if vm.labels:
            doc["labels"] = dict(vm.labels)
        if vm.host is not None:
            doc["host"] = vm.host
        if vm.rate_limit_mbps is not None:
            doc["rate_limit_mbps"] = vm.rate_limit_mbps
        vms[vm.name] = doc
    return {"version": 1, "tenants": tenants, "vms": vms}


def topology_doc(topology: Topology) -> dict[str, object]:
    """`topology` as a YAML-ready topology file (version 1)."""
    switches: dict[str, object] = {}
    for sw in topology.switches.values():
        doc: dict[str, object] = {"dpid": sw.dpid, "role": sw.role.value}
        if sw.tunnel_ip is not None:
            doc["tunnel_ip"] = str(sw.tunnel_ip)
        if sw.tunnel_port != TUNNEL_PORT:
            doc["tunnel_port"] = sw.tunnel_port
        switches[sw.name] = doc
    links = [{"a": f"{ln.a.switch}:{ln.a.port}", "b": f"{ln.b.switch}:{ln.b.port}"}
             for ln in topology.links]
    return {"version": 1, "switches": switches, "links": links}
