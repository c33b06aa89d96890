"""Read a switch's connection tracker: `ovs-appctl dpctl/dump-conntrack`.

OpenFlow 1.3 cannot read conntrack, so this asks the local ovs-vswitchd (or the
one whose control socket `target` names). A hypervisor that is not this machine
is read by running the same command there and passing its output as a file.
"""

from __future__ import annotations

import shutil
import subprocess


class ConntrackUnreadable(RuntimeError):
    pass


def dump_conntrack(target: str | None = None, timeout: float = 10.0) -> str:
    """The dump's text ("" when there is no datapath yet: nothing is tracked)."""
    if shutil.which("ovs-appctl") is None:
        raise ConntrackUnreadable("ovs-appctl not found: is Open vSwitch installed here?")
    cmd = ["ovs-appctl", *(["-t", target] if target else []), "dpctl/dump-conntrack"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        if "no datapaths exist" in res.stderr:
            return ""
        raise ConntrackUnreadable(f"{' '.join(cmd)}: {res.stderr.strip() or 'failed'}")
    return res.stdout
