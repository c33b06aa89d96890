"""The validated, immutable policy model (DESIGN.md §2).

Nothing here parses files: `sdnctl.policy.load` turns YAML into these objects and
refuses anything invalid, so code that receives a `Policy` may trust it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from types import MappingProxyType

ANY = "any"  # the group name that means "every VM of the tenant"
# The rule end that means "any address outside the tenant's segments"; a rule end
# may also be a CIDR outside them (e.g. "198.51.100.0/24"): both are external ends.
EXTERNAL = "external"
EVERYWHERE = IPv4Network("0.0.0.0/0")
MAX_VNI = (1 << 24) - 1  # VXLAN network identifiers are 24 bits
# Segment ids (reg6, flow owners) of overlay-only segments: above every VLAN id, so
# the two kinds never collide, and the VNI is readable in the low 24 bits.
OVERLAY_ID_BASE = 1 << 24


class Proto(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"
    ICMP = "icmp"  # ICMP echo request (ICMPv6 echo for IPv6); replies ride on conntrack
    ANY = "any"  # every IP packet (IPv4 or IPv6)


class Default(enum.StrEnum):
    DENY = "deny"
    ALLOW = "allow"


@dataclass(frozen=True, slots=True, order=True)
class Service:
    """One entry of a rule's `allow` list: `tcp/80`, `udp/1000-2000`, `icmp`, `any`."""

    proto: Proto
    port_lo: int = 0  # 0 for protocols without ports
    port_hi: int = 0

    @property
    def has_ports(self) -> bool:
        return self.proto in (Proto.TCP, Proto.UDP)

    def contains(self, other: Service) -> bool:
        """True when every packet of `other` is also a packet of `self`."""
        if self.proto is Proto.ANY:
            return True
        if self.proto is not other.proto:
            return False
        if not self.has_ports:
            return True
        return self.port_lo <= other.port_lo and other.port_hi <= self.port_hi

    def __str__(self) -> str:
        if not self.has_ports:
            return self.proto.value
        if self.port_lo == self.port_hi:
            return f"{self.proto.value}/{self.port_lo}"
        return f"{self.proto.value}/{self.port_lo}-{self.port_hi}"


def parse_service(text: str) -> Service:
    """Parse `tcp/80`, `tcp/8000-8100`, `udp/53`, `icmp` or `any`; ValueError if bad."""
    text = text.strip()
    if text in ("icmp", "any"):
        return Service(Proto(text))
    proto_text, sep, ports = text.partition("/")
    if not sep or proto_text not in ("tcp", "udp"):
        raise ValueError(
            f"bad service {text!r}: expected tcp/PORT, udp/PORT, tcp/LO-HI, icmp or any"
        )
    lo_text, dash, hi_text = ports.partition("-")
    if not (lo_text.isascii() and lo_text.isdigit()) or (
        dash and not (hi_text.isascii() and hi_text.isdigit())
    ):
        raise ValueError(f"bad service {text!r}: ports must be numbers like 80 or 8000-8100")
    lo = int(lo_text)
    hi = int(hi_text) if dash else lo
    if not 1 <= lo <= 65535 or not 1 <= hi <= 65535:
        raise ValueError(f"bad service {text!r}: ports must be within 1..65535")
    if lo > hi:
        raise ValueError(f"bad service {text!r}: port range {lo}-{hi} is reversed")
    return Service(Proto(proto_text), lo, hi)


@dataclass(frozen=True, slots=True)
class Segment:
    """One L2 domain of a tenant: a VLAN, an overlay (VXLAN VNI), or both."""

    tenant: str
    name: str
    vlan: int | None  # the 802.1Q tag on fabric trunks; None: overlay only
    subnet: IPv4Network
    gateway: IPv4Address | None  # None: the segment is never routed
    line: int = field(default=0, compare=False)  # where it was written, not what it is
    vni: int | None = None  # the VXLAN key between hypervisors; None: VLAN only
    dns: tuple[IPv4Address, ...] | None = None  # DHCP's DNS servers; None: the tenant's
    subnet6: IPv6Network | None = None  # None: the segment carries no IPv6
    gateway6: IPv6Address | None = None  # None: not routed for IPv6

    def __post_init__(self) -> None:
        if self.vlan is None and self.vni is None:
            raise ValueError(f"segment {self.tenant}/{self.name} has neither vlan nor vni")

    @property
    def routed(self) -> bool:
        return self.gateway is not None

    @property
    def routed6(self) -> bool:
        return self.gateway6 is not None

    def routed_in(self, family: int) -> bool:
        """Routed for IPv4 (family 4: has a gateway) or IPv6 (6: has a gateway6)."""
        return self.routed if family == 4 else self.routed6

    @property
    def id(self) -> int:
        """The segment's one identity inside the pipeline (reg6, owners, gateway MAC):
        its VLAN when it has one, else OVERLAY_ID_BASE + its VNI. Unique in a policy,
        since VLANs and VNIs each are."""
        if self.vlan is not None:
            return self.vlan
        assert self.vni is not None
        return OVERLAY_ID_BASE + self.vni

    @property
    def overlay(self) -> bool:
        """Travels between hypervisors in VXLAN tunnels (where both ends have one)."""
        return self.vni is not None


@dataclass(frozen=True, slots=True)
class Group:
    """A micro-segmentation group: VMs whose labels include `labels`, plus `vms`."""

    tenant: str
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    vms: tuple[str, ...] = ()
    line: int = field(default=0, compare=False)  # where it was written, not what it is
    # Lint warnings the operator waived here (`waive: [covered]`): not what it is either.
    waive: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True, slots=True)
class Rule:
    """Allow `services` for connections opened by `src` members towards `dst` members."""

    tenant: str
    src: str  # a group name of the tenant, or ANY
    dst: str
    services: tuple[Service, ...]
    line: int = field(default=0, compare=False)  # where it was written, not what it is
    # Lint warnings the operator waived here (`waive: [covered]`): not what it is either.
    waive: frozenset[str] = field(default=frozenset(), compare=False)
    family: int | None = None  # 4 or 6: the rule allows that family only; None: both
    log: bool = False  # record each new connection it allows (sdnctl.compile.connlog)

    def covers(self, family: int) -> bool:
        return self.family is None or self.family == family

    @property
    def src_net(self) -> IPv4Network | None:
        """The external addresses `src` names (`external`: all), None for a group."""
        return external_net(self.src)

    @property
    def dst_net(self) -> IPv4Network | None:
        return external_net(self.dst)

    @property
    def inbound(self) -> bool:
        """From outside the tenant towards its VMs (through floating IPs)."""
        return self.src_net is not None

    @property
    def outbound(self) -> bool:
        """From the tenant's VMs to addresses outside it (through NAT)."""
        return self.dst_net is not None

    @property
    def north_south(self) -> bool:
        return self.inbound or self.outbound


def external_net(end: str) -> IPv4Network | None:
    """The addresses a rule end names when it is external (`external` or a CIDR)."""
    if end == EXTERNAL:
        return EVERYWHERE
    if "/" in end or end[:1].isdigit():
        return IPv4Network(end)
    return None


@dataclass(frozen=True, slots=True, order=True)
class SnatPool:
    """A tenant's source-NAT addresses: `first`..`last` (one address: equal)."""

    first: IPv4Address
    last: IPv4Address

    def addresses(self) -> list[IPv4Address]:
        return [IPv4Address(n) for n in range(int(self.first), int(self.last) + 1)]

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    default: Default
    segments: Mapping[str, Segment]
    groups: Mapping[str, Group]
    rules: tuple[Rule, ...]
    line: int = field(default=0, compare=False)  # where it was written, not what it is
    # Lint warnings the operator waived here (`waive: [covered]`): not what it is either.
    waive: frozenset[str] = field(default=frozenset(), compare=False)
    dns: tuple[IPv4Address, ...] = ()  # DHCP's DNS servers for segments naming none
    snat: SnatPool | None = None  # source address(es) of its VMs going out; None: no SNAT
    log_denied: bool = False  # record first packets no rule allows (sdnctl.compile.connlog)

    @property
    def north_south(self) -> bool:
        """Whether any rule of the tenant names addresses outside it."""
        return any(r.north_south for r in self.rules)


@dataclass(frozen=True, slots=True)
class VM:
    name: str
    tenant: str
    segment: str
    mac: str  # lower-case, colon separated: "02:00:00:00:10:11"
    ip: IPv4Address
    labels: Mapping[str, str]
    host: str | None  # the placement used by the lab and `vm plug`; None if unplaced
    rate_limit_mbps: int | None
    line: int = field(default=0, compare=False)  # where it was written, not what it is
    # Lint warnings the operator waived here (`waive: [covered]`): not what it is either.
    waive: frozenset[str] = field(default=frozenset(), compare=False)
    # Its IPv6 address: given, or the EUI-64 one (from the MAC) in a segment with
    # subnet6; None in a segment without IPv6.
    ip6: IPv6Address | None = None
    floating_ip: IPv4Address | None = None  # its 1:1 NAT address outside; None: none


@dataclass(frozen=True, slots=True)
class Policy:
    tenants: Mapping[str, Tenant]
    vms: Mapping[str, VM]
    source: str = "<policy>"
    # An index, not data: tenant -> its VMs, so per-tenant questions cost O(tenant).
    _by_tenant: Mapping[str, tuple[VM, ...]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        by_tenant: dict[str, list[VM]] = {}
        for vm in self.vms.values():
            by_tenant.setdefault(vm.tenant, []).append(vm)
        object.__setattr__(
            self, "_by_tenant", MappingProxyType({t: tuple(v) for t, v in by_tenant.items()})
        )

    def segment_of(self, vm: VM) -> Segment:
        return self.tenants[vm.tenant].segments[vm.segment]

    def vms_of(self, tenant: str) -> Iterator[VM]:
        return iter(self._by_tenant.get(tenant, ()))

    def members(self, tenant: str, group: str) -> frozenset[str]:
        """Names of the VMs a group (or ANY) names inside `tenant`; none for an
        external end (`external` or a CIDR)."""
        if group == ANY:
            return frozenset(vm.name for vm in self.vms_of(tenant))
        g = self.tenants[tenant].groups.get(group)
        if g is None:
            assert external_net(group) is not None, f"unknown group {tenant}/{group}"
            return frozenset()
        by_label = {
            vm.name
            for vm in self.vms_of(tenant)
            if all(vm.labels.get(k) == v for k, v in g.labels.items())
        } if g.labels else set()
        return frozenset(by_label | set(g.vms))

    def services(self) -> tuple[Service, ...]:
        """Every service named by some rule, sorted, without repeats."""
        return tuple(
            sorted({s for t in self.tenants.values() for r in t.rules for s in r.services})
        )
