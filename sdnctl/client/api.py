"""A small client for the daemon's status API (used by `sdnctl status`, `verify`, `plan`,
tests and the lab).

Standard library only, no os-ken: it runs in any process. When the daemon has a
token, pass it as `token=`; left out, $SDNCTL_API_TOKEN is used if set.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

DEFAULT_API = "127.0.0.1:8680"


class ApiError(RuntimeError):
    """The daemon did not answer, or answered with an error (`code`: the HTTP status)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def _url(api: str, path: str) -> str:
    base = api if api.startswith(("http://", "https://")) else f"http://{api}"
    return base.rstrip("/") + path


def _get(api: str, path: str, timeout: float, token: str | None = None) -> bytes:
    token = token if token is not None else os.environ.get("SDNCTL_API_TOKEN", "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(_url(api, path), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body: bytes = resp.read()
            return body
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            text = json.loads(text)["error"]
        raise ApiError(f"{_url(api, path)}: HTTP {exc.code}: {text}", exc.code) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(f"{_url(api, path)}: {exc}") from exc


def get_json(api: str, path: str, timeout: float = 2.0, token: str | None = None) -> Any:
    data = _get(api, path, timeout, token)
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ApiError(f"{_url(api, path)}: not JSON: {exc}") from exc


def get_status(api: str = DEFAULT_API, timeout: float = 2.0,
               token: str | None = None) -> dict[str, Any]:
    """GET /status: daemon, policy (with `last_refused`, `enforced_in_s`), topology,
    switches (with `last_update_s`, `packet_ins`), bindings, vms, unbound,
    bindings_ready, down_ports, unknown_ports, counters, events."""
    status: dict[str, Any] = get_json(api, "/status", timeout, token)
    return status


def get_flows(api: str, switch: str, timeout: float = 2.0,
              token: str | None = None) -> dict[str, Any]:
    """GET /flows/SWITCH: the FlowSet the daemon wants on SWITCH, as JSON."""
    flows: dict[str, Any] = get_json(api, f"/flows/{switch}", timeout, token)
    return flows


def get_live_flows(api: str, switch: str, timeout: float = 10.0,
                   token: str | None = None) -> dict[str, Any]:
    """GET /flows/SWITCH?source=switch: what SWITCH holds now, read from it, as IR JSON
    (plus `unparsed` entries and every flow's `n_packets`)."""
    flows: dict[str, Any] = get_json(api, f"/flows/{switch}?source=switch", timeout, token)
    return flows


def get_policy_text(api: str = DEFAULT_API, timeout: float = 2.0,
                    token: str | None = None) -> str:
    """GET /policy: the policy file the daemon enforces, as it was loaded."""
    return _get(api, "/policy", timeout, token).decode()


def get_topology_text(api: str = DEFAULT_API, timeout: float = 2.0,
                      token: str | None = None) -> str:
    """GET /topology: the topology file the daemon enforces, as it was loaded."""
    return _get(api, "/topology", timeout, token).decode()


def get_metrics(api: str = DEFAULT_API, timeout: float = 2.0, token: str | None = None) -> str:
    """GET /metrics: the Prometheus text."""
    return _get(api, "/metrics", timeout, token).decode()


def wait_programmed(api: str, switches: Iterable[str], timeout: float,
                    token: str | None = None) -> dict[str, Any]:
    """Poll until every named switch is connected and programmed; return that status.

    Raises TimeoutError naming the switches still waiting (and the daemon's last
    error) when `timeout` seconds pass first.
    """
    names = list(switches)
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    problem = "no answer from the daemon"
    while True:
        try:
            last = get_status(api, timeout=min(2.0, max(0.1, deadline - time.monotonic())),
                              token=token)
            sw = last.get("switches", {})
            waiting = [n for n in names if not (sw.get(n, {}).get("programmed"))]
            if not waiting:
                return last
            problem = f"not programmed yet: {', '.join(waiting)}"
        except ApiError as exc:
            problem = str(exc)
        if time.monotonic() >= deadline:
            errors = [e["message"] for e in (last or {}).get("events", []) if e["kind"] == "error"]
            hint = f"; last error: {errors[-1]}" if errors else ""
            raise TimeoutError(f"after {timeout:.0f} s, {problem}{hint}")
        time.sleep(0.1)


def wait_policy(api: str, sha256: str, timeout: float,
                token: str | None = None) -> dict[str, Any]:
    """Poll until the daemon enforces the policy file whose sha256 is `sha256` and every
    switch it changed has acknowledged it; return that status.

    Raises ValueError at once if that very file was refused (its problems in the
    message), TimeoutError when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    problem = "no answer from the daemon"
    while True:
        try:
            status = get_status(api, timeout=min(2.0, max(0.1, deadline - time.monotonic())),
                                token=token)
            policy = status.get("policy", {})
            if policy.get("sha256") == sha256 and policy.get("enforced_in_s") is not None:
                return status
            refused = policy.get("last_refused") or {}
            if sha256 in (refused.get("sha256") or {}).values():
                raise ValueError("refused: " + "; ".join(refused.get("problems", [])))
            problem = f"enforcing {str(policy.get('sha256'))[:12]}, not {sha256[:12]}"
        except ApiError as exc:
            problem = str(exc)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"after {timeout:.0f} s, {problem}")
        time.sleep(0.02)
