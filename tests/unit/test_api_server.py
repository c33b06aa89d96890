"""The API's server on a real socket (127.0.0.1, a port of its own, no daemon): what
it refuses itself, keep-alive, and how it holds under many, slow, idle and greedy
clients. Deadlines and caps are set short so that each test takes a few seconds."""

from __future__ import annotations

import http.client
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdnctl.api import start_api
from sdnctl.bindings import planned_bindings
from sdnctl.httpserver import HttpServer, Limits
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.policy.load import load_policy
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.load import load_topology

ROOT = Path(__file__).resolve().parents[2]
TOPO = ROOT / "topologies" / "three-tier.topology.yaml"
POLICY = ROOT / "topologies" / "three-tier.policy.yaml"
TOKEN = "s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def state() -> ControllerState:
    topo = load_topology(TOPO)
    policy = load_policy(POLICY, topo)
    info = PolicyInfo(str(POLICY), "ab" * 32, 1.0, POLICY.read_text())
    st = ControllerState(policy, topo, info, BindingSnapshot(planned_bindings(policy, topo)))
    st.recompile()
    return st


def serving(state: ControllerState, **kw) -> Iterator[HttpServer]:
    limits = kw.pop("limits", None)
    server = start_api(state, "127.0.0.1", 0, limits=limits, **kw)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def open_api(state) -> Iterator[HttpServer]:
    yield from serving(state, limits=Limits(header_s=1.0, body_s=1.0, send_s=1.0))


def exchange(port: int, data: bytes, timeout: float = 5.0,
             half_close: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Send `data`, read to the end: (status, headers, body) of the first answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return parse(b"".join(chunks))


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[:int(headers["content-length"])]
    return int(lines[0].split()[1]), headers, body


def get(port: int, path: str = "/status", headers: dict[str, str] | None = None,
        timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


BIG = b"x" * 20000
REFUSED = [
    (b"GET /status HTTP/1.1 junk\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)) + b"\r\n\r\n", 400),
    (b"GET /status HTTP/7.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
    (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + BIG + b"\r\n\r\n", 431),
    (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \xc2\xb2\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + b"9" * 5000
     + b"\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2"
     b"\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999\r\n\r\n", 413),
    (b"POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
    (b"POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 411),
    (b"GET status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    (b"GET /status HTTP/1.1\r\nHost: evil.example\r\n\r\n", 421),
    (b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n", 408),  # never ends its head
]


@pytest.mark.parametrize(("data", "want"), REFUSED)
def test_what_the_server_refuses_is_json_with_nosniff(open_api, data, want) -> None:
    code, headers, body = exchange(open_api.server_port, data)
    assert code == want
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["error"]
    if want != 421:  # the app's answers keep the connection; the server's close it
        assert headers["connection"] == "close"


def test_a_head_request_gets_headers_only_and_keep_alive_works(open_api) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", open_api.server_port, timeout=5)
    try:
        for _ in range(3):  # one connection, three requests
            conn.request("GET", "/status")
            resp = conn.getresponse()
            assert resp.status == 200 and json.loads(resp.read())["switches"]
            assert resp.getheader("X-Content-Type-Options") == "nosniff"
        conn.request("HEAD", "/status")
        resp = conn.getresponse()
        assert resp.status == 200 and int(resp.getheader("Content-Length")) > 0
        assert resp.read() == b""
        conn.request("HEAD", "/nope")
        resp = conn.getresponse()
        assert resp.status == 404 and resp.read() == b""
    finally:
        conn.close()
    # Pipelined: two requests in one write, two answers in order.
    host = f"Host: 127.0.0.1:{open_api.server_port}\r\n".encode()
    two = (b"GET /status HTTP/1.1\r\n" + host + b"\r\n"
           b"GET /nope HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", open_api.server_port), timeout=5) as s:
        s.sendall(two)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    first = parse(raw)
    assert first[0] == 200
    rest = raw[raw.index(first[2]) + len(first[2]):]
    assert parse(rest)[0] == 404


def test_many_concurrent_clients_are_all_answered(open_api) -> None:
    codes: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(4):
            code = get(open_api.server_port, timeout=10)[0]
            with lock:
                codes.append(code)

    threads = [threading.Thread(target=client) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert codes == [200] * 400


def test_a_slow_loris_is_cut_at_the_total_deadline_and_blocks_nobody(open_api) -> None:
    """A byte every 0.3 s is never silent for the 1 s deadline, yet is cut at 1 s."""
    port = open_api.server_port
    request = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    got: dict[str, object] = {}

    def slow() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            t0 = time.monotonic()
            try:
                for byte in request:
                    s.sendall(bytes([byte]))
                    time.sleep(0.3)
            except OSError:
                pass
            raw = b""
            try:
                while chunk := s.recv(65536):
                    raw += chunk
            except OSError:
                pass
            got["after"], got["answer"] = time.monotonic() - t0, raw

    loris = threading.Thread(target=slow)
    loris.start()
    latencies = []
    while loris.is_alive() and len(latencies) < 200:
        t0 = time.monotonic()
        assert get(port)[0] == 200
        latencies.append(time.monotonic() - t0)
        time.sleep(0.02)
    loris.join(10)
    assert 0.9 < got["after"] < 2.5  # type: ignore[operator]
    assert parse(got["answer"])[0] == 408  # type: ignore[arg-type]
    assert len(latencies) > 10 and max(latencies) < 0.5


def test_a_flood_of_idle_connections_past_the_cap_does_not_lock_out_a_client(state) -> None:
    limits = Limits(connections=64, header_s=30.0)
    for server in serving(state, token=TOKEN, limits=limits):
        port = server.server_port
        flood = []
        try:
            for i in range(300):  # idle, half-sent and slow: none ever finishes
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                if i % 2:
                    s.sendall(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                flood.append(s)
            for _ in range(20):
                t0 = time.monotonic()
                code, _, body = get(port, headers=AUTH)
                assert code == 200 and json.loads(body)["switches"]
                assert time.monotonic() - t0 < 1.0
            assert len(server.open) <= 64
            assert server.counts["evicted"] >= 300 - 64
            # Without the token, past the cap: answered 401 all the same.
            assert get(port)[0] == 401
        finally:
            for s in flood:
                s.close()


def test_workers_are_bounded_and_the_excess_is_told_to_come_back(state) -> None:
    release = threading.Event()
    inside: list[str] = []

    def reader(name: str, timeout: float) -> dict:
        inside.append(threading.current_thread().name)
        release.wait(10)
        return {"switch": name, "flows": []}

    limits = Limits(workers=2, queued=1)
    for server in serving(state, read_switch=reader, limits=limits):
        port = server.server_port
        results: list[tuple[int, dict[str, str], bytes]] = []

        def ask(port: int = port, results: list = results) -> None:
            results.append(get(port, "/flows/hv1?source=switch", timeout=15))

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while len(results) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r[0] for r in results] == [503] * 3  # 2 running + 1 queued; 3 told
        assert all(r[1]["retry-after"] == "1" and json.loads(r[2])["error"] for r in results)
        assert len(inside) == 2 and all(n.startswith("status-api-worker") for n in inside)
        release.set()
        for t in threads:
            t.join(15)
        assert sorted(r[0] for r in results) == [200] * 3 + [503] * 3
        assert get(port)[0] == 200


def test_a_client_that_takes_no_answer_is_dropped(state) -> None:
    big = "x" * (64 * 1024 * 1024)  # more than both socket buffers hold
    limits = Limits(send_s=1.0)
    for server in serving(state, metrics=lambda: big, limits=limits):
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{server.server_port}\r\n"
                      "\r\n".encode())
            time.sleep(0.5)
            assert server.open  # the answer is on its way
            deadline = time.monotonic() + 10
            while server.open and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not server.open  # cut: not held open by a reader who never reads
        assert get(server.server_port)[0] == 200


def test_random_requests_never_get_a_500_nor_leave_a_traceback(open_api, caplog) -> None:
    """A small fuzz (benchmarks/api_load.py runs 10,000): random methods, targets,
    versions, headers and bodies, half of them cut short."""
    rng = random.Random(7)
    port = open_api.server_port
    parts = [b"GET", b"HEAD", b"POST", b"BREW", b"G\x00T", b"/status", b"/flows/hv1",
             b"/%zz", b"/flows/hv1?source=switch", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9",
             b"Host: 127.0.0.1", b"Host: evil", b"Content-Length: 5", b"Content-Length: \xc2\xb2",
             b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Origin: null", b"\r\n",
             b" ", b":", b"\xff\xfe", b"0\r\n\r\n"]
    caplog.set_level(logging.DEBUG)
    codes = []
    for _ in range(300):
        data = b"".join(rng.choice(parts) + rng.choice([b" ", b"\r\n", b""])
                        for _ in range(rng.randint(1, 12)))
        data += rng.randbytes(rng.randint(0, 40)) if rng.random() < 0.3 else b""
        try:
            raw = b""
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                while chunk := s.recv(65536):
                    raw += chunk
        except ConnectionResetError:
            continue
        if raw:
            codes.append(parse(raw)[0])
    assert codes and 500 not in codes
    assert all(c < 500 or c == 505 for c in codes), sorted(set(codes))
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert get(port)[0] == 200


def test_ipv6_loopback_and_a_clean_stop(state) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = start_api(state, "::1", 0)
    except OSError as exc:
        pytest.skip(f"no ::1 here: {exc}")
    port = server.server_port
    conn = http.client.HTTPConnection("::1", port, timeout=5)
    conn.request("GET", "/status")
    assert conn.getresponse().status == 200
    conn.close()
    server.shutdown()
    server.server_close()
    with pytest.raises(OSError):
        socket.create_connection(("::1", port), timeout=2).close()
    assert not any(t.name == "status-api" for t in threading.enumerate())
