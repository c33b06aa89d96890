"""Which fabric link ports and gateway uplinks are live, as the switches report them.

Fed from each switch's port description at connect and its port-status messages
after that. A link counts as down when either end is down; the compiler then
routes around it (`compile_network(..., down_ports=...)`). An uplink that is down
is no exit: its tenants go out by another gateway's uplink at the next compile.

A switch that never reported is assumed to have all its links up (nothing is
known against them); once a switch has reported its ports, a link port it does
not have at all is down: a missing port carries nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sdnctl.topology.model import PortRef, Topology


class LinkState:
    """Port liveness per switch; `down_ports` restricts it to the topology's links."""

    def __init__(self) -> None:
        self._ports: dict[str, dict[int, bool]] = {}

    def report_switch(self, switch: str, live: Mapping[int, bool]) -> None:
        """A full port description of `switch`: replaces what was known of it."""
        self._ports[switch] = dict(live)

    def report_port(self, switch: str, port: int, live: bool) -> None:
        self._ports.setdefault(switch, {})[port] = live

    def forget_switch(self, switch: str) -> None:
        self._ports.pop(switch, None)

    def is_live(self, ref: PortRef) -> bool:
        ports = self._ports.get(ref.switch)
        return True if ports is None else ports.get(ref.port, False)

    def down_ports(self, topology: Topology) -> frozenset[PortRef]:
        """The link ends and uplink ports of `topology` known to be down."""
        return frozenset(end for end in watched_ports(topology) if not self.is_live(end))


def watched_ports(topology: Topology) -> list[PortRef]:
    """The ports whose liveness the compiler uses: link ends, then gateway uplinks."""
    ends = [end for link in topology.links for end in (link.a, link.b)]
    return ends + [uplink.ref for uplink in topology.uplinks()]


def is_watched(topology: Topology, ref: PortRef) -> bool:
    """Whether `ref` going down or up can change what the switches should hold."""
    if topology.peer(ref) is not None:
        return True
    switch = topology.switches.get(ref.switch)
    return switch is not None and any(u.port == ref.port for u in switch.uplinks)
