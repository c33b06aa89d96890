"""The status API as a client meets it, without a daemon: routes, the token rule,
and bad requests answered with 4xx (never a traceback, never a 500)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest

from sdnctl.api import SwitchReadError, check_token, make_api, start_api
from sdnctl.apitoken import TokenError, is_loopback, read_token
from sdnctl.bindings import planned_bindings
from sdnctl.live.state import ControllerState, PolicyInfo
from sdnctl.policy.load import load_policy
from sdnctl.southbound.ovsdb import BindingSnapshot
from sdnctl.topology.load import load_topology

ROOT = Path(__file__).resolve().parents[2]
TOPO = ROOT / "topologies" / "three-tier.topology.yaml"
POLICY = ROOT / "topologies" / "three-tier.policy.yaml"
TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def state() -> ControllerState:
    topo = load_topology(TOPO)
    policy = load_policy(POLICY, topo)
    info = PolicyInfo(str(POLICY), "ab" * 32, 1.0, POLICY.read_text())
    topo_info = PolicyInfo(str(TOPO), "cd" * 32, 1.0, TOPO.read_text())
    st = ControllerState(policy, topo, info, BindingSnapshot(planned_bindings(policy, topo)),
                         topology_info=topo_info)
    st.recompile()
    return st


def call(app, path: str = "/status", method: str = "GET", query: str = "",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": query}
    for k, v in (headers or {}).items():
        key = k.upper().replace("-", "_")
        environ[key if key in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{key}"] = v
    setup_testing_defaults(environ)
    got: dict = {}

    def start(status: str, hdrs: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(hdrs)

    body = b"".join(app(environ, start))
    return int(got["status"].split()[0]), got["headers"], body


def test_routes_answer_json_yaml_and_flows(state) -> None:
    app = make_api(state, metrics=lambda: "sdnctl_up 1\n")
    code, headers, body = call(app)
    assert code == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert set(doc["switches"]) == {"hv1", "hv2", "leaf"} and doc["vms"]["web1"]["at"]
    assert call(app, "/policy")[2].decode() == POLICY.read_text()
    assert call(app, "/topology")[2].decode() == TOPO.read_text()
    code, _, body = call(app, "/flows/hv1")
    assert code == 200 and json.loads(body)["switch"] == "hv1"
    code, headers, body = call(app, "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    code, headers, body = call(app, "/status", "HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize(("path", "method", "query", "headers", "want"), [
    ("/nope", "GET", "", {}, 404),
    ("/flows/nosuch", "GET", "", {}, 404),
    ("/flows/hv1/x", "GET", "", {}, 404),
    ("/metrics", "GET", "", {}, 404),  # no renderer given
    ("/status", "POST", "", {}, 405),
    ("/status", "DELETE", "", {}, 405),
    ("/status", "GET", "x=1", {}, 400),
    ("/flows/hv1", "GET", "source=disk", {}, 400),
    ("/flows/hv1", "GET", "source=switch&source=switch", {}, 400),
    ("/flows/hv1", "GET", "source", {}, 400),
    ("/flows/hv1", "GET", "%zz=%%", {}, 400),
    ("/status", "GET", "", {"Content-Length": "99999999"}, 413),
    ("/status", "GET", "", {"Content-Length": "-1"}, 400),
    ("/status", "GET", "", {"Transfer-Encoding": "chunked"}, 411),
])
def test_bad_requests_get_4xx_with_a_json_reason(state, path, method, query, headers, want):
    code, hdrs, body = call(make_api(state), path, method, query, headers)
    assert code == want
    assert hdrs["Content-Type"] == "application/json" and json.loads(body)["error"]
    if want == 405:
        assert hdrs["Allow"] == "GET, HEAD"


def test_live_reads_go_to_the_reader_and_its_failures_keep_their_status(state) -> None:
    seen = []

    def reader(name: str, timeout: float) -> dict:
        seen.append(name)
        if name == "hv2":
            raise SwitchReadError("503 Service Unavailable", "hv2 is not connected")
        return {"switch": name, "flows": []}

    app = make_api(state, read_switch=reader)
    assert call(app, "/flows/hv1", query="source=switch")[0] == 200
    code, _, body = call(app, "/flows/hv2", query="source=switch")
    assert code == 503 and "not connected" in json.loads(body)["error"]
    assert seen == ["hv1", "hv2"]
    assert call(make_api(state), "/flows/hv1", query="source=switch")[0] == 503


def test_a_bug_in_an_answer_is_a_500_without_traceback(state) -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    code, _, body = call(make_api(state, metrics=broken), "/metrics")
    assert code == 500 and b"boom" not in body and b"Traceback" not in body


def test_with_a_token_every_request_needs_it(state) -> None:
    app = make_api(state, token=TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        code, hdrs, _ = call(app, "/status", headers=headers)
        assert code == 401 and hdrs["WWW-Authenticate"].startswith("Bearer")
    # Checked first: without the token, nothing tells which paths exist.
    assert call(app, "/nope")[0] == call(app, "/status", "POST")[0] == 401
    assert call(app, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert call(app, headers={"Authorization": f"bearer  {TOKEN} "})[0] == 200


def test_check_token() -> None:
    assert check_token(None, None)
    assert not check_token("t", None) and not check_token("t", "Bearer ")
    assert check_token("t", "Bearer t") and not check_token("t", "Bearer tt")


def test_token_sources(tmp_path) -> None:
    f = tmp_path / "tok"
    f.write_text(f"  {TOKEN}\n")
    assert read_token(str(f), {}) == TOKEN
    assert read_token(None, {"SDNCTL_API_TOKEN": "abc"}) == "abc"
    assert read_token(str(f), {"SDNCTL_API_TOKEN": "abc"}) == TOKEN  # the file wins
    assert read_token(None, {}) is None
    f.write_text("\n")
    with pytest.raises(TokenError, match="empty"):
        read_token(str(f), {})
    f.write_text("two words")
    with pytest.raises(TokenError, match="one printable word"):
        read_token(str(f), {})
    with pytest.raises(TokenError, match="No such file"):
        read_token(str(tmp_path / "missing"), {})
    with pytest.raises(TokenError, match="empty"):
        read_token(None, {"SDNCTL_API_TOKEN": " "})


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("no-such-host.invalid", False),
])
def test_loopback(host, loopback) -> None:
    assert is_loopback(host) is loopback


def test_the_server_answers_malformed_http_with_4xx(state) -> None:
    """Through a real socket: what the HTTP layer refuses before the app sees it."""
    import socket

    server = start_api(state, "127.0.0.1", 0, token=TOKEN)
    host, port = server.server_address[:2]
    try:
        def raw(data: bytes) -> bytes:
            with socket.create_connection((host, port), timeout=5) as s:
                s.sendall(data)
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
                return b"".join(chunks)

        assert raw(b"GET /status HTTP/1.1 junk\r\n\r\n").split()[1] == b"400"
        assert raw(b"GET /status HTTP/7.0\r\n\r\n").split()[1] == b"505"
        close = b"Host: x\r\nConnection: close\r\n\r\n"
        assert raw(b"BREW /status HTTP/1.1\r\n" + close).split()[1] == b"401"
        assert raw(b"GET /status HTTP/1.1\r\n\r\n").split()[1] == b"400"  # no Host
        assert raw(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n").split()[1] == b"414"
        assert raw(b"GET /status HTTP/1.1\r\n" + close).split()[1] == b"401"
        req = urllib.request.Request(f"http://{host}:{port}/status",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["switches"]
        # Many clients at once: each answered.
        codes: list[int] = []

        def get() -> None:
            try:
                urllib.request.urlopen(f"http://{host}:{port}/status", timeout=5)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)

        threads = [threading.Thread(target=get) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [401] * 20
    finally:
        server.shutdown()
        server.server_close()


def test_status_renders_as_tables(state) -> None:
    from sdnctl.render.status import render_status

    doc = json.loads(call(make_api(state))[2])
    doc["policy"]["last_refused"] = {"time": 2.0, "problems": ["p.yaml:7: vlan 5000", "x"]}
    doc["unknown_ports"] = [{"switch": "hv1", "port": 9, "interface": "tap9", "vm": "ghost",
                             "reason": "no such VM"}]
    text = render_status(doc, now=100.0)
    assert "last refused edit" in text and "p.yaml:7: vlan 5000 (+1 more)" in text
    assert "switches (0 of 3 connected, 0 programmed)" in text
    assert "hv1:9" in text and "ghost" in text and "no such VM" in text
    for vm in state.policy.vms:
        assert f"  {vm} " in text


def test_status_says_when_ovsdb_is_unreachable(state) -> None:
    from sdnctl.render.status import render_status
    from sdnctl.southbound.ovsdb import OvsdbHealth

    state.daemon.ovsdb = OvsdbHealth("unix:/run/db.sock")
    state.daemon.ovsdb.down("cannot connect: No such file or directory")
    doc = json.loads(call(make_api(state))[2])
    assert doc["ovsdb"]["connected"] is False and doc["ovsdb"]["reconnects"] == 0
    assert "ovsdb     unix:/run/db.sock DISCONNECTED since" in render_status(doc)
    assert "No such file or directory" in render_status(doc)
    state.daemon.ovsdb.up()
    state.daemon.ovsdb.down("connection closed")
    state.daemon.ovsdb.up()
    doc = json.loads(call(make_api(state))[2])
    assert doc["ovsdb"]["connected"] is True and doc["ovsdb"]["reconnects"] == 1
    assert "connected since" in render_status(doc) and "1 reconnects" in render_status(doc)


BIND = ("127.0.0.1", 8680)


@pytest.mark.parametrize(("host", "ok"), [
    ("127.0.0.1:8680", True), ("localhost:8680", True), ("LocalHost:8680", True),
    ("[::1]:8680", True), ("127.0.0.2:8680", True),
    ("evil.example:8680", False),  # a DNS-rebound name
    ("localhost.evil.example:8680", False), ("127.0.0.1.nip.io:8680", False),
    ("127.0.0.1:8681", False), ("127.0.0.1", False),  # port 80 is not the bound one
    ("127.0.0.1:", False), ("127.0.0.1:+8680", False), ("127.0.0.1:８６８０", False),
    ("[::1", False), ("[::1]x", False), ("::1", False), ("", False), (":8680", False),
])
def test_without_a_token_the_host_must_be_this_server(state, host, ok) -> None:
    app = make_api(state, bind=BIND)
    for path in ("/status", "/", "/matrix", "/policy"):
        code, hdrs, body = call(app, path, headers={"Host": host})
        if ok:
            assert code == 200, (path, host)
        else:
            assert code == 421 and json.loads(body)["error"].startswith("Host"), (path, host)
            assert hdrs["Content-Type"] == "application/json"


def test_the_host_check_follows_the_bind_name_and_the_servers_port(state) -> None:
    app = make_api(state, bind=("ctl.internal", 9000))
    assert call(app, headers={"Host": "ctl.internal:9000"})[0] == 200
    assert call(app, headers={"Host": "ctl.internal:8680"})[0] == 421
    app = make_api(state)  # no bind given: loopback names, the environ's SERVER_PORT
    assert call(app, headers={"Host": "127.0.0.1"})[0] == 200  # SERVER_PORT 80
    assert call(app, headers={"Host": "evil.example"})[0] == 421


@pytest.mark.parametrize(("origin", "ok"), [
    ("http://127.0.0.1:8680", True), ("http://localhost:8680", True),
    ("http://evil.example:8680", False), ("https://127.0.0.1:8680", False),
    ("null", False), ("http://127.0.0.1:8681", False), ("http://ünï.example:8680", False),
])
def test_without_a_token_a_cross_origin_request_is_refused(state, origin, ok) -> None:
    code, _, body = call(make_api(state, bind=BIND), "/matrix",
                         headers={"Host": "127.0.0.1:8680", "Origin": origin})
    assert code == (200 if ok else 403)
    if not ok:
        assert "cross-origin" in json.loads(body)["error"]


def test_with_a_token_the_host_is_not_checked_but_the_token_is(state) -> None:
    app = make_api(state, token=TOKEN, bind=("0.0.0.0", 8680))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert call(app, headers={"Host": "10.0.0.5:8680", **auth})[0] == 200
    assert call(app, headers={"Host": "evil.example:8680"})[0] == 401
    assert call(app, "/", headers={"Host": "evil.example:8680"})[0] == 200  # the page


@pytest.mark.parametrize(("length", "want"), [
    ("²", 400), ("٣", 400), ("+5", 400), (" 5", 400), ("0x10", 400), ("1e3", 400),
    ("0" * 5000, 200), ("0" * 4999 + "1", 200), ("9" * 5000, 413), ("1" * 13, 413),
    (str(16 * 1024), 200), (str(16 * 1024 + 1), 413), ("", 200),
])
def test_a_bad_content_length_is_a_4xx_never_a_500(state, length, want) -> None:
    code, hdrs, body = call(make_api(state), headers={"Content-Length": length})
    assert code == want
    if want != 200:
        assert hdrs["Content-Type"] == "application/json" and json.loads(body)["error"]


def test_every_answer_says_nosniff(state) -> None:
    def broken() -> str:
        raise RuntimeError("boom")

    apps = [make_api(state, metrics=broken), make_api(state, token=TOKEN)]
    for app in apps:
        for path, method in (("/status", "GET"), ("/", "GET"), ("/nope", "GET"),
                             ("/status", "POST"), ("/metrics", "GET"), ("/status", "HEAD")):
            _, hdrs, _ = call(app, path, method)
            assert hdrs["X-Content-Type-Options"] == "nosniff", (path, method)
