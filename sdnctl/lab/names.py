"""Names, ports and datapath ids for a lab on a shared machine, chosen not to clash.

One ovs-vswitchd serves every lab, test and benchmark on the machine: a lab's bridges
and interfaces carry a name prefix that nothing else starts with, its daemon listens
on ports the kernel says are free, and its switches get datapath ids of their own
(the daemon finds VM ports in OVSDB by datapath id, machine-wide, so two labs of one
topology with the same dpids would confuse it).
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from pathlib import Path
from typing import Any

import yaml

from sdnctl.lab.ovs import bridges
from sdnctl.lab.plan import LabError

LOCALHOST = "127.0.0.1"
DPID_BITS = 16  # a topology's own dpids fit in this many bits; a lab's base sits above


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """`n` different free ports (the kernel may hand out one twice in a row)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def free_prefix(letter: str) -> str:
    """`letter` and two hex digits that start no bridge or interface on this machine.

    Three characters: the longest lab names (`spine1-eth10`) must stay within the
    kernel's 15.
    """
    taken = bridges() | set(os.listdir("/sys/class/net"))
    for _ in range(500):
        prefix = f"{letter}{random.randrange(256):02x}"
        if not any(name.startswith(prefix) for name in taken):
            return prefix
    raise LabError(f"no free name prefix starting with {letter!r}")


def unique_name(prefix: str = "sdt") -> str:
    """`prefix` and six random hex digits: unique on this machine, fits an interface name."""
    return prefix + secrets.token_hex(3)


def random_dpid_base(tag: int) -> int:
    """A block of 2**DPID_BITS datapath ids of its own: `tag` high, 20 random bits below."""
    return tag << 36 | secrets.randbits(20) << DPID_BITS


def rebase_dpid(dpid: int, base: int, bits: int = DPID_BITS) -> int:
    """The dpid moved into the block of 2**bits ids that starts at `base`: `base | dpid`.

    Both are checked, so that two bases give disjoint blocks: `base` must leave the low
    `bits` bits clear and `dpid` must fit in them. Without the check a large dpid
    would carry into the base's bits (adding) or merge with them (or-ing) and land in
    another lab's block.

    >>> hex(rebase_dpid(0x10, 0xBE7C << 32))
    '0xbe7c00000010'
    """
    low = (1 << bits) - 1
    if base & low:
        raise LabError(f"dpid base {base:#x} is not a multiple of 2**{bits}")
    if not 0 <= dpid <= low:
        raise LabError(f"dpid {dpid:#x} does not fit in {bits} bits below the base {base:#x}")
    return base | dpid


def rebase_dpids(topology: dict[str, Any], base: int, bits: int = DPID_BITS) -> dict[str, Any]:
    """A topology document (YAML-ready) whose every switch dpid is `rebase_dpid`-ed."""
    switches = {}
    for name, sw in (topology.get("switches") or {}).items():
        try:
            switches[name] = dict(sw, dpid=rebase_dpid(int(sw["dpid"]), base, bits))
        except LabError as exc:
            raise LabError(f"switch {name}: {exc}") from None
    return dict(topology, switches=switches)


def rebased_topology(source: Path, into: Path, tag: int) -> Path:
    """A copy of topology file `source` in folder `into` with every dpid moved into a
    random block of its own (`random_dpid_base(tag)`): a lab built from it has no twin
    in another lab of the same topology running on the machine."""
    doc = yaml.safe_load(Path(source).read_text())
    copy = Path(into) / Path(source).name
    copy.write_text(yaml.safe_dump(rebase_dpids(doc, random_dpid_base(tag)), sort_keys=False))
    return copy
