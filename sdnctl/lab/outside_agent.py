"""The probe agent of north–south probes: `serve` on the internet, `probe` from anywhere.

Run as a script inside a lab host (`python outside_agent.py serve ...`); standard
library, `sdnctl.lab.icmp` and the VMs' agent's wire helpers only, so it starts fast.

    serve --name internet --address 198.51.100.10 --tcp 80,443 --udp 53
        listens on `address` (a UDP answer must leave from the address asked; an
        unbound socket would answer from the router's own), on every TCP port,
        answering "<name> <address it saw us as>" on accept, and echoes UDP with the
        same text after the asker's token: what an internet server sees is the NAT
        address the lab checks. Pings are left to
        the host's kernel (the internet host answers its own addresses).
    probe --timeout 1 --retries 1 '[{"ip": "203.0.113.20", "service": "tcp/80",
                                     "source": "198.51.100.20"}, ...]'
        every probe at once, from `source` when given, retrying what failed. Prints
        one JSON list: [{"ip", "service", "reached", "detail", "answer", "tries"}, ...]
        where `answer` is what the other end said: a VM's probe server (agent.py)
        names its VM, `serve` its name and the address it saw. Who had to answer is
        the caller's judgement (sdnctl.lab.outside).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sys
from dataclasses import asdict, dataclass
from typing import Any, cast

from sdnctl.lab.agent import TOKEN_LEN, parse_icmp_echo
from sdnctl.lab.icmp import ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, icmp_echo

ANSWER_MAX = 128


@dataclass(slots=True)
class Outcome:
    ip: str
    service: str
    reached: bool
    detail: str
    answer: str  # "" when the other end said nothing (a kernel's ping reply)
    tries: int


# ---------------------------------------------------------------------- serve


class _UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data[:TOKEN_LEN] + f"{self.name} {addr[0]}".encode(), addr)


async def serve(name: str, address: str, tcp_ports: list[int], udp_ports: list[int]) -> None:
    loop = asyncio.get_running_loop()

    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            writer.write(f"{name} {peer[0]}".encode())
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(greet, address, port, reuse_address=True)
               for port in tcp_ports]
    for port in udp_ports:
        await loop.create_datagram_endpoint(lambda: _UdpEcho(name), local_addr=(address, port))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


# ---------------------------------------------------------------------- probe


def _bound(source: str | None, kind: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setblocking(False)
    if source:
        sock.bind((source, 0))
    return sock


async def _tcp(ip: str, port: int, source: str | None, timeout: float) -> tuple[bool, str, str]:
    """(reached, detail, answer)."""
    loop = asyncio.get_running_loop()
    sock = _bound(source, socket.SOCK_STREAM)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout)
        data = await asyncio.wait_for(loop.sock_recv(sock, ANSWER_MAX), timeout)
    except TimeoutError:
        return False, "timeout", ""
    except ConnectionRefusedError:
        return True, "refused", ""  # it got to a TCP stack and back: loud, not hidden
    except OSError as exc:
        return False, os.strerror(exc.errno) if exc.errno else str(exc), ""
    finally:
        sock.close()
    return True, "connected", data.decode(errors="replace")


async def _udp(ip: str, port: int, source: str | None, timeout: float) -> tuple[bool, str, str]:
    loop = asyncio.get_running_loop()
    token = os.urandom(TOKEN_LEN)
    sock = _bound(source, socket.SOCK_DGRAM)
    try:
        sock.connect((ip, port))
        await loop.sock_sendall(sock, token)
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
            if data[:TOKEN_LEN] == token:
                return True, "echoed", data[TOKEN_LEN:].decode(errors="replace")
        return False, "timeout", ""
    except TimeoutError:
        return False, "timeout", ""
    except ConnectionRefusedError:
        return True, "port unreachable", ""
    except OSError as exc:
        return False, os.strerror(exc.errno) if exc.errno else str(exc), ""
    finally:
        sock.close()


class _Pinger:
    """One raw ICMP socket per source address; replies matched by (ip, seq, token)."""

    def __init__(self, source: str | None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sock.setblocking(False)
        if source:
            self.sock.bind((source, 0))
        self.ident = random.randrange(1, 0x10000)
        self.seq = 0
        self.waiting: dict[tuple[str, int], tuple[bytes, asyncio.Future[str]]] = {}
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._receive)

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
        entry = self.waiting.get((src, seq))
        if entry and payload[:TOKEN_LEN] == entry[0] and not entry[1].done():
            entry[1].set_result(payload[TOKEN_LEN:].decode(errors="replace"))

    async def ping(self, ip: str, timeout: float) -> tuple[bool, str, str]:
        loop = asyncio.get_running_loop()
        self.seq = (self.seq + 1) & 0xFFFF
        key, token = (ip, self.seq), os.urandom(TOKEN_LEN)
        future: asyncio.Future[str] = loop.create_future()
        self.waiting[key] = (token, future)
        try:
            self.sock.sendto(icmp_echo(ICMP_ECHO_REQUEST, self.ident, self.seq, token), (ip, 0))
            answer = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False, "timeout", ""
        except OSError as exc:
            return False, os.strerror(exc.errno) if exc.errno else str(exc), ""
        finally:
            del self.waiting[key]
        return True, "echo reply", answer


async def _one(target: dict[str, Any], timeout: float, retries: int,
               pingers: dict[str | None, _Pinger]) -> Outcome:
    ip, service, source = target["ip"], target["service"], target.get("source")
    proto, _, port = service.partition("/")
    detail = ""
    for tries in range(1, retries + 2):
        if proto == "tcp":
            reached, detail, answer = await _tcp(ip, int(port), source, timeout)
        elif proto == "udp":
            reached, detail, answer = await _udp(ip, int(port), source, timeout)
        else:
            if source not in pingers:
                pingers[source] = _Pinger(source)
            reached, detail, answer = await pingers[source].ping(ip, timeout)
        if reached:
            return Outcome(ip, service, True, detail, answer, tries)
    return Outcome(ip, service, False, detail, "", retries + 1)


async def probe(targets: list[dict[str, Any]], timeout: float, retries: int) -> list[Outcome]:
    pingers: dict[str | None, _Pinger] = {}
    return list(await asyncio.gather(*(_one(t, timeout, retries, pingers) for t in targets)))


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outside_agent.py",
                                     description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--name", required=True)
    s.add_argument("--address", default="0.0.0.0")
    s.add_argument("--tcp", type=_ports, default=[])
    s.add_argument("--udp", type=_ports, default=[])
    p = sub.add_parser("probe")
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--retries", type=int, default=1)
    p.add_argument("targets", help="JSON list of {ip, service, source?}")
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(serve(args.name, args.address, args.tcp, args.udp))
        return 0
    outcomes = asyncio.run(probe(json.loads(args.targets), args.timeout, args.retries))
    json.dump([asdict(o) for o in outcomes], sys.stdout)
    print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
