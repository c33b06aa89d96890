"""Policy objects while they are being read: mutable, possibly incomplete.

The reader fills drafts as it validates; once no problem was reported they are
built into the frozen model objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from types import MappingProxyType

from sdnctl.policy.model import VM, Default, Group, Rule, Segment, SnatPool, Tenant
from sdnctl.yamlsrc import LineDict


@dataclass
class SegmentDraft:
    tenant: str
    name: str
    line: int
    vlan: int | None = None
    vni: int | None = None
    subnet: IPv4Network | None = None
    gateway: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] | None = None
    subnet6: IPv6Network | None = None
    gateway6: IPv6Address | None = None

    @property
    def where(self) -> str:
        return f"segment {self.tenant}/{self.name}"


@dataclass
class TenantDraft:
    name: str
    line: int
    body: LineDict
    broken: bool = False  # not even a mapping: what names it is not checked further
    default: Default = Default.DENY
    segments: dict[str, SegmentDraft] = field(default_factory=dict)
    group_names: set[str] = field(default_factory=set)  # declared, valid or not
    groups: dict[str, Group] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    waive: frozenset[str] = frozenset()
    dns: tuple[IPv4Address, ...] = ()
    snat: SnatPool | None = None
    snat_line: int = 0
    log_denied: bool = False


@dataclass
class VMDraft:
    name: str
    line: int
    tenant: str | None = None  # set only when it names a known tenant
    segment: str | None = None
    mac: str | None = None
    ip: IPv4Address | None = None
    ip_line: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    host: str | None = None
    rate_limit_mbps: int | None = None
    waive: frozenset[str] = frozenset()
    ip6: IPv6Address | None = None  # given, or EUI-64 (sdnctl.policy.load6)
    ip6_line: int = 0
    floating_ip: IPv4Address | None = None
    floating_ip_line: int = 0


def build_tenant(t: TenantDraft) -> Tenant:
    segments = {name: build_segment(s) for name, s in t.segments.items()}
    return Tenant(
        t.name, t.default, MappingProxyType(segments), MappingProxyType(dict(t.groups)),
        tuple(t.rules), t.line, t.waive, t.dns, t.snat, t.log_denied,
    )


def build_segment(s: SegmentDraft) -> Segment:
    assert (s.vlan is not None or s.vni is not None) and s.subnet is not None
    return Segment(s.tenant, s.name, s.vlan, s.subnet, s.gateway, s.line, s.vni, s.dns,
                   s.subnet6, s.gateway6)


def build_vm(vm: VMDraft) -> VM:
    assert vm.tenant and vm.segment and vm.mac and vm.ip is not None
    return VM(
        vm.name, vm.tenant, vm.segment, vm.mac, vm.ip, MappingProxyType(dict(vm.labels)),
        vm.host, vm.rate_limit_mbps, vm.line, vm.waive, vm.ip6, vm.floating_ip,
    )
