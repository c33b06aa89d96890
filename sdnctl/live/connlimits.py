"""Per-VM and per-tenant connection limits: which conntrack zone gets which limit.

A VM's connections, both ways, are tracked in its port's zone on its hypervisor
(`sdnctl.compile.conntrack`); a tenant's NATed connections in its own zone on
every gateway (`sdnctl.compile.exits.nat_zones`). Capping those zones keeps one VM
from filling its hypervisor's connection table, and one tenant from filling the
gateways' NAT table. A connection over the limit is not tracked: its replies
meet no connection and are dropped, so it never opens.

Zones are per datapath: where several switches share one (a lab on one
ovs-vswitchd), VMs on the same port number of different bridges share a zone,
and its limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sdnctl.bindings import Bindings
from sdnctl.compile.exits import NsPlan

DEFAULT_VM_CONN_LIMIT = 10_000
DEFAULT_TENANT_NAT_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class ConnLimits:
    vm: int = DEFAULT_VM_CONN_LIMIT  # per bound VM's zone; 0: no limit
    tenant_nat: int = DEFAULT_TENANT_NAT_LIMIT  # per tenant's zone on the gateways; 0: none


def zone_limits(bindings: Bindings, plan: NsPlan | None, limits: ConnLimits
                ) -> dict[int, int]:
    """Zone -> its limit, for every bound VM and every tenant that goes out.

    >>> from types import MappingProxyType
    >>> from sdnctl.topology.model import PortRef
    >>> b = Bindings(MappingProxyType({"a": PortRef("hv1", 100), "b": PortRef("hv2", 100)}))
    >>> zone_limits(b, None, ConnLimits(vm=50))
    {100: 50}
    """
    out: dict[int, int] = {}
    if limits.vm:
        for ref in bindings.ports.values():
            out[ref.port] = limits.vm
    if limits.tenant_nat and plan is not None:
        for t in plan.tenants.values():
            out[t.zone] = max(out.get(t.zone, 0), limits.tenant_nat)
    return out
