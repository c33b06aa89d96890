"""Capture what reaches the victims: tcpdump inside each victim's namespace.

Inbound only (`-Q in`): what the victim itself sends is not what the network
let through. A capture counts only once tcpdump says it is listening, and the
kernel's drop count is read back, so a lost frame cannot pass for a blocked one.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import struct
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sdnctl.lab.plan import HOST_INTF, LabError

if TYPE_CHECKING:
    from mininet.node import Node

READY_TIMEOUT = 5.0
SNAPLEN = 512  # enough for every header and the marker behind them


@dataclass
class Capture:
    vm: str
    proc: subprocess.Popen[bytes]
    path: Path


@dataclass(frozen=True, slots=True)
class Captured:
    vm: str
    frames: tuple[bytes, ...]
    kernel_dropped: int  # frames tcpdump's socket lost: must be 0 for a verdict to hold
    times: tuple[float, ...] = ()  # each frame's capture time (wall clock, time.time())


def start_captures(hosts: Mapping[str, Node], folder: Path, tag: str,
                   intf: str = HOST_INTF) -> dict[str, Capture]:
    """One tcpdump per host on its `intf`, all listening when this returns."""
    caps: dict[str, Capture] = {}
    try:
        for vm, host in hosts.items():
            path = folder / f"{tag}-{vm}.pcap"  # .pcap: Debian's tcpdump AppArmor profile
            proc = host.popen(
                # --immediate-mode: frames still buffered at SIGINT would be lost.
                ["tcpdump", "-i", intf, "-Q", "in", "-U", "--immediate-mode", "-n",
                 "-s", str(SNAPLEN), "-Z", "root", "-w", str(path)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            caps[vm] = Capture(vm, proc, path)
        _wait_listening(caps)
    except BaseException:
        for cap in caps.values():
            _stop(cap)
        raise
    return caps


def _wait_listening(caps: Mapping[str, Capture]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with selectors.DefaultSelector() as sel:
        for cap in caps.values():
            assert cap.proc.stderr is not None
            sel.register(cap.proc.stderr, selectors.EVENT_READ, cap)
        pending = set(caps)
        seen: dict[str, bytes] = {vm: b"" for vm in caps}
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LabError(f"tcpdump not listening after {READY_TIMEOUT:.0f} s in "
                               + ", ".join(sorted(pending)))
            for key, _ in sel.select(left):
                cap = key.data
                chunk = os.read(key.fd, 4096)
                seen[cap.vm] += chunk
                if b"listening on" in seen[cap.vm]:
                    pending.discard(cap.vm)
                    sel.unregister(key.fileobj)
                elif not chunk:
                    raise LabError(f"tcpdump in {cap.vm} failed: {seen[cap.vm].decode()!r}")


def stop_captures(caps: Mapping[str, Capture]) -> dict[str, Captured]:
    """Stop every capture (SIGINT by PID: tcpdump flushes) and read its frames."""
    for cap in caps.values():
        with contextlib.suppress(ProcessLookupError):
            cap.proc.send_signal(signal.SIGINT)
    out = {}
    for vm, cap in caps.items():
        err = _stop(cap)
        dropped = re.search(rb"(\d+) packets? dropped by kernel", err)
        records = read_pcap_timed(cap.path) if cap.path.exists() else ()
        with contextlib.suppress(OSError):
            cap.path.unlink()
        out[vm] = Captured(vm, tuple(f for _t, f in records),
                           int(dropped.group(1)) if dropped else -1,
                           tuple(t for t, _f in records))
    return out


def _stop(cap: Capture) -> bytes:
    try:
        _out, err = cap.proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        cap.proc.kill()
        _out, err = cap.proc.communicate()
    return err or b""


def read_pcap(path: Path) -> tuple[bytes, ...]:
    """The frames of a classic pcap file (what tcpdump -w writes), either byte order."""
    return tuple(frame for _t, frame in read_pcap_timed(path))


def read_pcap_timed(path: Path) -> tuple[tuple[float, bytes], ...]:
    """(capture time, frame) of each frame of a classic pcap file, either byte order,
    micro- or nanosecond timestamps."""
    data = path.read_bytes()
    if len(data) < 24:
        return ()
    magic = data[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    scale = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    records, pos = [], 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _wirelen = struct.unpack(order + "IIII", data[pos:pos + 16])
        pos += 16
        records.append((sec + frac * scale, data[pos:pos + caplen]))
        pos += caplen
    return tuple(records)
