"""The north–south keys of a policy file: a tenant's `snat`, a VM's `floating_ip`,
rule ends that name addresses outside the tenant (`external`, a CIDR). Called by
`sdnctl.policy.load`, with its report, so that problems read like every other
(`<object>: <problem>` at the key's line).

A NAT address (an snat pool's or a floating IP) is a unicast IPv4 address, used
once in the whole policy, outside every tenant's segments; with a topology it lies
in a gateway uplink's subnet and is neither an uplink's own address nor its next
hop (`check_nat_addresses`, once every tenant and VM has been read).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from sdnctl.addresses import parse_address, unicast_trouble
from sdnctl.policy.drafts import SegmentDraft, TenantDraft, VMDraft
from sdnctl.policy.model import EXTERNAL, SnatPool, external_net
from sdnctl.topology.model import Topology, Uplink
from sdnctl.yamlsrc import Report, describe

MAX_SNAT_POOL = 256  # addresses in one tenant's pool
_LONGEST_SEGMENT_PREFIX = 30  # segments are at most /30 (sdnctl.policy.load)


def names_addresses(end: str) -> bool:
    """Whether a rule end written `end` is read as addresses (`external` or a CIDR)
    rather than as a group name: such names are not group names."""
    try:
        return external_net(end) is not None
    except ValueError:
        return True  # a malformed CIDR is still not a group name


def read_snat(r: Report, value: object, line: int, where: str) -> SnatPool | None:
    """`snat: 203.0.113.10` or `snat: "203.0.113.10-203.0.113.19"` (at most 256)."""
    shape = ("an IPv4 address like 203.0.113.10 or a range like "
             "\"203.0.113.10-203.0.113.19\"")
    text = value.strip() if isinstance(value, str) else None
    if text is None:
        r.add(line, f"{where}: snat must be {shape}, got {describe(value)}")
        return None
    first_text, dash, last_text = text.partition("-")
    first = parse_address(first_text)
    last = parse_address(last_text) if dash else first
    if first is None or last is None:
        r.add(line, f"{where}: snat must be {shape}, got {describe(value)}")
        return None
    pool = SnatPool(first, last)
    size = int(last) - int(first) + 1
    if size < 1:
        r.add(line, f"{where}: snat range {first_text.strip()}-{last_text.strip()} is "
                    "reversed (first address first)")
        return None
    if size > MAX_SNAT_POOL:
        r.add(line, f"{where}: snat range {pool} has {size} addresses, at most "
                    f"{MAX_SNAT_POOL}")
        return None
    # Reserved blocks are /16 or wider: a pool of 256 cannot hold one between its ends.
    for ip in (first, last):
        trouble = unicast_trouble(ip)
        if trouble:
            r.add(line, f"{where}: snat {ip} {trouble}")
            return None
    return pool


def read_floating_ip(r: Report, value: object, line: int, where: str,
                     seg: SegmentDraft | None) -> IPv4Address | None:
    """A VM's `floating_ip`: unicast, on a VM of a routed VLAN segment (only those
    reach the gateways)."""
    ip = parse_address(value)
    if ip is None:
        r.add(line, f"{where}: floating_ip must be an IPv4 address like 203.0.113.20, "
                    f"got {describe(value)}")
        return None
    trouble = unicast_trouble(ip)
    if trouble:
        r.add(line, f"{where}: floating_ip {ip} {trouble}")
        return None
    if seg is not None and (seg.gateway is None or seg.vlan is None):
        lacks = "no gateway (it is never routed)" if seg.gateway is None else \
            "no vlan (an overlay-only segment does not reach the gateways)"
        r.add(line, f"{where}: floating_ip {ip}, but {seg.where} has {lacks}: only VMs "
                    "of routed VLAN segments reach the outside")
        return None
    return ip


def read_cidr_end(r: Report, tenant: TenantDraft, value: str, key: str, line: int,
                  where: str) -> str | None:
    """A rule end that is an IPv4 CIDR outside the tenant's segments, as
    str(IPv4Network) ("198.51.100.0/24"; a bare address is a /32)."""
    try:
        net = IPv4Network(value.strip())
    except ValueError:
        try:
            loose = IPv4Network(value.strip(), strict=False)
        except ValueError:
            r.add(line, f"{where}: {key} {value!r} is neither a group, any, {EXTERNAL} nor "
                        "an IPv4 CIDR like 198.51.100.0/24")
            return None
        r.add(line, f"{where}: {key} {value} has host bits set (did you mean {loose}?)")
        return None
    for seg in tenant.segments.values():
        if seg.subnet is not None and seg.subnet.overlaps(net):
            r.add(line, f"{where}: {key} {net} overlaps {seg.where} ({seg.subnet}, line "
                        f"{seg.line}): a CIDR end names addresses outside the tenant; "
                        "name the tenant's own VMs by group")
            return None
    return str(net)


def check_rule_ends(r: Report, src: str | None, dst: str | None, family: int | None,
                    line: int, where: str) -> bool:
    """Both ends outside the tenant, or an outside end in IPv6: refused (reported)."""
    outside = [end for end in (src, dst) if end is not None and names_addresses(end)]
    if len(outside) == 2:
        r.add(line, f"{where}: from {src} and to {dst} are both outside the tenant: a rule "
                    "needs the tenant's VMs at one end")
        return False
    if outside and family == 6:
        r.add(line, f"{where}: family ipv6 with {outside[0]} at one end: traffic to and "
                    "from outside the tenant is IPv4 only")
        return False
    return True


# -- across the whole policy ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    """A NAT address range and who wrote it, where."""

    first: IPv4Address
    last: IPv4Address
    where: str  # "tenant T" / "vm V"
    key: str  # "snat" / "floating_ip"
    line: int
    tenant: str

    @property
    def text(self) -> str:
        return str(SnatPool(self.first, self.last))

    def addresses(self) -> Iterable[IPv4Address]:
        return (IPv4Address(n) for n in range(int(self.first), int(self.last) + 1))

    def says(self) -> str:
        return f"{self.where}'s {self.key} {self.text} (line {self.line})"


def check_nat_addresses(r: Report, tenants: Iterable[TenantDraft], vms: Iterable[VMDraft],
                        topology: Topology | None) -> None:
    """Every snat and floating_ip address used once, outside every tenant's segments;
    with a topology, inside a gateway uplink's subnet and not an uplink's own address
    or next hop. Each problem is reported at the later of two lines."""
    tenants = list(tenants)
    claims = sorted(
        [_Claim(t.snat.first, t.snat.last, f"tenant {t.name}", "snat", t.snat_line, t.name)
         for t in tenants if t.snat is not None]
        + [_Claim(vm.floating_ip, vm.floating_ip, f"vm {vm.name}", "floating_ip",
                  vm.floating_ip_line, vm.tenant) for vm in vms
           if vm.floating_ip is not None and vm.tenant is not None],
        key=lambda c: (c.line, c.where))
    if not claims:
        return
    subnets: dict[IPv4Network, SegmentDraft] = {}
    for t in tenants:
        for seg in t.segments.values():
            if seg.subnet is not None:
                subnets.setdefault(seg.subnet, seg)
    uplinks = topology.uplinks() if topology is not None else None
    used: dict[IPv4Address, _Claim] = {}
    exits: dict[str, _Exits] = {}
    for claim in claims:
        trouble = (_repeated(claim, used) or _in_segment(claim, subnets)
                   or (_uplink_trouble(claim, uplinks) if uplinks is not None else ""))
        if not trouble and uplinks is not None:
            trouble = exits.setdefault(claim.tenant, _Exits(uplinks)).add(claim)
        if trouble:
            r.add(claim.line, f"{claim.where}: {claim.key} {trouble}")
        for ip in claim.addresses():
            used.setdefault(ip, claim)


class _Exits:
    """The uplink subnets that hold every NAT address of one tenant seen so far: a
    tenant goes out through one uplink, which answers for all its addresses."""

    def __init__(self, uplinks: tuple[Uplink, ...]) -> None:
        self.all = sorted({str(u.ip.network) for u in uplinks})
        self.nets = {u.ip.network for u in uplinks}
        self.claims: list[_Claim] = []

    def add(self, claim: _Claim) -> str:
        """"" while some uplink subnet holds them all; else why not (the claim is
        then left out, so that one stray address is reported once)."""
        left = {n for n in self.nets if claim.first in n and claim.last in n}
        if not left and self.claims:
            before = self.claims[0]
            return (f"{claim.text} and {before.says()} are in different uplink subnets "
                    f"({', '.join(self.all)}): tenant {claim.tenant} goes out through one "
                    "uplink, whose subnet must hold all its snat and floating_ip addresses")
        self.nets = left
        self.claims.append(claim)
        return ""


def _repeated(claim: _Claim, used: dict[IPv4Address, _Claim]) -> str:
    for ip in claim.addresses():
        other = used.get(ip)
        if other is not None:
            what = str(ip) if claim.first == claim.last else f"{claim.text} ({ip})"
            return f"{what} is already used by {other.says()}"
    return ""


def _in_segment(claim: _Claim, subnets: dict[IPv4Network, SegmentDraft]) -> str:
    """The first address of the claim inside some tenant's segment: one lookup per
    prefix length, so a policy of thousands of segments costs the same."""
    for ip in claim.addresses():
        for prefix in range(_LONGEST_SEGMENT_PREFIX + 1):
            seg = subnets.get(IPv4Network((ip, prefix), strict=False))
            if seg is not None:
                return (f"{ip} lies inside {seg.where} ({seg.subnet}, line {seg.line}): NAT "
                        "addresses are outside every tenant's segments")
    return ""


def _uplink_trouble(claim: _Claim, uplinks: tuple[Uplink, ...]) -> str:
    if not uplinks:
        return (f"{claim.text} needs a gateway, but the topology has none (a switch with "
                "role: gateway and an uplink)")
    for ip in claim.addresses():
        for u in uplinks:
            if ip in (u.ip.ip, u.next_hop):
                what = "the address" if ip == u.ip.ip else "the next hop"
                return f"{ip} is {what} of gateway uplink {u.name} (topology line {u.line})"
        if not any(ip in u.ip.network for u in uplinks):
            nets = ", ".join(sorted({str(u.ip.network) for u in uplinks}))
            return (f"{ip} is outside every gateway uplink's subnet ({nets}): the external "
                    "router would send it to no gateway")
    return ""
