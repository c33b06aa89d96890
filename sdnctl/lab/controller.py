"""The controller daemon in a lab: its command line, and the wait until it has programmed
every switch of the lab. (Started and stopped by `LabSession.spawn`.)"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from sdnctl.lab.plan import LabError, LabPlan

# How long a lab waits for the daemon to bind every VM and program every switch. It
# takes seconds (2.8 s for the default lab) on an idle machine, many times that on a
# shared 2-core one running other labs; the wait costs time only when something is
# broken, while giving up too early reports a healthy lab as broken. 90 s is what the
# largest lab (the benchmarks' leaf-pair nets) needed; one figure for every lab.
PROGRAM_TIMEOUT = 90.0


def daemon_command(policy: Path, topology: Path, listen: str, api: str) -> list[str]:
    """`sdnctl run` with the venv's interpreter, so the lab needs no PATH setup."""
    return [
        sys.executable, "-c", "import sys; from sdnctl.cli import main; sys.exit(main())",
        "run", "-p", str(policy), "-t", str(topology), "--listen", listen, "--api", api,
    ]


def plugged(plan: LabPlan, vms: Collection[str] | None = None) -> dict[str, str]:
    """VM -> "switch:port" as the lab plugged them (only `vms`, when given)."""
    return {h.vm: f"{h.switch}:{h.port}" for h in plan.hosts if vms is None or h.vm in vms}


def wait_until_programmed(
    api: str,
    plan: LabPlan,
    daemon: subprocess.Popen[bytes],
    timeout: float = PROGRAM_TIMEOUT,
    vms: Collection[str] | None = None,
) -> str | None:
    """None once the daemon has bound every VM (or those in `vms`) and programmed
    every switch of `plan`.

    Otherwise, at `timeout`, what is still missing. Switches reported programmed
    before the daemon saw a VM's binding would drop that VM's traffic, and the lab
    would blame the policy: hence the bindings. Polls through
    client.api.wait_programmed in short slices so that a daemon that died is noticed
    at once (LabError) rather than after the whole timeout.
    """
    from sdnctl.client.api import wait_programmed

    switches = sorted(plan.bridges)
    bindings = plugged(plan, vms)
    deadline = time.monotonic() + timeout
    while True:
        if daemon.poll() is not None:
            raise LabError(f"the controller daemon exited with code {daemon.returncode}")
        left = deadline - time.monotonic()
        try:
            status = wait_programmed(api, switches, timeout=max(0.1, min(1.0, left)))
        except TimeoutError as exc:
            problem = str(exc).partition(", ")[2] or str(exc)
        else:
            unbound = _unbound(status, bindings)
            if not unbound:
                return None
            problem = f"VMs not bound as plugged: {unbound}"
            time.sleep(0.1)
        if left <= 1.0:  # that was the last slice
            return f"after {timeout:.0f} s: {problem}"


def _unbound(status: Mapping[str, Any], bindings: Mapping[str, str]) -> str:
    """The VMs the daemon has not bound where the lab plugged them, with its reasons."""
    live = status.get("bindings", {})
    why = {p.get("vm"): p.get("reason") for p in status.get("unknown_ports", [])
           if isinstance(p, dict)}
    return ", ".join(
        f"{vm} at {where}" + (f" ({why[vm]})" if why.get(vm) else f" (daemon: {live.get(vm)})")
        for vm, where in bindings.items()
        if live.get(vm) != where
    )
