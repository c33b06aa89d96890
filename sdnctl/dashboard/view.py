"""One consistent snapshot of what the daemon knows, taken under its lock.

Everything the dashboard computes (matrix, explain, edits) runs on a `View`, outside
the lock: the controller thread is never held up by a simulation. The objects it
refers to (Policy, Topology, Bindings, FlowSet) are immutable, so a reference is
as good as a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sdnctl.bindings import Bindings
from sdnctl.flows import FlowSet
from sdnctl.policy.model import Policy
from sdnctl.topology.model import PortRef, Topology

if TYPE_CHECKING:  # the state module pulls in os-ken; the dashboard must not
    from sdnctl.live.state import ControllerState, EnforcedEdit

# Where a switch's "live" FlowSet comes from (View.live_from).
INSTALLED = "installed"  # what the daemon knows it holds (read on connect, then acked updates)
STALE = "installed, disconnected"  # as it held when it was last connected
INTENT = "intent (not read yet)"  # nothing known: intent stands in, as `sdnctl verify` does


@dataclass(frozen=True, slots=True)
class View:
    policy: Policy
    policy_sha: str
    topology: Topology
    bindings: Bindings
    down_ports: frozenset[PortRef]
    intent: dict[str, FlowSet]  # switch -> desired FlowSet (switches that have one)
    live: dict[str, FlowSet]  # switch -> installed FlowSet, else intent
    live_from: dict[str, str]  # switch -> INSTALLED | STALE | INTENT
    switches: dict[str, dict[str, object]]  # switch -> SwitchState.status()
    status: dict[str, object]  # the /status document's policy, daemon and binding parts
    edits: tuple[EnforcedEdit, ...]  # oldest first
    events: tuple[dict[str, object], ...]  # oldest first
    answers: dict[str, object]  # the controller path's answers (DhcpResponder.snapshot)

    @property
    def live_is_intent(self) -> bool:
        """Does every switch (known to) hold exactly its intent? Then one simulation serves."""
        return all(self.live.get(n) is fs or self.live.get(n) == fs
                   for n, fs in self.intent.items())


def take_view(state: ControllerState) -> View:
    with state.lock:
        intent: dict[str, FlowSet] = {}
        live: dict[str, FlowSet] = {}
        live_from: dict[str, str] = {}
        for name, sw in state.switches.items():
            if sw.desired is not None:
                intent[name] = sw.desired
            if sw.installed is not None:
                live[name] = sw.installed
                live_from[name] = INSTALLED if sw.connected else STALE
            elif sw.desired is not None:
                live[name] = sw.desired
                live_from[name] = INTENT
        info = state.policy_info
        status: dict[str, object] = {
            "policy": dict(info.as_json(), last_refused=state.history.last_refused),
            "topology": state.topology_info.as_json() if state.topology_info else None,
            "daemon": dict(state.daemon.info, uptime_s=state.since_start()),
            "bindings_ready": state.bindings_ready,
            "unknown_ports": [p.as_json() for p in state.snapshot.problems],
            "strangers": [f"{dpid:#x}" for dpid in sorted(state.strangers)],
        }
        return View(
            policy=state.policy, policy_sha=info.sha256, topology=state.topology,
            bindings=state.snapshot.bindings, down_ports=state.down_ports,
            intent=intent, live=live, live_from=live_from,
            switches={name: sw.status() for name, sw in sorted(state.switches.items())},
            status=status, edits=tuple(state.history.edits),
            events=tuple(dict(e) for e in state.history.events),
            answers=state.dhcp.snapshot(),  # its own lock: a copy, taken with the rest
        )
