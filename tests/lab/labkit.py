"""What the lab tests share: the check that a lab left nothing of its prefix behind.
(Root, OVS and Mininet: the `lab` marker, checked by tests/conftest.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

from sdnctl.lab.names import bridges


def assert_nothing_left(prefix: str, interfaces: tuple[str, ...]) -> None:
    """No bridge, `mininet:` host shell or interface of the lab is left."""
    assert not [b for b in bridges() if b.startswith(prefix)]
    shells = subprocess.run(["pgrep", "-f", f"mininet:{prefix}"], capture_output=True, text=True)
    assert shells.stdout == "", f"host shells left: {shells.stdout}"
    assert not [i for i in interfaces if Path("/sys/class/net", i).exists()]
