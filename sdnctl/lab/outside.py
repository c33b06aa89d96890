"""The reachability matrix's north–south rows and columns: which probes, and what the
policy promises for each.

Pure: (policy, VMs, services) -> probes with their expected outcome, from the
reference semantics (`reach_out`, `reach_in`, `reach_floating`, `outside_address`),
and probe outcomes -> a `LabReport` judged like the VM-to-VM matrix. The names of
the outside ends:

    internet      as a row: the internet's client (CLIENT); as a column: its server
                  (SERVER), which says which address it saw the VM as
    web1@fip      web1's floating IP (a column)
    shop@snat     tenant shop's SNAT pool, first address (a column: nothing comes in)

Cells: VM -> internet (`reach_out`; the server must see the VM's floating IP, else an
address of its tenant's pool), internet -> VM@fip (`reach_in`), internet -> VM
(its inside address, routed at the gateway directly: never), internet -> tenant@snat
(never), VM -> other VM@fip (`reach_floating`: out and back in).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from sdnctl.lab.internet import CLIENT, SERVER
from sdnctl.lab.probe import ProbeResult, wire_service
from sdnctl.lab.report import Judged, LabReport
from sdnctl.policy.model import Policy, Service
from sdnctl.verify.semantics import reach_floating, reach_in, reach_out

INTERNET = "internet"


def fip_name(vm: str) -> str:
    return f"{vm}@fip"


def snat_name(tenant: str) -> str:
    return f"{tenant}@snat"


@dataclass(frozen=True, slots=True)
class OutsideProbe:
    src: str  # row: a VM or INTERNET
    dst: str  # column: INTERNET, a VM (its inside address), VM@fip or tenant@snat
    service: Service
    runs_in: str  # the host that sends it: the VM `src`, or the internet host
    ip: IPv4Address  # where it is sent
    expect: str  # who must answer: a VM's probe server names its VM; "" anyone
    expected: bool  # what the policy promises
    seen_as: tuple[IPv4Address, ...] = ()  # the addresses the server may see the VM as


def nat_addresses(policy: Policy, vm: str) -> tuple[IPv4Address, ...]:
    """What the outside may see `vm` as: its floating IP, else any of its pool."""
    v = policy.vms[vm]
    if v.floating_ip is not None:
        return (v.floating_ip,)
    snat = policy.tenants[v.tenant].snat
    return tuple(snat.addresses()) if snat is not None else ()


def outside_probes(policy: Policy, vms: Sequence[str],
                   services: Sequence[Service]) -> list[OutsideProbe]:
    """Every north–south probe of the lab's placed VMs `vms`, with its promise."""
    probes: list[OutsideProbe] = []
    floating = [vm for vm in vms if policy.vms[vm].floating_ip is not None]
    for s in services:
        for vm in vms:
            probes.append(OutsideProbe(vm, INTERNET, s, vm, SERVER, INTERNET,
                                       reach_out(policy, vm, SERVER, s),
                                       nat_addresses(policy, vm)))
            probes.append(OutsideProbe(INTERNET, vm, s, INTERNET, policy.vms[vm].ip, "", False))
            for other in floating:
                if other == vm:
                    continue
                fip = policy.vms[other].floating_ip
                assert fip is not None
                probes.append(OutsideProbe(vm, fip_name(other), s, vm, fip, other,
                                           reach_floating(policy, vm, other, s)))
        for vm in floating:
            fip = policy.vms[vm].floating_ip
            assert fip is not None
            probes.append(OutsideProbe(INTERNET, fip_name(vm), s, INTERNET, fip, vm,
                                       reach_in(policy, CLIENT, vm, s)))
        for tenant in sorted({policy.vms[vm].tenant for vm in vms}):
            snat = policy.tenants[tenant].snat
            if snat is not None:
                probes.append(OutsideProbe(INTERNET, snat_name(tenant), s, INTERNET,
                                           snat.first, "", False))
    return probes


def outcome(probe: OutsideProbe, reached: bool, detail: str, answer: str,
            tries: int) -> ProbeResult:
    """What the wire said, as a probe result.

    When the policy promises the probe, only the promised answer counts as reached:
    the intended VM's (its probe server names it), or the internet server having
    seen the VM as one of its NAT addresses (over TCP and UDP: a ping's reply comes
    from the router's kernel and names nobody). When it promises nothing, any answer at
    all is reached (and so a LEAK), whoever gave it.
    """
    if not reached or not answer:
        return ProbeResult(probe.src, probe.dst, probe.service, reached, detail, tries)
    who, _, seen = answer.partition(" ")
    wrong = ""
    if probe.expect and who != probe.expect:
        wrong = f"answered by {who}"
    elif probe.dst == INTERNET and seen:
        if _address(seen) not in probe.seen_as:
            allowed = ", ".join(map(str, probe.seen_as)) or "no address"
            wrong = f"seen as {seen}, not {allowed}"
        else:
            detail = f"{detail}, seen as {seen}"
    if wrong:
        return ProbeResult(probe.src, probe.dst, probe.service, not probe.expected, wrong,
                           tries)
    return ProbeResult(probe.src, probe.dst, probe.service, True, detail, tries)


def _address(text: str) -> IPv4Address | None:
    try:
        return IPv4Address(text)
    except ValueError:
        return None


def judge_outside(probes: Sequence[OutsideProbe], results: Mapping[int, ProbeResult],
                  vms: Sequence[str], services: Sequence[Service]) -> LabReport:
    """The north–south probes as a report: `results` by index into `probes`; a
    probe without a result is missing."""
    names = list(vms) + [INTERNET]
    names += sorted({p.dst for p in probes if p.dst not in names})
    judged = tuple(Judged(results[i], p.expected) for i, p in enumerate(probes) if i in results)
    missing = tuple((p.src, p.dst, p.service) for i, p in enumerate(probes) if i not in results)
    order = {n: k for k, n in enumerate(names)}
    judged = tuple(sorted(judged, key=lambda j: (order[j.probe.src], order[j.probe.dst],
                                                  j.probe.service)))
    return LabReport(tuple(names), tuple(services), judged, missing)


def targets(probes: Iterable[tuple[int, OutsideProbe]], source: IPv4Address | None
            ) -> list[dict[str, object]]:
    """The agent's JSON targets (outside_agent probe) of one host's probes."""
    out: list[dict[str, object]] = []
    for i, p in probes:
        t: dict[str, object] = {"id": i, "ip": str(p.ip), "service": wire_service(p.service)}
        if source is not None:
            t["source"] = str(source)
        out.append(t)
    return out


def format_outside(report: LabReport) -> str:
    """The north–south matrix and its summary: the VM matrix's format, without the
    rows of ends that only receive (floating IPs, pools), with a summary that
    counts probes rather than VMs."""
    from sdnctl.lab.report import format_matrix, format_summary

    receiving = {n for n in report.vms if "@" in n}
    blocks: list[list[str]] = [[]]
    for line in format_matrix(report).splitlines():
        blocks[-1].append(line)
        if line.startswith("-") and "-+-" in line:  # a rule ends a row block
            blocks.append([])
    kept = [b for b in blocks if not b or b[0].split(" ", 1)[0] not in receiving]
    lines = [line for block in kept for line in block]
    judged = report.judged
    summary = format_summary(report).splitlines()
    summary[0] = (f"{len(judged)} north–south probes, {len(report.services)} services:"
                  f" {sum(j.probe.reached for j in judged)} reached,"
                  f" {sum(j.expected for j in judged)} allowed by the policy,"
                  f" {len(report.mismatches)} mismatches")
    return "\n".join(lines + summary)
