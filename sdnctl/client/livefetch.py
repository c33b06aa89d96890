"""Everything `sdnctl verify` needs, fetched from the running daemon's API.

The daemon is asked for what it enforces (/status, /policy, /topology), for every
switch's intent (/flows/SWITCH) and for what every connected switch holds now
(/flows/SWITCH?source=switch: the daemon reads it from the switch). Switches are
read in parallel; a switch that cannot be read is recorded with the reason.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from sdnctl.bindings import Bindings
from sdnctl.client.api import (
    ApiError,
    get_flows,
    get_live_flows,
    get_policy_text,
    get_status,
    get_topology_text,
)
from sdnctl.flowjson import flow_from_json, flowset_from_json
from sdnctl.flows import FlowSet
from sdnctl.policy.load import parse_policy
from sdnctl.policy.model import Policy
from sdnctl.topology.load import parse_topology
from sdnctl.topology.model import PortRef, Topology
from sdnctl.verify.live import LiveTables

WORKERS = 8


@dataclass
class Enforced:
    """What the daemon enforces: its inputs, live bindings and per-switch intent."""

    status: dict[str, Any]
    policy: Policy
    topology: Topology
    bindings: Bindings
    down_ports: frozenset[PortRef]
    intent: dict[str, FlowSet]


def _ref(text: str) -> PortRef:
    switch, _, port = text.rpartition(":")
    return PortRef(switch, int(port))


def fetch_enforced(api: str, token: str | None, timeout: float = 10.0) -> Enforced:
    """ApiError when the daemon does not answer; LoadError if what it enforces does not
    load here (a different sdnctl version)."""
    status = get_status(api, timeout, token)
    topology = parse_topology(get_topology_text(api, timeout, token), f"{api}/topology")
    policy = parse_policy(get_policy_text(api, timeout, token), f"{api}/policy", topology)
    bindings = Bindings(MappingProxyType(
        {vm: _ref(at) for vm, at in status.get("bindings", {}).items()}))
    down = frozenset(_ref(r) for r in status.get("down_ports", []))
    names = sorted(status.get("switches", {}))
    with ThreadPoolExecutor(WORKERS) as pool:
        intents = list(pool.map(lambda n: get_flows(api, n, timeout, token), names))
    return Enforced(status, policy, topology, bindings, down,
                    {n: flowset_from_json(j) for n, j in zip(names, intents, strict=True)})


def fetch_live(api: str, token: str | None, enforced: Enforced,
               timeout: float = 15.0) -> LiveTables:
    """What every connected switch holds now, read through the daemon."""
    started = time.monotonic()
    live = LiveTables()
    connected = []
    for name, sw in sorted(enforced.status.get("switches", {}).items()):
        if sw.get("connected"):
            connected.append(name)
        else:
            live.unread[name] = "not connected"

    def read(name: str) -> tuple[str, dict[str, Any] | None, str]:
        try:
            return name, get_live_flows(api, name, timeout, token), ""
        except ApiError as exc:
            return name, None, str(exc)

    with ThreadPoolExecutor(WORKERS) as pool:
        for name, data, error in pool.map(read, connected):
            if data is None:
                live.unread[name] = error
                continue
            fs = flowset_from_json(data)
            live.flowsets[name] = fs
            live.unparsed[name] = list(data.get("unparsed", []))
            live.packets[name] = {flow_from_json(j).key: int(j.get("n_packets", 0))
                                  for j in data.get("flows", [])}
    live.read_s = time.monotonic() - started
    return live
