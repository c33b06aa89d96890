"""Equivalence classes of VMs: VMs the network must treat alike, so that one
representative pair per pair of classes stands for every VM pair.

Two bound VMs are in one class when they share

- tenant and segment (so the same VLAN, subnet, gateway, tenant id),
- membership of every rule endpoint of their tenant (each group a rule names, as
  source or destination: what `semantics.reach` and the ACL look at),
- their hypervisor (same switch, so the same flows and the same paths; two VMs on
  different hypervisors may see different fabrics),
- whether they have an IPv6 address (IPv6 is probed between VMs that do), and
- how every *deviating* flow sees them: for each flow that is on a switch but not
  in intent, or in intent but not on the switch, or changed, whether the VM's MAC,
  IP, IPv6 address or (on that switch) port satisfies each address or port
  condition of its match.

Why that is sound: the compiler's flows mention a VM only through its own MAC,
IP, port, segment and tenant, and treat every VM of a class the same way up to
renaming those (checked by the property tests against the reference semantics).
A flow someone added or changed by hand may single out one VM; the last item
splits such a VM from its class. Conditions on services (ports, protocols) are
not about VMs: they are covered by probing the services those flows name. What
the classes cannot see is a difference between two VMs that no flow expresses,
such as a meter's rate: nothing in a reachability probe depends on one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sdnctl.bindings import Bindings
from sdnctl.flows import Flow, MatchValue
from sdnctl.policy.model import VM, Policy

MAC_FIELDS = ("eth_src", "eth_dst", "arp_sha", "arp_tha")
IP_FIELDS = ("ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa")
IP6_FIELDS = ("ipv6_src", "ipv6_dst", "ipv6_nd_target")
PORT_FIELDS = ("in_port", "reg5", "reg7")  # port numbers (conntrack zones are ports too)


@dataclass(frozen=True, slots=True)
class VmClass:
    key: tuple[object, ...]
    members: tuple[str, ...]  # sorted; members[0] is the representative

    @property
    def rep(self) -> str:
        return self.members[0]

    def describe(self) -> str:
        tenant, segment, _groups, host = self.key[:4]
        return f"{tenant}/{segment}@{host} ({len(self.members)} VMs: {_names(self.members)})"


def _names(names: tuple[str, ...], shown: int = 3) -> str:
    more = f", +{len(names) - shown}" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _satisfies(name: str, cond: MatchValue, value: int | str) -> bool:
    if name in MAC_FIELDS:
        def mac(v: object) -> int:
            return int(str(v).replace(":", ""), 16)
        want, mask = (mac(cond[0]), mac(cond[1])) if isinstance(cond, tuple) else (
            mac(cond), (1 << 48) - 1)
        return mac(value) & mask == want & mask
    if name in IP6_FIELDS:
        def ip6(v: object) -> int:
            return int(ipaddress.IPv6Address(str(v)))
        if isinstance(cond, str) and "/" in cond:
            return ipaddress.IPv6Address(str(value)) in ipaddress.IPv6Network(cond, strict=False)
        want6, mask6 = (ip6(cond[0]), ip6(cond[1])) if isinstance(cond, tuple) else (
            ip6(cond), (1 << 128) - 1)
        return ip6(value) & mask6 == want6 & mask6
    if name in IP_FIELDS:
        def ip(v: object) -> int:
            return int(ipaddress.IPv4Address(str(v)))
        if isinstance(cond, str) and "/" in cond:
            net = ipaddress.IPv4Network(cond, strict=False)
            return ipaddress.IPv4Address(str(value)) in net
        want, mask = (ip(cond[0]), ip(cond[1])) if isinstance(cond, tuple) else (
            ip(cond), 0xFFFFFFFF)
        return ip(value) & mask == want & mask
    want_i, mask_i = (int(cond[0]), int(cond[1])) if isinstance(cond, tuple) else (
        int(cond), 0xFFFFFFFF)
    return int(value) & mask_i == want_i & mask_i


def deviation_signature(vm: VM, port: tuple[str, int], deviating: Iterable[tuple[str, Flow]]
                        ) -> tuple[tuple[int, str, bool], ...]:
    """For each deviating (switch, flow) and each address/port condition in its match:
    does this VM satisfy it? Conditions on another switch's ports are not the VM's."""
    sig = []
    for i, (switch, flow) in enumerate(deviating):
        for name, cond in flow.match:
            if name in MAC_FIELDS:
                sig.append((i, name, _satisfies(name, cond, vm.mac)))
            elif name in IP_FIELDS:
                sig.append((i, name, _satisfies(name, cond, str(vm.ip))))
            elif name in IP6_FIELDS:
                sig.append((i, name, vm.ip6 is not None
                            and _satisfies(name, cond, str(vm.ip6))))
            elif name in PORT_FIELDS and port[0] == switch:
                sig.append((i, name, _satisfies(name, cond, port[1])))
    return tuple(sig)


def class_keys(policy: Policy, bindings: Bindings,
               deviating: Iterable[tuple[str, Flow]] = ()) -> dict[str, tuple[object, ...]]:
    """Bound VM -> what its class is made of (the module docstring's list)."""
    devs = list(deviating)
    endpoints: dict[str, list[tuple[str, frozenset[str]]]] = {}
    for tenant in policy.tenants.values():
        names = sorted({r.src for r in tenant.rules} | {r.dst for r in tenant.rules})
        endpoints[tenant.name] = [(n, policy.members(tenant.name, n)) for n in names]
    keys: dict[str, tuple[object, ...]] = {}
    for name in sorted(policy.vms):
        ref = bindings.ports.get(name)
        if ref is None:
            continue
        vm = policy.vms[name]
        groups = tuple(n for n, members in endpoints[vm.tenant] if name in members)
        key: tuple[object, ...] = (vm.tenant, vm.segment, groups, ref.switch,
                                   vm.ip6 is not None)
        if devs:
            key += (deviation_signature(vm, (ref.switch, ref.port), devs),)
        keys[name] = key
    return keys


def group_classes(keys: Mapping[str, tuple[object, ...]]) -> list[VmClass]:
    """VMs with equal keys, as classes sorted by their representative's name."""
    by_key: dict[tuple[object, ...], list[str]] = {}
    for name in sorted(keys):
        by_key.setdefault(keys[name], []).append(name)
    return sorted((VmClass(k, tuple(v)) for k, v in by_key.items()), key=lambda c: c.rep)


def vm_classes(policy: Policy, bindings: Bindings,
               deviating: Iterable[tuple[str, Flow]] = ()) -> list[VmClass]:
    """The bound VMs of `policy`, partitioned as the module docstring says; sorted by
    their representative's name. Unbound VMs are in no class."""
    return group_classes(class_keys(policy, bindings, deviating))


def pair_count(a: VmClass, b: VmClass) -> int:
    """How many ordered VM pairs (src in a, dst in b, src != dst) the class pair holds."""
    n = len(a.members) * len(b.members)
    return n - len(a.members) if a is b else n


def class_of(classes: Iterable[VmClass]) -> Mapping[str, VmClass]:
    return {vm: c for c in classes for vm in c.members}
