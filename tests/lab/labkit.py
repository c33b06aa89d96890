"""What the lab tests share: skip without root/OVS, unique name prefixes, and the
check that a lab left nothing of its prefix behind."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest


def skip_without_ovs(*tools: str) -> None:
    """Skip unless root, Open vSwitch (running) and mnexec, plus `tools`, are here."""
    if os.geteuid() != 0 or shutil.which("ovs-vsctl") is None or shutil.which("mnexec") is None:
        pytest.skip("needs root, Open vSwitch and mnexec")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool}")
    if subprocess.run(["ovs-vsctl", "-t", "2", "show"], capture_output=True).returncode:
        pytest.skip("Open vSwitch is not running")


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
