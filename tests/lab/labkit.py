"""What the lab tests share: unique name prefixes, and the check that a lab left
nothing of its prefix behind. (Root, OVS and Mininet: the `lab` marker, checked by
tests/conftest.py.)"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path


def bridges() -> set[str]:
    out = subprocess.run(["ovs-vsctl", "list-br"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def unique_prefix(letter: str) -> str:
    """Three characters, `letter` first: the longest names (`spine1-eth10`) must stay
    within 15, and no bridge on the machine may start with it."""
    taken = bridges()
    for _ in range(200):
        prefix = f"{letter}{random.randrange(256):02x}"
        if not any(b.startswith(prefix) for b in taken):
            return prefix
    raise AssertionError("no free prefix")


def assert_nothing_left(prefix: str, interfaces: tuple[str, ...]) -> None:
    """No bridge, `mininet:` host shell or interface of the lab is left."""
    assert not [b for b in bridges() if b.startswith(prefix)]
    shells = subprocess.run(["pgrep", "-f", f"mininet:{prefix}"], capture_output=True, text=True)
    assert shells.stdout == "", f"host shells left: {shells.stdout}"
    assert not [i for i in interfaces if Path("/sys/class/net", i).exists()]
