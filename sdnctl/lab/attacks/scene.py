"""Who is who in the hostile-VM lab: addresses the attacker forges and the judge checks.

Pure: (policy, topology, plan) -> Scene. The scene travels as JSON into the
attacker's host, where `frames` builds packets from it, so it holds plain
strings and ints only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sdnctl.bindings import planned_bindings
from sdnctl.compile.context import NetworkView
from sdnctl.dhcp.lease import segment_mtu
from sdnctl.lab.plan import LabPlan
from sdnctl.pipeline import gateway_mac
from sdnctl.policy.ipv6 import link_local
from sdnctl.policy.model import Policy
from sdnctl.topology.model import Topology

DATA = Path(__file__).with_name("data")
TOPOLOGY = DATA / "hostile.topology.yaml"
POLICY = DATA / "hostile.policy.yaml"

# Roles in data/hostile.policy.yaml (see its header comment).
ATTACKER = "evil"
VICTIMS = ("rf2", "rb1", "bx1", "bx2", "wa", "wb")
WITNESSES = ("wa", "wb")  # a blue pair across the fabric: allowed traffic must keep flowing
# victim -> who sends its canary (an allowed ping): proves its capture was listening.
CANARY_SENDER = {"rf2": "evil", "rb1": "evil", "bx1": "wa", "bx2": "wb", "wa": "bx1", "wb": "bx2"}


@dataclass(frozen=True, slots=True)
class VmAddr:
    name: str
    tenant: str
    vlan: int  # the segment's VLAN id
    mac: str
    ip: str
    gateway_ip: str | None  # None: the segment is not routed
    gateway_mac: str | None
    hypervisor: str
    label: int  # MPLS label the fabric uses to reach this VM's hypervisor
    # IPv6 (all None in a segment without subnet6): the VM's address, its EUI-64
    # link-local, the segment's prefix, gateway6, and the distributed router's
    # link-local address and MAC (what the controller's router advertisements use).
    ip6: str | None = None
    link_local: str | None = None
    subnet6: str | None = None
    gateway6: str | None = None
    router6: str | None = None
    router_mac: str | None = None
    mtu6: int | None = None  # the link MTU the router advertises


@dataclass(frozen=True, slots=True)
class Scene:
    attacker: str
    vms: Mapping[str, VmAddr] = field(default_factory=dict)
    labels: Mapping[str, int] = field(default_factory=dict)  # hypervisor -> fabric label

    def vm(self, name: str) -> VmAddr:
        return self.vms[name]

    @property
    def me(self) -> VmAddr:
        return self.vms[self.attacker]

    def to_json(self) -> str:
        return json.dumps({"attacker": self.attacker, "labels": dict(self.labels),
                           "vms": {n: asdict(v) for n, v in self.vms.items()}})

    @classmethod
    def from_json(cls, text: str) -> Scene:
        doc = json.loads(text)
        return cls(doc["attacker"], {n: VmAddr(**v) for n, v in doc["vms"].items()},
                   dict(doc["labels"]))


def build_scene(policy: Policy, topology: Topology, plan: LabPlan,
                attacker: str = ATTACKER) -> Scene:
    """The addresses of every placed VM, its gateway and its hypervisor's fabric label."""
    view = NetworkView(policy, topology, planned_bindings(policy, topology))
    labels = view.fabric_labels
    vms = {}
    for h in plan.hosts:
        vm = policy.vms[h.vm]
        seg = policy.segment_of(vm)
        gw = str(seg.gateway) if seg.gateway is not None else None
        v6 = vm.ip6 is not None and seg.subnet6 is not None
        vms[h.vm] = VmAddr(
            name=h.vm, tenant=vm.tenant, vlan=seg.vlan, mac=vm.mac, ip=str(vm.ip),
            gateway_ip=gw, gateway_mac=gateway_mac(seg.id) if gw else None,
            hypervisor=h.switch, label=labels[h.switch],
            ip6=str(vm.ip6) if v6 else None,
            link_local=str(link_local(vm.mac)) if v6 else None,
            subnet6=str(seg.subnet6) if v6 else None,
            gateway6=str(seg.gateway6) if v6 and seg.gateway6 is not None else None,
            router6=str(link_local(gateway_mac(seg.id))) if v6 else None,
            router_mac=gateway_mac(seg.id) if v6 else None,
            mtu6=segment_mtu(seg, topology) if v6 else None,
        )
    if attacker not in vms:
        raise ValueError(f"the attacker {attacker!r} is not placed on a hypervisor")
    return Scene(attacker, vms, labels)
