"""The daemon's status API under load and abuse (the hardening issue's item 4).

    .venv/bin/python benchmarks/api_load.py                   # all three, 10,000 slow clients
    .venv/bin/python benchmarks/api_load.py --slow 2000 --only slow
    .venv/bin/python benchmarks/api_load.py --target server   # no OVS: the API server alone

1. load: 2,000 GET /status from 100 concurrent clients, a new connection each (as
   sdnctl's own clients make them): errors, p50 and p99.
2. slow: N clients without the token (default 10,000) each open a connection and
   send a request head one byte every 2 s, never finishing it; when the server
   cuts one it reconnects at once, for the whole phase. Meanwhile authenticated
   requests are timed one after another (p50, p99), and the server's RSS is sampled
   (before the flood, and its peak).
3. fuzz: 10,000 random requests (methods, targets, versions, headers, bodies, raw
   bytes, some cut short or sent in pieces): answers by status, 5xx, and
   tracebacks in the server's log.

The target is the real daemon (`python -m sdnctl.daemon` on the three-tier example,
OpenFlow on a free loopback port, no switch connecting: only the API is exercised),
or with `--target server` the API server alone (sdnctl.api.start_api over the same
state, in a process of its own). The slow clients run in a separate process, so
that their own work does not slow the timed client. Every address is 127.0.0.1;
every loop is bounded in count and in time. JSON goes to
benchmarks/results/api_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdnctl.bench.report import print_table, write_json  # noqa: E402
from sdnctl.lab.names import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOPO = ROOT / "topologies" / "three-tier.topology.yaml"
POLICY = ROOT / "topologies" / "three-tier.policy.yaml"
TOKEN = "bench-token-" + "0123456789abcdef" * 2
HOST = "127.0.0.1"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]



def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the server under test --

class Target:
    """The daemon (or the API server alone) in a process of its own, its log in a file."""

    def __init__(self, kind: str, token: bool, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / f"{kind}-{'token' if token else 'open'}-{self.port}.log"
        env = dict(os.environ)
        env.pop("SDNCTL_API_TOKEN", None)
        extra: list[str] = []
        if token:
            token_file = workdir / "token"
            token_file.write_text(TOKEN)
            token_file.chmod(0o600)
            extra = ["--api-token-file", str(token_file)]
        if kind == "daemon":
            cmd = [sys.executable, "-m", "sdnctl.daemon", "-p", str(POLICY), "-t", str(TOPO),
                   "--listen", f"tcp:{HOST}:{free_port()}", "--api", f"{HOST}:{self.port}",
                   "--stats-interval", "0", *extra]
        else:
            cmd = [sys.executable, __file__, "--serve", str(self.port), *extra]
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                                         env=env)
        self.token = token
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the {kind} exited: {self.log.read_text()[-2000:]}")
            try:
                if request_once(self.port, auth=token, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"the {kind} did not answer within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")


def head(port: int, path: str = "/status", auth: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    if auth:
        lines.append(f"Authorization: Bearer {TOKEN}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(raw: bytes) -> int | None:
    """The final answer's status (after any 100 Continue), None if not HTTP."""
    while raw.startswith(b"HTTP/1.1 100 "):
        raw = raw.partition(b"\r\n\r\n")[2]
    parts = raw.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


def request_once(port: int, auth: bool = False, timeout: float = 5.0) -> tuple[int | None, float]:
    """One blocking request on a new connection: (status, seconds)."""
    t0 = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(head(port, auth=auth))
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return status_of(raw), time.perf_counter() - t0


async def arequest(port: int, data: bytes, timeout: float, half_close: bool = False,
                   pieces: int = 1) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    try:
        step = max(1, len(data) // pieces)
        for i in range(0, len(data), step):
            writer.write(data[i:i + step])
            await writer.drain()
            if pieces > 1:
                await asyncio.sleep(0.01)
        if half_close and writer.can_write_eof():
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


# -- 1. load --

def run_load(port: int, total: int, concurrency: int, auth: bool) -> dict[str, object]:
    async def main() -> tuple[list[float], dict[str, int]]:
        latencies: list[float] = []
        errors: dict[str, int] = {}
        todo = iter(range(total))
        data = head(port, auth=auth)

        async def client() -> None:
            for _ in todo:
                t0 = time.perf_counter()
                try:
                    raw = await arequest(port, data, timeout=30)
                    code = status_of(raw)
                    if code == 200:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors[str(code)] = errors.get(str(code), 0) + 1
                except (TimeoutError, OSError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(concurrency))), 600)
        errors["_wall_s"] = round(time.perf_counter() - t0, 2)  # type: ignore[assignment]
        return latencies, errors

    latencies, errors = asyncio.run(main())
    wall = errors.pop("_wall_s")
    return {
        "requests": total, "concurrency": concurrency, "ok": len(latencies),
        "errors": sum(errors.values()), "error_kinds": errors, "wall_s": wall,
        "p50_ms": _ms(percentile(latencies, 50)), "p99_ms": _ms(percentile(latencies, 99)),
        "max_ms": _ms(max(latencies) if latencies else None),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


# -- 2. slow clients --

def flood(port: int, clients: int, interval: float, seconds: float) -> dict[str, object]:
    """In its own process: `clients` slow-loris clients for `seconds`, reconnecting
    when cut. Prints a line `ramped` once all have connected once."""
    counts = {"connects": 0, "connect_errors": 0, "cut": 0, "answered": 0, "open": 0,
              "max_open": 0}
    deadline = time.monotonic() + seconds
    ramp = asyncio.Semaphore(256)  # connects in flight at once
    request = f"GET /status HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-Slow: ".encode()

    async def one(i: int) -> None:
        first = True
        while time.monotonic() < deadline:
            try:
                async with ramp:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(HOST, port), 10)
            except (TimeoutError, OSError):
                counts["connect_errors"] += 1
                await asyncio.sleep(0.5)
                continue
            counts["connects"] += 1
            counts["open"] += 1
            counts["max_open"] = max(counts["max_open"], counts["open"])
            if first:
                first = False
                ramped.append(i)
            try:
                # a random start: the clients' bytes do not all arrive at once
                await asyncio.sleep(random.uniform(0, interval))
                for byte in request + b"a" * 10_000:
                    writer.write(bytes([byte]))
                    try:
                        data = await asyncio.wait_for(reader.read(1024), interval)
                    except TimeoutError:
                        if time.monotonic() >= deadline:
                            break
                        continue
                    if data:
                        counts["answered"] += 1
                    counts["cut"] += 1
                    break
            except OSError:
                counts["cut"] += 1
            finally:
                counts["open"] -= 1
                writer.close()

    ramped: list[int] = []

    async def main() -> None:
        tasks = [asyncio.create_task(one(i)) for i in range(clients)]
        announced = False
        while not all(t.done() for t in tasks) and time.monotonic() < deadline + 30:
            if not announced and len(ramped) >= clients:
                print("ramped", flush=True)
                announced = True
            await asyncio.sleep(0.2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    return counts


def run_slow(target: Target, clients: int, seconds: float, interval: float) -> dict[str, object]:
    port = target.port
    for _ in range(50):  # warm up
        request_once(port, auth=True)
    before = rss_mb(target.proc.pid)
    peak = [before or 0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            now = rss_mb(target.proc.pid)
            if now is not None:
                peak[0] = max(peak[0], now)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--flood", str(port), str(clients), str(interval),
         str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ramp_t0 = time.monotonic()
    line = proc.stdout.readline()  # "ramped", or "" if it ended first
    ramp_s = time.monotonic() - ramp_t0
    latencies: list[float] = []
    failures: dict[str, int] = {}
    end = ramp_t0 + seconds - 2
    while time.monotonic() < end and len(latencies) + sum(failures.values()) < 20_000:
        try:
            code, took = request_once(port, auth=True, timeout=10)
            if code == 200:
                latencies.append(took)
            else:
                failures[str(code)] = failures.get(str(code), 0) + 1
        except OSError as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
        time.sleep(0.01)
    out, _ = proc.communicate(timeout=seconds + 120)
    stop.set()
    sampler.join()
    counts = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    return {
        "slow_clients": clients, "byte_every_s": interval, "phase_s": seconds,
        "ramped": line.strip() == "ramped", "ramp_s": round(ramp_s, 1), "flood": counts,
        "timed_requests": len(latencies) + sum(failures.values()), "timed_failures": failures,
        "p50_ms": _ms(percentile(latencies, 50)), "p99_ms": _ms(percentile(latencies, 99)),
        "max_ms": _ms(max(latencies) if latencies else None),
        "rss_before_mb": round(before or 0, 1), "rss_peak_mb": round(peak[0], 1),
        "rss_growth_mb": round(peak[0] - (before or 0), 1),
    }


# -- 3. fuzz --

METHODS = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT",
           b"BREW", b"get", b"G\x00T", b"", b"GET GET", b"\xff\xfe", b"M" * 300]
PATHS = [b"/status", b"/", b"/dashboard", b"/policy", b"/topology", b"/metrics", b"/network",
         b"/matrix", b"/edits", b"/explain", b"/flows/hv1", b"/flows/nosuch", b"/flows/",
         b"/flows/hv1/x", b"/nope", b"*", b"status", b"http://127.0.0.1/status",
         b"//status", b"/%2e%2e/etc/passwd", b"/%zz", b"/\xc3\xa9", b"/%00", b"/" + b"a" * 9000]
QUERIES = [b"", b"?", b"?source=switch", b"?source=intent", b"?source=disk", b"?x=1",
           b"?source=switch&source=switch", b"?%zz=%%", b"?service=tcp/80", b"?service=tcp/0",
           b"?from=web1&to=db1&service=tcp/5432", b"?from=web1&to=web1", b"?from=nope&to=x",
           b"?" + b"a=1&" * 500, b"?\xff"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b"http/1.1",
            b"HTTP/1", b"", b"HTTP/11.1"]
HEADERS = [
    b"Host: 127.0.0.1:{port}", b"Host: localhost:{port}", b"Host: evil.example:{port}",
    b"Host: 127.0.0.1", b"Host:", b"Host: [::1]:{port}", b"Host: a b", b"Origin: null",
    b"Origin: http://evil.example", b"Origin: http://127.0.0.1:{port}",
    b"Content-Length: 0", b"Content-Length: 5", b"Content-Length: \xc2\xb2",
    b"Content-Length: -1", b"Content-Length: " + b"9" * 5000, b"Content-Length: 1, 2",
    b"Content-Length: 99999", b"Content-Length: 0x10", b"Content_Length: 5",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip", b"Transfer-Encoding: ,chunked",
    b"Expect: 100-continue", b"Connection: keep-alive", b"Connection: close, upgrade",
    b"Authorization: Bearer nope", b"Authorization: Bearer", b"Authorization: \xff",
    b"X-Big: " + b"x" * 20000, b" folded: header", b"NoColon", b": empty-name",
    b"X-Ctl: \x01\x7f", b"X-Utf8: \xc3\xa9\xe2\x82\xac", b"Accept: */*",
]
MALFORMED = (b" ", b"NoColon", b":", b"X-Big", b"X-Ctl", b"Transfer", b"Content-Length: 9",
             b"Content_", b"Content-Length: \xc2", b"Content-Length: -", b"Content-Length: 0x",
             b"Content-Length: 1,", b"Host")
WELL_FORMED = [h for h in HEADERS if not h.startswith(MALFORMED)]
BODIES = [b"", b"hello", b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n", b"x" * 20000,
          b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]


def fuzz_request(rng: random.Random, port: int) -> bytes:
    """Random bytes (5 %), a well-formed request with random parts (45 %: these
    reach the app), or one built from random pieces and then cut or mangled."""
    roll = rng.random()
    if roll < 0.05:
        return rng.randbytes(rng.randint(0, 2000))
    if roll < 0.5:
        method = rng.choice([b"GET", b"GET", b"HEAD", b"POST", b"DELETE", b"BREW"])
        target = rng.choice(PATHS[:14]) + (rng.choice(QUERIES) if rng.random() < 0.5 else b"")
        lines = [method + b" " + target + b" " + rng.choice([b"HTTP/1.1", b"HTTP/1.0"])]
        if rng.random() < 0.9:
            lines.append(f"Host: {HOST}:{port}".encode())
        lines += [h.replace(b"{port}", str(port).encode())
                  for h in rng.sample(HEADERS if rng.random() < 0.3 else WELL_FORMED,
                                      rng.randint(0, 3))]
        return b"\r\n".join(lines) + b"\r\n\r\n" + rng.choice(BODIES[:2])
    line = b" ".join(x for x in (rng.choice(METHODS), rng.choice(PATHS) + rng.choice(QUERIES),
                                 rng.choice(VERSIONS)) if x or rng.random() < 0.5)
    headers = [h.replace(b"{port}", str(port).encode())
               for h in rng.sample(HEADERS, rng.randint(0, 6))]
    if rng.random() < 0.7:  # most carry a good Host, so the app's routes are reached
        headers.insert(0, f"Host: {HOST}:{port}".encode())
    eol = rng.choice([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])
    data = line + eol + eol.join(headers) + (eol if headers else b"") + eol
    data += rng.choice(BODIES)
    if rng.random() < 0.1:
        data = data[:rng.randint(0, len(data))]  # cut short
    if rng.random() < 0.1:
        i = rng.randint(0, max(0, len(data) - 1))
        data = data[:i] + rng.randbytes(rng.randint(1, 8)) + data[i + 1:]
    return data


def run_fuzz(target: Target, total: int, concurrency: int, seed: int) -> dict[str, object]:
    port = target.port
    rng = random.Random(seed)
    requests = [fuzz_request(rng, port) for _ in range(total)]
    before = target.tracebacks()

    why: dict[str, int] = {}

    async def main() -> dict[str, int]:
        codes: dict[str, int] = {}
        todo = iter(requests)

        async def client(crng: random.Random) -> None:
            for data in todo:
                try:
                    raw = await arequest(port, data, timeout=30, half_close=True,
                                         pieces=crng.choice([1, 1, 1, 3]))
                    code = status_of(raw)
                    key = str(code) if code is not None else ("no answer" if not raw
                                                               else "not HTTP")
                    if code is not None and code >= 500:
                        reason = raw.partition(b"\r\n\r\n")[2][:120].decode("latin-1")
                        why[f"{code} {reason}"] = why.get(f"{code} {reason}", 0) + 1
                except (TimeoutError, OSError) as exc:
                    key = type(exc).__name__
                codes[key] = codes.get(key, 0) + 1

        await asyncio.wait_for(asyncio.gather(
            *(client(random.Random(seed + i)) for i in range(concurrency))), 900)
        return codes

    t0 = time.perf_counter()
    codes = asyncio.run(main())
    wall = time.perf_counter() - t0
    alive = request_once(port, auth=target.token)[0]
    return {
        "requests": total, "seed": seed, "wall_s": round(wall, 1),
        "by_status": dict(sorted(codes.items())),
        "status_500": codes.get("500", 0),
        "status_5xx": {k: v for k, v in codes.items() if k.isdigit() and k.startswith("5")},
        "why_5xx": why,
        "tracebacks_in_log": target.tracebacks() - before,
        "answers_after": alive,
    }


# -- the API server alone (--target server) --

def serve(port: int, token_file: str | None) -> None:
    import logging

    from sdnctl.api import start_api
    from sdnctl.apitoken import read_token
    from sdnctl.bindings import planned_bindings
    from sdnctl.live.state import ControllerState, PolicyInfo
    from sdnctl.policy.load import load_policy
    from sdnctl.southbound.ovsdb import BindingSnapshot
    from sdnctl.topology.load import load_topology

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    topo = load_topology(TOPO)
    policy = load_policy(POLICY, topo)
    state = ControllerState(
        policy, topo, PolicyInfo(str(POLICY), "ab" * 32, time.time(), POLICY.read_text()),
        BindingSnapshot(planned_bindings(policy, topo)),
        topology_info=PolicyInfo(str(TOPO), "cd" * 32, time.time(), TOPO.read_text()))
    state.recompile()
    server = start_api(state, HOST, port, read_token(token_file, {}) if token_file else None)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    stopping.wait(3600)
    server.shutdown()
    server.server_close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["load", "slow", "fuzz"], action="append")
    ap.add_argument("--target", choices=["daemon", "server"], default="daemon")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--slow", type=int, default=10_000, help="slow clients (default 10,000)")
    ap.add_argument("--slow-seconds", type=float, default=40.0)
    ap.add_argument("--byte-every", type=float, default=2.0)
    ap.add_argument("--fuzz", type=int, default=10_000)
    ap.add_argument("--fuzz-concurrency", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--api-token-file", help=argparse.SUPPRESS)
    ap.add_argument("--flood", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    fds = raise_fd_limit()
    if args.serve is not None:
        serve(args.serve, args.api_token_file)
        return 0
    if args.flood:
        port, clients, interval, seconds = args.flood
        counts = flood(int(port), int(clients), float(interval), float(seconds))
        print(json.dumps(counts), flush=True)
        return 0
    phases = args.only or ["load", "slow", "fuzz"]
    if "slow" in phases and fds < args.slow + 1024:
        raise SystemExit(f"the file limit ({fds}) is too low for {args.slow} slow clients")
    result: dict[str, object] = {"target": args.target, "fd_limit": fds}
    with tempfile.TemporaryDirectory(prefix="api-load-") as tmp:
        work = Path(tmp)
        if "load" in phases or "fuzz" in phases:
            target = Target(args.target, token=False, workdir=work)
            try:
                if "load" in phases:
                    result["load"] = run_load(target.port, args.requests, args.concurrency,
                                              auth=False)
                    result["load"]["tracebacks_in_log"] = target.tracebacks()  # type: ignore[index]
                if "fuzz" in phases:
                    result["fuzz"] = run_fuzz(target, args.fuzz, args.fuzz_concurrency,
                                              args.seed)
            finally:
                target.stop()
        if "slow" in phases:
            target = Target(args.target, token=True, workdir=work)
            try:
                result["slow"] = run_slow(target, args.slow, args.slow_seconds, args.byte_every)
                result["slow"]["tracebacks_in_log"] = target.tracebacks()  # type: ignore[index]
            finally:
                target.stop()
    report(result)
    write_json("api_load", result, args.json)
    return 0


def report(result: dict[str, object]) -> None:
    if "load" in result:
        print_table([result["load"]], [  # type: ignore[list-item]
            ("requests", "requests"), ("concurrency", "concurrent"), ("errors", "errors"),
            ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
            ("wall_s", "wall s")], "1. load (goal: 0 errors, p99 < 250 ms)")
    if "slow" in result:
        print_table([result["slow"]], [  # type: ignore[list-item]
            ("slow_clients", "slow clients"), ("flood.connects", "connects"),
            ("flood.cut", "cut"), ("flood.max_open", "max open"),
            ("timed_requests", "timed"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"),
            ("max_ms", "max ms"), ("rss_before_mb", "RSS MB"), ("rss_growth_mb", "+RSS MB")],
            "2. slow clients without the token; authenticated requests timed "
            "(goal: +RSS < 50 MB, p99 < 100 ms)")
    if "fuzz" in result:
        fuzz = result["fuzz"]
        print_table([fuzz], [  # type: ignore[list-item]
            ("requests", "requests"), ("status_500", "500s"),
            ("tracebacks_in_log", "tracebacks"), ("answers_after", "then /status"),
            ("wall_s", "wall s")], "3. fuzz (goal: 0 × 500, 0 tracebacks)")
        print("   answers:", json.dumps(fuzz["by_status"]))  # type: ignore[index]
        for reason, n in sorted(fuzz["why_5xx"].items()):  # type: ignore[index]
            print(f"   {n} × {reason}")
        print()


if __name__ == "__main__":
    sys.exit(main())
