"""The probe agent that runs inside each lab host: `serve` answers, `probe` asks.

Run as a script inside a Mininet host (`python agent.py serve ...`); it imports only
the standard library and `sdnctl.lab.icmp` (itself the standard library and one
core module), so it starts fast.

Every answer names the VM that gave it, and `probe` counts a probe as reached only
when the intended VM answered. Two tenants may reuse an address (DESIGN.md §2), so
"something answered at 10.0.1.11" is not "rf1 answered": without the name a probe
to one tenant's VM could be answered by the other tenant's twin and look like a leak.

    serve --name web1 --tcp 22,80 --udp 53
        listens on every TCP port (sends its name on accept), echoes UDP with its
        name appended, answers ICMP echo itself (the host's kernel echo is switched
        off by the lab) with its name appended; prints "ready" once listening.
        All of it in IPv4 and IPv6 (ICMPv6 echo likewise), whichever the host has.
    probe --timeout 1 --retries 1 '[{"dst": "app1", "ip": "10.1.20.11",
                                     "service": "tcp/8080"}, ...]'
        runs every probe concurrently, retries the ones that failed, prints one JSON
        list: [{"dst", "service", "reached", "detail", "tries"}, ...]. An "ip" with a
        colon is an IPv6 probe (ICMPv6 echo for "icmp").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import random
import signal
import socket
import struct
import sys
from dataclasses import asdict, dataclass
from typing import cast

from sdnctl.lab.icmp import (
    ICMP6_ECHO_REPLY,
    ICMP6_ECHO_REQUEST,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    icmp_echo,
)

TOKEN_LEN = 8  # random bytes that tie an answer to its question
BANNER_MAX = 64  # an agent's name fits in this many bytes


# ---------------------------------------------------------------- wire helpers


def parse_icmp_echo(packet: bytes) -> tuple[str, str, int, int, int, bytes] | None:
    """(src ip, dst ip, type, id, seq, payload) of an IPv4 ICMP echo, else None."""
    if len(packet) < 20:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8:
        return None
    src = socket.inet_ntoa(packet[12:16])
    dst = socket.inet_ntoa(packet[16:20])
    kind, _code, _csum, ident, seq = struct.unpack("!BBHHH", packet[ihl : ihl + 8])
    if kind not in (ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY):
        return None
    return src, dst, kind, ident, seq, packet[ihl + 8 :]


# ---------------------------------------------------------------------- serve


class _UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data[:TOKEN_LEN] + self.name, addr)


def parse_icmp6_echo(message: bytes) -> tuple[int, int, int, bytes] | None:
    """(type, id, seq, payload) of an ICMPv6 echo message (a raw ICMPv6 socket gets
    no IPv6 header), else None."""
    if len(message) < 8:
        return None
    kind, _code, _csum, ident, seq = struct.unpack("!BBHHH", message[:8])
    if kind not in (ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY):
        return None
    return kind, ident, seq, message[8:]


def icmp6_echo(kind: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMPv6 echo message; the kernel fills in the checksum (raw ICMPv6 sockets
    always do, RFC 3542)."""
    return struct.pack("!BBHHH", kind, 0, 0, ident, seq & 0xFFFF) + payload


def _answer_pings6(sock: socket.socket, name: bytes) -> None:
    """_answer_pings for ICMPv6."""
    try:
        message, addr = sock.recvfrom(65535)
    except BlockingIOError:
        return
    echo = parse_icmp6_echo(message)
    if echo is None or echo[0] != ICMP6_ECHO_REQUEST:
        return
    _kind, ident, seq, payload = echo
    with contextlib.suppress(OSError):
        sock.sendto(icmp6_echo(ICMP6_ECHO_REPLY, ident, seq, payload[:TOKEN_LEN] + name),
                    addr[:2])


def _answer_pings(sock: socket.socket, name: bytes) -> None:
    """Reply to every echo request that reaches this host, naming ourselves."""
    try:
        packet, _addr = sock.recvfrom(65535)
    except BlockingIOError:
        return
    echo = parse_icmp_echo(packet)
    if echo is None:
        return
    src, _dst, kind, ident, seq, payload = echo
    if kind != ICMP_ECHO_REQUEST:
        return
    # OSError: e.g. no route back; the asker times out, as it should.
    with contextlib.suppress(OSError):
        sock.sendto(icmp_echo(ICMP_ECHO_REPLY, ident, seq, payload[:TOKEN_LEN] + name), (src, 0))


def _udp6(port: int) -> socket.socket:
    """A UDP socket on [::]:port for IPv6 only (the IPv4 one has 0.0.0.0:port)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind(("::", port))
    return sock


async def serve(name: str, tcp_ports: list[int], udp_ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    banner = name.encode()[:BANNER_MAX]

    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(banner)
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    # Both families, whether or not the host has IPv6 yet: binding "::" needs no
    # address, and the lab turns IPv6 on after the servers start.
    servers = [
        await asyncio.start_server(greet, host, port, reuse_address=True)
        for port in tcp_ports
        for host in ("0.0.0.0", "::")
    ]
    for port in udp_ports:
        await loop.create_datagram_endpoint(lambda: _UdpEcho(banner), local_addr=("0.0.0.0", port))
        await loop.create_datagram_endpoint(lambda: _UdpEcho(banner), sock=_udp6(port))
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    icmp.setblocking(False)
    loop.add_reader(icmp.fileno(), _answer_pings, icmp, banner)
    icmp6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    icmp6.setblocking(False)
    loop.add_reader(icmp6.fileno(), _answer_pings6, icmp6, banner)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    icmp.close()
    icmp6.close()


# ---------------------------------------------------------------------- probe


@dataclass(slots=True)
class Outcome:
    dst: str
    service: str
    reached: bool
    detail: str
    tries: int
    family: int = 4  # 6: the probe went to an IPv6 address


async def _probe_tcp(ip: str, port: int, timeout: float) -> tuple[bool, str, str]:
    """(reached, detail, responder). Reached = the handshake completed."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except TimeoutError:
        return False, "timeout", ""
    except ConnectionRefusedError:
        # The SYN got to a TCP stack that answered: traffic passed both ways. The
        # lab listens on every probe port, so this means a missing server, and it
        # must show as reached (loud) rather than hide a leak as "not reached".
        return True, "refused", ""
    except OSError as exc:
        return False, os.strerror(exc.errno) if exc.errno else str(exc), ""
    try:
        banner = await asyncio.wait_for(reader.read(BANNER_MAX), timeout)
    except (TimeoutError, OSError):
        banner = b""
    finally:
        writer.close()
    if not banner:
        return True, "connected, no banner", ""
    return True, "connected", banner.decode(errors="replace")


async def _probe_udp(ip: str, port: int, timeout: float) -> tuple[bool, str, str]:
    """(reached, detail, responder). Reached = our echo came back."""
    loop = asyncio.get_running_loop()
    token = os.urandom(TOKEN_LEN)
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect((ip, port))
        await loop.sock_sendall(sock, token)
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return False, "timeout", ""
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
            except TimeoutError:
                return False, "timeout", ""
            if data[:TOKEN_LEN] == token:
                return True, "echoed", data[TOKEN_LEN:].decode(errors="replace")
    except ConnectionRefusedError:
        return True, "port unreachable", ""  # the datagram got there; see _probe_tcp
    except OSError as exc:
        return False, os.strerror(exc.errno) if exc.errno else str(exc), ""
    finally:
        sock.close()


class _Pinger:
    """One raw ICMP socket (and one ICMPv6) shared by every ping of this agent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        self.sock6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        self.sock6.setblocking(False)
        self.ident = random.randrange(1, 0x10000)
        self.seq = 0
        self.waiting: dict[tuple[str, int], tuple[bytes, asyncio.Future[str]]] = {}
        loop = asyncio.get_running_loop()
        loop.add_reader(self.sock.fileno(), self._receive)
        loop.add_reader(self.sock6.fileno(), self._receive6)

    def _receive6(self) -> None:
        try:
            message, addr = self.sock6.recvfrom(65535)
        except BlockingIOError:
            return
        echo = parse_icmp6_echo(message)
        if echo is None:
            return
        kind, ident, seq, payload = echo
        if kind == ICMP6_ECHO_REPLY and ident == self.ident:
            self._answered((str(ipaddress.IPv6Address(addr[0].split("%")[0])), seq), payload)

    def _answered(self, key: tuple[str, int], payload: bytes) -> None:
        entry = self.waiting.get(key)
        if entry and payload[:TOKEN_LEN] == entry[0] and not entry[1].done():
            entry[1].set_result(payload[TOKEN_LEN:].decode(errors="replace"))

    def _receive(self) -> None:
        try:
            packet, _addr = self.sock.recvfrom(65535)
        except BlockingIOError:
            return
        echo = parse_icmp_echo(packet)
        if echo is None:
            return
        src, _dst, kind, ident, seq, payload = echo
        if kind != ICMP_ECHO_REPLY or ident != self.ident:
            return
        self._answered((src, seq), payload)

    async def ping(self, ip: str, timeout: float) -> tuple[bool, str, str]:
        loop = asyncio.get_running_loop()
        self.seq = (self.seq + 1) & 0xFFFF
        v6 = ":" in ip
        if v6:
            ip = str(ipaddress.IPv6Address(ip))  # the form replies are looked up by
        key, token = (ip, self.seq), os.urandom(TOKEN_LEN)
        future: asyncio.Future[str] = loop.create_future()
        self.waiting[key] = (token, future)
        try:
            if v6:
                self.sock6.sendto(icmp6_echo(ICMP6_ECHO_REQUEST, self.ident, self.seq, token),
                                  (ip, 0))
            else:
                self.sock.sendto(icmp_echo(ICMP_ECHO_REQUEST, self.ident, self.seq, token),
                                 (ip, 0))
            responder = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False, "timeout", ""
        except OSError as exc:
            return False, os.strerror(exc.errno) if exc.errno else str(exc), ""
        finally:
            del self.waiting[key]
        return True, "echo reply", responder


async def _attempt(
    target: dict[str, str], timeout: float, pinger: _Pinger
) -> tuple[bool, str, str]:
    proto, _, port = target["service"].partition("/")
    if proto == "tcp":
        return await _probe_tcp(target["ip"], int(port), timeout)
    if proto == "udp":
        return await _probe_udp(target["ip"], int(port), timeout)
    return await pinger.ping(target["ip"], timeout)


async def _probe_one(
    target: dict[str, str], timeout: float, retries: int, pinger: _Pinger
) -> Outcome:
    detail = ""
    family = 6 if ":" in target["ip"] else 4
    for tries in range(1, retries + 2):
        reached, detail, responder = await _attempt(target, timeout, pinger)
        if reached and responder and responder != target["dst"]:
            # Someone else holds that address (another tenant's twin, or ourselves):
            # that is not the VM this probe asks about.
            reached, detail = False, f"answered by {responder}"
        if reached:
            # A probe that got through once counts as reached, whatever the other
            # tries said: retries only ever forgive a lost first packet.
            return Outcome(target["dst"], target["service"], True, detail, tries, family)
    return Outcome(target["dst"], target["service"], False, detail, retries + 1, family)


async def probe(targets: list[dict[str, str]], timeout: float, retries: int) -> list[Outcome]:
    for target in targets:
        proto, _, port = target["service"].partition("/")
        if not (proto == "icmp" and not port or proto in ("tcp", "udp") and port.isdigit()):
            raise SystemExit(f"agent: cannot probe service {target['service']!r}")
    pinger = _Pinger()
    jobs = [_probe_one(target, timeout, retries, pinger) for target in targets]
    return list(await asyncio.gather(*jobs))


# ----------------------------------------------------------------------- main


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--tcp", type=_ports, default=[])
    s.add_argument("--udp", type=_ports, default=[])
    p = sub.add_parser("probe")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("targets", help="JSON list of {dst, ip, service}")
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(serve(args.name, args.tcp, args.udp))
        return 0
    outcomes = asyncio.run(probe(json.loads(args.targets), args.timeout, args.retries))
    json.dump([asdict(o) for o in outcomes], sys.stdout)
    print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
