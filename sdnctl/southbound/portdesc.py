"""OpenFlow 1.3 port descriptions -> (port number, name, live), for link-failure handling.

A port is live when the switch says so (OFPPS_LIVE, which OVS sets when the port is
up and has carrier), its link is not down and it is not administratively down.
OVS reports a veth whose peer was set down as LINK_DOWN, without LIVE.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp


@dataclass(frozen=True, slots=True)
class PortInfo:
    port_no: int
    name: str
    live: bool


def port_info(desc: Any) -> PortInfo:
    """One OFPPort (from a port-desc reply or a port-status message)."""
    live = (
        bool(desc.state & ofp.OFPPS_LIVE)
        and not desc.state & ofp.OFPPS_LINK_DOWN
        and not desc.config & ofp.OFPPC_PORT_DOWN
    )
    name = desc.name.decode(errors="replace") if isinstance(desc.name, bytes) else str(desc.name)
    return PortInfo(int(desc.port_no), name, live)


def switch_ports(body: Iterable[Any]) -> dict[int, PortInfo]:
    """A port-desc reply body -> the switch's real ports (OFPP_LOCAL and up left out)."""
    infos = (port_info(d) for d in body)
    return {p.port_no: p for p in infos if p.port_no < ofp.OFPP_MAX}


def port_desc_request(dp: Any) -> Any:
    """Ask a switch for all its ports (os-ken asks once itself, at connect)."""
    return dp.ofproto_parser.OFPPortDescStatsRequest(dp, 0)
