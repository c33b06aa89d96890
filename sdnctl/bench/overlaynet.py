"""A synthetic overlay data centre: thousands of VXLAN-only segments (issue 8).

Deterministic, built straight as model objects (no files): `n_segments` overlay
segments (vni, no vlan), two per tenant (web and app, both routed, the same
address plan in every tenant), one VM in each, spread over hypervisors that are
all tunnel endpoints, so that a tenant's two VMs sit on neighbouring hypervisors
and every conversation crosses a tunnel. One rule per tenant (web -> app on
tcp/8080), default deny. No fabric: overlay traffic needs none.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from types import MappingProxyType

from sdnctl.pipeline import tenant_id
from sdnctl.policy.model import VM, Default, Group, Policy, Proto, Rule, Segment, Service, Tenant
from sdnctl.topology.model import Role, Switch, Topology

VMS_PER_HV = 100
FIRST_VNI = 10_000
WEB = IPv4Network("10.0.1.0/24")
APP = IPv4Network("10.0.2.0/24")


def overlay_datacentre(n_segments: int) -> tuple[Policy, Topology]:
    """(policy, topology) with `n_segments` overlay segments (an even number)."""
    n_tenants = n_segments // 2
    n_hv = max(2, -(-n_segments // VMS_PER_HV))
    switches = {
        f"hv{h}": Switch(f"hv{h}", 1 + h, Role.HYPERVISOR,
                         tunnel_ip=IPv4Address(int(IPv4Address("198.18.0.1")) + h))
        for h in range(n_hv)
    }
    tenants: dict[str, Tenant] = {}
    vms: dict[str, VM] = {}
    ids: set[int] = set()
    for t in range(n_tenants):
        name = f"t{t}"
        if tenant_id(name) in ids:
            raise ValueError(f"tenant id of {name} collides")  # the loader would refuse
        ids.add(tenant_id(name))
        segments = {
            "web": Segment(name, "web", None, WEB, WEB.network_address + 1,
                           vni=FIRST_VNI + 2 * t),
            "app": Segment(name, "app", None, APP, APP.network_address + 1,
                           vni=FIRST_VNI + 2 * t + 1),
        }
        groups = {tier: Group(name, tier, MappingProxyType({"tier": tier}))
                  for tier in segments}
        rules = (Rule(name, "web", "app", (Service(Proto.TCP, 8080, 8080),)),)
        tenants[name] = Tenant(name, Default.DENY, MappingProxyType(segments),
                               MappingProxyType(groups), rules)
        for i, (tier, net) in enumerate((("web", WEB), ("app", APP))):
            vm = f"{name}{tier}"
            n = 2 * t + i
            vms[vm] = VM(vm, name, tier, f"02:{n >> 24 & 0xFF:02x}:{n >> 16 & 0xFF:02x}:"
                         f"{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}:01", net.network_address + 10,
                         MappingProxyType({"tier": tier}), f"hv{(t + i) % n_hv}", None)
    policy = Policy(MappingProxyType(tenants), MappingProxyType(vms))
    return policy, Topology(MappingProxyType(switches), ())
