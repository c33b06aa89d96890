"""Sets of services as exact ranges: what a rule list allows, compared whole.

A `ServiceSet` is the set of first packets some VM pair may send, cut along the
only lines a policy can draw: TCP ports and UDP ports (0..65535, as sorted
disjoint ranges), ICMP echo, and every other IPv4 packet (other protocols, other
ICMP types: only `any` allows those). Set difference between what two policies
allow therefore partitions each protocol's port space by every boundary either
policy names, without ever listing the pieces: `tcp/8000-8100` widened to
`tcp/8000-9000` differs by exactly `tcp/8101-9000`.

>>> wide = ServiceSet.of([parse_service("tcp/8000-9000")])
>>> [str(r) for r in wide.minus(ServiceSet.of([parse_service("tcp/8000-8100")])).ranges()]
['tcp/8101-9000']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sdnctl.policy.model import Proto, Service, parse_service  # noqa: F401 (doctest)

MAX_PORT = 65535
Ranges = tuple[tuple[int, int], ...]  # sorted, disjoint, not adjacent, inclusive
ALL_PORTS: Ranges = ((0, MAX_PORT),)
OTHER = "other-ip"  # how the every-other-IPv4-packet class is written


@dataclass(frozen=True, slots=True, order=True)
class ServiceRange:
    """One maximal piece of a ServiceSet: `tcp/8101-9000`, `icmp`, `other-ip`, or
    `any` (the whole set)."""

    proto: str  # "tcp", "udp", "icmp", OTHER or "any"
    lo: int = 0
    hi: int = 0

    def __str__(self) -> str:
        if self.proto not in ("tcp", "udp"):
            return self.proto
        ports = f"{self.lo}" if self.lo == self.hi else f"{self.lo}-{self.hi}"
        return f"{self.proto}/{ports}"

    @staticmethod
    def parse(text: str) -> ServiceRange:
        """The inverse of str(): `tcp/8101-9000`, `udp/53`, `icmp`, `other-ip`, `any`."""
        if text in ("icmp", OTHER, "any"):
            return ServiceRange(text)
        proto, _, ports = text.partition("/")
        lo, _, hi = ports.partition("-")
        if proto not in ("tcp", "udp") or not lo.isdigit() or not (hi or lo).isdigit():
            raise ValueError(f"not a service range: {text!r}")
        return ServiceRange(proto, int(lo), int(hi or lo))

    def contains(self, service: Service) -> bool:
        """Does this range hold every packet of `service` (a policy service)?"""
        if self.proto == "any":
            return True
        if service.proto is Proto.ANY:
            return False
        if service.has_ports:
            return (self.proto == service.proto.value
                    and self.lo <= service.port_lo and service.port_hi <= self.hi)
        return self.proto == service.proto.value


@dataclass(frozen=True, slots=True)
class ServiceSet:
    """A set of first packets, in normal form: equal sets compare equal."""

    tcp: Ranges = ()
    udp: Ranges = ()
    icmp: bool = False  # ICMP echo request
    other: bool = False  # every IPv4 packet that is not TCP, UDP or ICMP echo

    @staticmethod
    def of(services: Iterable[Service]) -> ServiceSet:
        tcp: list[tuple[int, int]] = []
        udp: list[tuple[int, int]] = []
        icmp = False
        for s in services:
            if s.proto is Proto.ANY:
                return FULL
            if s.proto is Proto.ICMP:
                icmp = True
            else:
                (tcp if s.proto is Proto.TCP else udp).append((s.port_lo, s.port_hi))
        return ServiceSet(_normal(tcp), _normal(udp), icmp, False)

    def __bool__(self) -> bool:
        return bool(self.tcp or self.udp or self.icmp or self.other)

    def union(self, other: ServiceSet) -> ServiceSet:
        return ServiceSet(_normal([*self.tcp, *other.tcp]), _normal([*self.udp, *other.udp]),
                          self.icmp or other.icmp, self.other or other.other)

    def minus(self, other: ServiceSet) -> ServiceSet:
        return ServiceSet(_minus(self.tcp, other.tcp), _minus(self.udp, other.udp),
                          self.icmp and not other.icmp, self.other and not other.other)

    def ranges(self) -> tuple[ServiceRange, ...]:
        """The set as maximal ranges; the full set is the one range `any`."""
        if self == FULL:
            return (ServiceRange("any"),)
        out = [ServiceRange("tcp", lo, hi) for lo, hi in self.tcp]
        out += [ServiceRange("udp", lo, hi) for lo, hi in self.udp]
        if self.icmp:
            out.append(ServiceRange("icmp"))
        if self.other:
            out.append(ServiceRange(OTHER))
        return tuple(out)


FULL = ServiceSet(ALL_PORTS, ALL_PORTS, True, True)
EMPTY = ServiceSet()


def _normal(ranges: list[tuple[int, int]]) -> Ranges:
    """Sorted, overlapping and adjacent ranges merged."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def _minus(a: Ranges, b: Ranges) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in a:
        for blo, bhi in b:
            if bhi < lo or blo > hi:
                continue
            if blo > lo:
                out.append((lo, blo - 1))
            lo = bhi + 1
            if lo > hi:
                break
        if lo <= hi:
            out.append((lo, hi))
    return tuple(out)
