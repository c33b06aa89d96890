"""Conntrack zone limits on the local ovs-vswitchd: `ovs-appctl dpctl/ct-set-limits`.

OVS 3.1 has no OpenFlow or OVSDB way to limit a zone (OVSDB's `CT_Zone` table
gains a `limit` column only in OVS 3.3), so the limits are set with
`ovs-appctl` on the machine the daemon runs on; checked working on the
userspace (netdev) datapath. `ZoneLimiter` applies what it is given from a
thread of its own (a compile never waits on a subprocess), latest wins, and
removes every limit it set when stopped.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Mapping

log = logging.getLogger("ctlimits")

APPCTL_TIMEOUT_S = 10.0
ZONES_PER_CALL = 200  # keeps a command line short


class ZoneLimiter:
    def __init__(self, target: str | None = None) -> None:
        self._target = target  # an ovs-vswitchd control socket; None: the local one
        self._applied: dict[int, int] = {}
        self._wanted: dict[int, int] | None = None
        self._cond = threading.Condition()
        self._stopping = False
        self.error: str | None = None  # the last failure, for /status
        self._thread = threading.Thread(target=self._run, name="ct-limits", daemon=True)
        self._thread.start()

    def submit(self, limits: Mapping[int, int]) -> None:
        """Limit exactly these zones (zone -> limit) from now on."""
        with self._cond:
            self._wanted = dict(limits)
            self._cond.notify()

    def wait_idle(self, timeout_s: float) -> bool:
        """Until what was submitted is applied (tests)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._wanted is None, timeout_s)

    def status(self) -> dict[str, object]:
        with self._cond:
            return {"zones": len(self._applied), "error": self.error}

    def stop(self) -> None:
        """Stop, and take back every limit set."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(APPCTL_TIMEOUT_S)
        if self._applied:
            self._call("dpctl/ct-del-limits", [_zones(list(self._applied))])

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted is not None or self._stopping)
                if self._stopping:
                    return
                wanted = self._wanted
                assert wanted is not None
            self._apply(wanted)
            with self._cond:
                if self._wanted is wanted:
                    self._wanted = None
                self._cond.notify_all()

    def _apply(self, wanted: dict[int, int]) -> None:
        gone = sorted(set(self._applied) - set(wanted))
        changed = sorted(z for z, n in wanted.items() if self._applied.get(z) != n)
        ok = True
        for i in range(0, len(gone), ZONES_PER_CALL):
            chunk = gone[i:i + ZONES_PER_CALL]
            if self._call("dpctl/ct-del-limits", [_zones(chunk)]):
                with self._cond:
                    for zone in chunk:
                        del self._applied[zone]
            else:
                ok = False
        for i in range(0, len(changed), ZONES_PER_CALL):
            chunk = changed[i:i + ZONES_PER_CALL]
            if self._call("dpctl/ct-set-limits", [f"zone={z},limit={wanted[z]}" for z in chunk]):
                with self._cond:
                    self._applied.update((z, wanted[z]) for z in chunk)
            else:
                ok = False
        if ok:
            self.error = None

    def _call(self, command: str, args: list[str]) -> bool:
        if shutil.which("ovs-appctl") is None:
            self.error = "ovs-appctl not found: connection limits not applied"
            return False
        cmd = ["ovs-appctl", *(["-t", self._target] if self._target else []), command, *args]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=APPCTL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.error = f"{command}: {exc}"
        else:
            if res.returncode == 0:
                return True
            self.error = f"{command}: {res.stderr.strip() or 'failed'}"
        log.warning("connection limits: %s", self.error)
        return False


def _zones(zones: list[int]) -> str:
    return "zone=" + ",".join(map(str, zones))
