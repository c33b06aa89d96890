"""Mirror start/stop for the dashboard: the API's POST /mirrors/start and /mirrors/stop.

The same machinery as `sdnctl mirror start|stop` (sdnctl/southbound/mirror.py), run by
the daemon on its own OVSDB with the policy it enforces, so the same refusals hold:
a capture end another tenant could read is refused (403), as the command refuses it
(exit 2). A request names `vm`, and for start exactly one of `to` (an existing port
on the VM's bridge) or `netns` (a namespace, made if missing, with a veth into it),
and `direction` (in, out or both; default both). The daemon must run on the VM's
hypervisor, as the command must. What the API's gate lets through (the token, or
Host and Origin on loopback) is all the authorisation there is, as for every route.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sdnctl.api import MirrorRunner

if TYPE_CHECKING:
    from sdnctl.live.state import ControllerState

START_KEYS = {"vm", "to", "netns", "direction"}


class BadRequest(ValueError):
    pass


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise BadRequest(f"{key} must be a name (a non-empty string up to 64 characters)")
    return value


def mirror_runner(state: ControllerState, ovsdb: str) -> MirrorRunner:
    """The API's mirror commands, against `ovsdb` and the policy `state` enforces.
    The mirror machinery (pyroute2, the OVSDB IDL) is imported on the first command,
    not at the daemon's start-up."""

    def run(action: str, body: dict[str, Any]) -> tuple[str, dict[str, object]]:
        from sdnctl.southbound.mirror import Capture, Direction, start_mirror, stop_mirrors
        from sdnctl.southbound.vmlinks import Refused, WireError

        with state.lock:
            policy, topology = state.policy, state.topology
        try:
            unknown = set(body) - (START_KEYS if action == "start" else {"vm"})
            if unknown:
                raise BadRequest(f"unknown key(s) {', '.join(sorted(unknown))}")
            vm = _text(body, "vm")
            if vm is None:
                raise BadRequest("vm is required")
            if action == "start":
                port, netns = _text(body, "to"), _text(body, "netns")
                if (port is None) == (netns is None):
                    raise BadRequest("give exactly one of to (a port) or netns")
                direction = _text(body, "direction") or "both"
                if direction not in {d.value for d in Direction}:
                    raise BadRequest("direction must be in, out or both")
                outcome = start_mirror(policy, topology, vm, Capture(port, netns),
                                       Direction(direction), ovsdb)
            else:
                outcome = stop_mirrors(vm, ovsdb)
        except BadRequest as exc:
            return "400 Bad Request", {"error": str(exc)}
        except Refused as exc:
            return "403 Forbidden", {"error": str(exc)}
        except WireError as exc:
            return "503 Service Unavailable", {"error": str(exc)}
        return "200 OK", {"summary": outcome.summary, "changes": outcome.changes,
                          "notes": outcome.notes}

    return run
