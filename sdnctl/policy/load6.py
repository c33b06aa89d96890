"""The IPv6 keys of a policy file: a segment's `subnet6` and `gateway6`, a VM's
`ip6`, a rule's `family`. Called by `sdnctl.policy.load`, with its report, so that
problems read like every other (`<object>: <problem>` at the key's line).

A VM of a segment with `subnet6` and no `ip6` gets its EUI-64 address
(`sdnctl.policy.ipv6`); that needs a /64, so in another prefix length `ip6` is
required.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv6Address
from typing import Any

from sdnctl.policy.drafts import SegmentDraft, TenantDraft, VMDraft
from sdnctl.policy.ipv6 import (
    SLAAC_PREFIX,
    eui64_address,
    parse_address6,
    placement6_trouble,
    read_subnet6,
)
from sdnctl.yamlsrc import LineDict, Report, describe

FAMILIES = {"ipv4": 4, "ipv6": 6}


def read_segment6(r: Report, tenant: TenantDraft, seg: SegmentDraft, body: LineDict) -> None:
    if "subnet6" in body:
        line = body.key_line("subnet6")
        net, why = read_subnet6(body["subnet6"])
        if net is None:
            r.add(line, f"{seg.where}: subnet6 {why}")
        else:
            seg.subnet6 = net
            for other in tenant.segments.values():
                if other is not seg and other.subnet6 is not None and other.subnet6.overlaps(net):
                    r.add(line, f"{seg.where}: subnet6 {net} overlaps {other.where} "
                                f"({other.subnet6}, line {other.line})")
                    break
    if "gateway6" in body:
        line = body.key_line("gateway6")
        gateway = parse_address6(body["gateway6"])
        if gateway is None:
            r.add(line, f"{seg.where}: gateway6 must be an IPv6 address like "
                        f"2001:db8:10::1, got {describe(body['gateway6'])}")
        elif "subnet6" not in body:
            r.add(line, f"{seg.where}: gateway6 {gateway} needs a subnet6 to lie in")
        elif seg.subnet6 is not None:
            trouble = placement6_trouble(gateway, seg.subnet6)
            if trouble:
                r.add(line, f"{seg.where}: gateway6 {gateway} {trouble}")
            else:
                seg.gateway6 = gateway


def read_vm6(r: Report, vm: VMDraft, seg: SegmentDraft | None, body: LineDict,
             where: str) -> None:
    """The VM's `ip6`, or its EUI-64 address when its segment has a /64 subnet6."""
    if "ip6" not in body:
        if seg is None or seg.subnet6 is None or vm.mac is None:
            return
        if seg.subnet6.prefixlen != SLAAC_PREFIX:
            r.add(vm.line, f"{where}: needs an ip6: {seg.where} has subnet6 {seg.subnet6}, "
                           f"not a /{SLAAC_PREFIX}, so no address is built from the MAC")
            return
        vm.ip6, vm.ip6_line = eui64_address(seg.subnet6, vm.mac), vm.line
        return
    line = body.key_line("ip6")
    ip6 = parse_address6(body["ip6"])
    if ip6 is None:
        r.add(line, f"{where}: ip6 must be an IPv6 address like 2001:db8:10::11, "
                    f"got {describe(body['ip6'])}")
        return
    if seg is None:
        return  # its segment is unknown: said already
    if seg.subnet6 is None:
        r.add(line, f"{where}: ip6 {ip6}, but {seg.where} has no subnet6")
        return
    trouble = placement6_trouble(ip6, seg.subnet6)
    if not trouble and ip6 == seg.gateway6:
        trouble = f"is the gateway6 of {seg.where}"
    if trouble:
        r.add(line, f"{where}: ip6 {ip6} {trouble}")
        return
    vm.ip6, vm.ip6_line = ip6, line


def check_ip6s(r: Report, vms: Iterable[VMDraft]) -> None:
    """An IPv6 address names one VM inside its tenant (given or built from a MAC)."""
    first: dict[tuple[str, IPv6Address], VMDraft] = {}
    for vm in vms:
        if vm.tenant is None or vm.ip6 is None:
            continue
        other = first.setdefault((vm.tenant, vm.ip6), vm)
        if other is not vm:
            r.add(vm.ip6_line, f"vm {vm.name}: ip6 {vm.ip6} is already used by "
                               f"vm {other.name} (line {other.line})")


def read_family(r: Report, body: LineDict, where: str) -> int | None:
    """A rule's `family`: ipv4 or ipv6 (that family only); absent: both."""
    if "family" not in body:
        return None
    value: Any = body["family"]
    if not isinstance(value, str) or value not in FAMILIES:
        r.add(body.key_line("family"), f"{where}: family must be ipv4 or ipv6 (leave it out "
                                       f"for both), got {describe(value)}")
        return None
    return FAMILIES[value]
