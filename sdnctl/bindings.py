"""Where each VM is plugged: VM name -> (switch, OpenFlow port).

Live bindings come from OVSDB (`Interface.external_ids:vm-id`); offline commands
(`check`, `compile`, `explain`, `plan`) and the lab use the planned bindings
derived from each VM's `host`, so the lab can request exactly those port numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Role, Topology

VM_PORT_BASE = 100  # planned VM ports start here, skipping any port a link uses


@dataclass(frozen=True, slots=True)
class Bindings:
    ports: Mapping[str, PortRef] = field(default_factory=lambda: MappingProxyType({}))
    # Gateway uplink ("switch:port") -> its next hop's MAC, as learned by ARP.
    neighbours: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def on_switch(self, switch: str) -> dict[str, int]:
        """VM name -> port for the VMs bound to `switch`."""
        return {vm: ref.port for vm, ref in self.ports.items() if ref.switch == switch}

    def vm_at(self, ref: PortRef) -> str | None:
        for vm, where in self.ports.items():
            if where == ref:
                return vm
        return None


def planned_bindings(policy: Policy, topology: Topology) -> Bindings:
    """Each placed VM on its `host`, ports VM_PORT_BASE, +1, ... in VM-name order."""
    ports: dict[str, PortRef] = {}
    next_port: dict[str, int] = {}
    for name in sorted(policy.vms):
        host = policy.vms[name].host
        if host is None or host not in topology.switches:
            continue
        if topology.switches[host].role is not Role.HYPERVISOR:
            continue
        used = topology.link_ports(host) | {topology.switches[host].tunnel_port}
        port = next_port.get(host, VM_PORT_BASE)
        while port in used:
            port += 1
        ports[name] = PortRef(host, port)
        next_port[host] = port + 1
    return Bindings(MappingProxyType(ports))
