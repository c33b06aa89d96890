"""The attacker agent: runs inside the hostile VM and sends what it is told to.

    python -m sdnctl.lab.attacks.hostile SCENE_JSON

It imports scapy once, prints {"ready": true}, then reads one JSON command per
line on stdin and answers one JSON line on stdout:

    {"op": "send", "attack": NAME, "marker": HEX, "seed": N, "repeat": R}
        build NAME's frames (frames.BUILDERS, frames6.BUILDERS6) and send each R times
    {"op": "flood", "attack": "packet-in-storm" | "fuzz" | "dhcp-starvation", "marker", "seed",
     "rate", "seconds"}
        send at `rate` frames/s for `seconds`
    {"op": "connect", "ip": IP, "port": P}   an allowed TCP connection, kept open
    {"op": "quit"}

Answers: {"sent": N, "refused": N, "seconds": S} (refused: the kernel would not
send it, e.g. a frame shorter than an Ethernet header), {"sport": P}, or
{"error": "..."}. Frames leave through an AF_PACKET socket on eth0 as built.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from random import Random

from sdnctl.lab.attacks import flood, frames, frames6  # scapy: imported once, before "ready"
from sdnctl.lab.attacks.scene import Scene

IFACE = "eth0"
TICK = 0.005  # seconds between pacing checks of a flood


class Sender:
    def __init__(self, iface: str = IFACE) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.sock.bind((iface, 0))
        self.sent = 0
        self.refused = 0

    def send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
            self.sent += 1
        except OSError:  # too short or too long for the device: the kernel says no
            self.refused += 1


def paced(stream: Iterator[bytes], rate: int, seconds: float) -> Iterator[bytes]:
    """Yield frames so that about `rate` per second go out, for `seconds`."""
    start = time.monotonic()
    done = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            return
        due = int(rate * elapsed) - done
        if due <= 0:
            time.sleep(TICK)
            continue
        for _ in range(due):
            yield next(stream)
        done += due


class Agent:
    def __init__(self, scene_json: str) -> None:
        self.scene = Scene.from_json(scene_json)
        self.conns: list[socket.socket] = []

    def handle(self, cmd: dict[str, object]) -> dict[str, object]:
        op = cmd.get("op")
        if op == "connect":
            sock = socket.create_connection((str(cmd["ip"]), int(str(cmd["port"]))), timeout=2)
            self.conns.append(sock)  # kept open: conntrack must keep knowing it
            return {"sport": sock.getsockname()[1]}
        if op in ("send", "flood"):
            return self._attack(cmd)
        return {"error": f"unknown op {op!r}"}

    def _attack(self, cmd: dict[str, object]) -> dict[str, object]:
        ctx = frames.Ctx(bytes.fromhex(str(cmd["marker"])), Random(int(str(cmd.get("seed", 0)))),
                         int(str(cmd.get("sport", 0))))
        name = str(cmd["attack"])
        sender = Sender()
        started = time.monotonic()
        if cmd["op"] == "send":
            built = {**frames.BUILDERS, **frames6.BUILDERS6}[name](self.scene, ctx)
            for _ in range(int(str(cmd.get("repeat", 1)))):
                for frame in built:
                    sender.send(frame)
        else:
            rate, seconds = int(str(cmd["rate"])), float(str(cmd["seconds"]))
            if name == "fuzz":
                stream = _cycle(flood.fuzz_pool(self.scene, ctx))
            elif name == "dhcp-starvation":
                stream = _storm(flood.dhcp_starvation_templates(self.scene, ctx))
            else:
                stream = _storm(flood.storm_templates(self.scene, ctx))
            started = time.monotonic()  # building the pool is not sending
            for frame in paced(stream, rate, seconds):
                sender.send(frame)
        took = time.monotonic() - started
        sender.sock.close()
        return {"sent": sender.sent, "refused": sender.refused, "seconds": round(took, 3)}


def _cycle(pool: list[bytes]) -> Iterator[bytes]:
    while True:
        yield from pool


def _storm(templates: list[flood.Template]) -> Iterator[bytes]:
    while True:
        for t in templates:
            if t.randomise_mac:
                yield flood.patch_source_mac(t.frame, flood.random_unicast_mac(os.urandom(6)))
            else:
                yield t.frame


def main(argv: list[str]) -> int:
    agent = Agent(argv[1])
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd.get("op") == "quit":
            break
        try:
            answer = agent.handle(cmd)
        except Exception as exc:  # report, keep serving: the runner decides what it means
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
    for sock in agent.conns:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
