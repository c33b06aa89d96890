"""The continuous-probe agent that runs inside a lab host: `echo` answers, `send` streams.

Run as a script inside a Mininet host (`python streamer.py send ...`); it imports
the standard library and `sdnctl.lab.icmp` (itself the standard library and one
core module), so it starts fast.

    echo --port 7000 [--proto tcp]
        echoes every UDP datagram back to its sender unchanged; prints "ready".
        With tcp: accepts every connection on the port (and echoes what it sends).
    send --ip 10.5.20.12 --proto udp --port 7000 --interval 0.01 [--fresh]
        sends one probe every `interval` seconds, each carrying a sequence number,
        until SIGTERM/SIGINT; then waits `--linger` seconds for late answers and
        prints one JSON object: {"interval", "sent": [[seq, t], ...],
        "recv": [[seq, t], ...]} with t = time.monotonic() of the send / the answer.
    send --proto icmp ...
        the same with ICMP echo requests, answered by the peer's kernel.
    send --proto tcp --port 8080 --fresh ...
        a new TCP connection per probe: answered when the handshake completes
        (the SYN got there and the SYN-ACK came back); then reset, so that no
        TIME_WAIT holds the source port.

`--fresh` makes every probe a new connection for conntrack: a new UDP or TCP socket
on the next source port of `--sports` (not the kernel's pick, which may repeat a
recent port whose conntrack entry still lives) or a new ICMP identifier per probe.
TCP probes are always fresh (a lost segment of one long connection is resent, not
lost: it would show as a delay).
That is how to see a rule take effect: packets of an established connection pass
whatever the rules say (`+est`), so a stream that reuses one 5-tuple would never
show a newly denied flow stop. Without `--fresh` the stream is one long-lived connection, as a real
application's would be.

Clocks: a Mininet host is a network namespace, not a time namespace, so
`time.monotonic()` here is the same clock as the experiment driver's; the driver
compares its own timestamps (a file save, a link cut) with these directly.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

from sdnctl.lab.icmp import ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, icmp_echo

PROBE = struct.Struct("!IId")  # token, sequence number, send time
FRESH_SOCKET_LIFE_S = 0.9  # a fresh probe's socket waits this long for its answer
# (under TCP's first retransmission, 1 s: a handshake that needed one is lost)


def _stop_flag() -> list[int]:
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.append(signum))
    return stop


# ----------------------------------------------------------------------- echo


def echo(port: int, proto: str = "udp") -> int:
    if proto == "tcp":
        return echo_tcp(port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(0.2)
    stop = _stop_flag()
    print("ready", flush=True)
    while not stop:
        try:
            data, addr = sock.recvfrom(2048)
        except (TimeoutError, InterruptedError):
            continue
        # OSError: no route back right now; the sender counts it lost, as it should.
        with contextlib.suppress(OSError):
            sock.sendto(data, addr)
    return 0


def echo_tcp(port: int) -> int:
    """Accept every connection; echo what arrives; close what the peer closes or resets."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1024)
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    stop = _stop_flag()
    print("ready", flush=True)
    while not stop:
        for key, _ in sel.select(0.2):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if sock is listener:
                with contextlib.suppress(BlockingIOError, InterruptedError, OSError):
                    conn, _addr = listener.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""  # reset by the prober: the usual end of a probe
            if data:
                with contextlib.suppress(OSError):
                    sock.send(data)
            else:
                sel.unregister(sock)
                sock.close()
    return 0


# ----------------------------------------------------------------------- send


class _Sender:
    """Sends probes on a fixed schedule and records what came back."""

    def __init__(self, ip: str, proto: str, port: int, fresh: bool, sports: range) -> None:
        self.ip, self.proto, self.port, self.fresh = ip, proto, port, fresh
        self.sports, self.next_sport = sports, 0
        self.token = int.from_bytes(os.urandom(4), "big")
        self.sel = selectors.DefaultSelector()
        self.sent: list[tuple[int, float]] = []
        self.recv: dict[int, float] = {}
        self.fresh_socks: collections.deque[tuple[float, socket.socket]] = collections.deque()
        self.icmp_ident = self.token & 0xFFFF
        self.sock = self._new_socket() if not fresh or proto == "icmp" else None
        self.connecting: dict[int, int] = {}  # TCP: socket fd -> the probe's seq

    def _new_socket(self) -> socket.socket:
        if self.proto == "tcp":
            return self._connect()
        if self.proto == "icmp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if self.fresh:
                self._bind_next(sock)
            sock.connect((self.ip, self.port))
        sock.setblocking(False)
        self.sel.register(sock, selectors.EVENT_READ)
        return sock

    def _connect(self) -> socket.socket:
        """A TCP probe: a non-blocking connect; writable = the handshake is done."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Reset on close, not FIN: no TIME_WAIT keeps the source port from the next round.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._bind_next(sock)
        sock.setblocking(False)
        sock.connect_ex((self.ip, self.port))
        self.sel.register(sock, selectors.EVENT_WRITE)
        return sock

    def _bind_next(self, sock: socket.socket) -> None:
        """The next source port of our range: a port the kernel picked could be one an
        earlier probe used, whose conntrack entry (+est) would let it through."""
        for _ in range(len(self.sports)):
            port = self.sports[self.next_sport % len(self.sports)]
            self.next_sport += 1
            try:
                sock.bind(("0.0.0.0", port))
                return
            except OSError:
                continue  # in use by some other socket: the next one
        raise OSError("no free source port in the fresh range")

    def send(self, seq: int) -> None:
        now = time.monotonic()
        payload = PROBE.pack(self.token, seq, now)
        try:
            if self.proto == "icmp":
                assert self.sock is not None
                # A new identifier per probe is a new ICMP "connection" for conntrack.
                ident = (self.icmp_ident + seq) & 0xFFFF if self.fresh else self.icmp_ident
                self.sock.sendto(icmp_echo(ICMP_ECHO_REQUEST, ident, seq, payload), (self.ip, 0))
            elif self.proto == "tcp":
                sock = self._new_socket()
                self.fresh_socks.append((now, sock))
                self.connecting[sock.fileno()] = seq
            elif self.fresh:
                sock = self._new_socket()
                self.fresh_socks.append((now, sock))
                sock.send(payload)
            else:
                assert self.sock is not None
                self.sock.send(payload)
        except OSError:
            pass  # e.g. unreachable while a route is missing: recorded as lost
        self.sent.append((seq, now))
        # What arrived while this process was not running (a loaded machine) counts
        # before the sockets it arrived on expire.
        self.receive(0.0)
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self.fresh_socks and now - self.fresh_socks[0][0] > FRESH_SOCKET_LIFE_S:
            _t, sock = self.fresh_socks.popleft()
            self.connecting.pop(sock.fileno(), None)
            with contextlib.suppress(KeyError, ValueError):  # a TCP probe may be done
                self.sel.unregister(sock)
            sock.close()

    def receive(self, timeout: float) -> None:
        for key, _ in self.sel.select(max(0.0, timeout)):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if self.proto == "tcp":
                self._connected(sock)
                continue
            while True:
                try:
                    data = sock.recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break  # ICMP errors surface on a connected UDP socket: not an answer
                self._record(data)

    def _connected(self, sock: socket.socket) -> None:
        """A TCP probe's socket became writable: answered unless the connect failed."""
        self.sel.unregister(sock)
        seq = self.connecting.pop(sock.fileno(), None)
        if seq is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            self.recv.setdefault(seq, time.monotonic())
        sock.close()  # a reset (SO_LINGER 0); _expire closes it again, harmlessly

    def _record(self, data: bytes) -> None:
        if self.proto == "icmp":
            ihl = (data[0] & 0x0F) * 4 if data else 0
            if len(data) < ihl + 8 + PROBE.size or data[ihl] != ICMP_ECHO_REPLY:
                return
            data = data[ihl + 8 :]
        if len(data) < PROBE.size:
            return
        token, seq, _t = PROBE.unpack_from(data)
        if token == self.token and seq not in self.recv:
            self.recv[seq] = time.monotonic()

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.sel.close()


def send(ip: str, proto: str, port: int, interval: float, fresh: bool, linger: float,
         duration: float | None, sports: range) -> int:
    stop = _stop_flag()
    sender = _Sender(ip, proto, port, fresh, sports)
    print("ready", flush=True)
    start = time.monotonic()
    seq = 0
    next_at = start
    while not stop and (duration is None or time.monotonic() - start < duration):
        now = time.monotonic()
        if now >= next_at:
            sender.send(seq)
            seq += 1
            # A fixed schedule, not sleep(interval): a late probe does not shift the rest.
            next_at += interval
            if next_at < now:
                next_at = now + interval
        sender.receive(next_at - time.monotonic())
    end = time.monotonic() + linger
    while time.monotonic() < end:
        sender.receive(end - time.monotonic())
    sender.close()
    json.dump({"interval": interval, "sent": sender.sent,
               "recv": sorted(sender.recv.items())}, sys.stdout)
    print(flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamer.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--proto", choices=["udp", "tcp"], default="udp")
    s = sub.add_parser("send")
    s.add_argument("--ip", required=True)
    s.add_argument("--proto", choices=["udp", "icmp", "tcp"], default="udp")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--interval", type=float, default=0.01)
    s.add_argument("--fresh", action="store_true", help="a new connection per probe")
    s.add_argument("--linger", type=float, default=0.5, help="wait for late answers")
    s.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    s.add_argument("--sports", default="20000-29999",
                   help="source ports a --fresh UDP stream cycles through (LO-HI)")
    args = parser.parse_args(argv)
    if args.command == "echo":
        return echo(args.port, args.proto)
    lo, _, hi = args.sports.partition("-")
    fresh = args.fresh or args.proto == "tcp"
    return send(args.ip, args.proto, args.port, args.interval, fresh, args.linger,
                args.duration, range(int(lo), int(hi or lo) + 1))


if __name__ == "__main__":
    sys.exit(main())
