"""The daemon's HTTP API: status (JSON), flows, the enforced input files, metrics.

Routes (GET or HEAD, but the two commands; every answer but /policy, /topology and
/metrics is JSON):

    /status                     what the daemon knows (sdnctl.live.state.ControllerState)
    /flows/SWITCH               the FlowSet the daemon wants on SWITCH, as IR JSON
    /flows/SWITCH?source=switch what SWITCH holds now, read from it and parsed into IR
    /policy, /topology          the files enforced, as they were loaded
    /metrics                    Prometheus text format (sdnctl.metrics)
    /, /dashboard               the web dashboard (HTML; sdnctl.dashboard), and the JSON it
    /network, /matrix, /explain, /edits   reads: topology and VMs, the reachability
                                matrix, `explain` of one cell, the last edits
    /connections                the connection log's last records (?limit=N&verdict=deny)
    /mirrors                    the mirrors on the daemon's OVSDB
    POST /mirrors/start, POST /mirrors/stop   the dashboard's mirror buttons: a JSON
                                object ({"vm": "web1", "netns": "cap1", "direction": "in"}),
                                `Content-Type: application/json` only (a browser sends
                                no such request across origins without asking first)

A request never gets a traceback, and a client's mistake never a 500: an unknown
path is 404, another method 405, an unknown or malformed query 400, a bad
Content-Length 400, a body over MAX_BODY 413, a missing or wrong token 401 (when a
token is configured; compared in constant time, checked before anything else so
that paths are not probed for free; the dashboard page alone is served without it:
fixed bytes, no state, its script sends the token). Without a token (loopback
only, see sdnctl/apitoken.py) the Host header must name the bind address or a
loopback name with the bound port (421 otherwise) and an Origin header, if any,
the same (403): a web page in a browser on the controller host cannot read the API
by DNS rebinding. Every answer is marked `X-Content-Type-Options: nosniff`.

The server (sdnctl/httpserver.py: h11 on an asyncio loop in its own thread, the app
in a bounded pool of worker threads, beside os-ken's threads) bounds connections,
work and the time a request may take, and answers what it refuses itself in JSON
too.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sdnctl.dashboard import HTML, BadQuery, Dashboard, page
from sdnctl.flows import flowset_to_json
from sdnctl.httpserver import HttpServer, Limits

if TYPE_CHECKING:
    from sdnctl.live.state import ControllerState

log = logging.getLogger("api")

MAX_BODY = 16 * 1024  # no route takes a body; anything larger is refused unread
JSON = "application/json"
YAML = "application/yaml; charset=utf-8"
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
PUBLIC = frozenset({"/", "/dashboard"})  # the dashboard page: no token (it holds no data)
NOSNIFF = ("X-Content-Type-Options", "nosniff")
LOCAL_NAMES = frozenset({"localhost"})

StartResponse = Callable[..., object]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
# Reads what a switch holds: (switch name, timeout) -> IR JSON; raises SwitchReadError.
SwitchReader = Callable[[str, float], dict[str, object]]
MetricsRenderer = Callable[[], str]
# Runs a mirror command (sdnctl/mirrorcmd.py): ("start" | "stop", the request's JSON
# object) -> (HTTP status, JSON document).
MirrorRunner = Callable[[str, dict[str, Any]], tuple[str, dict[str, object]]]
COMMANDS = {"/mirrors/start": "start", "/mirrors/stop": "stop"}  # POST path -> action


class SwitchReadError(Exception):
    """A live read failed: `status` is the HTTP status to answer with."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Answer:
    status: str
    body: bytes
    kind: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: str, body: object, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    # Compact: json's C encoder serves only indent=None, and an indented /status
    # took half of the server's time per request (sdnctl status --json, jq: pretty).
    return Answer(status, json.dumps(body, separators=(",", ":")).encode(), JSON, headers)


def _error(status: str, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Answer:
    return _json(status, {"error": message}, headers)


@dataclass(frozen=True, slots=True)
class Route:
    """A known path: the query keys it accepts (with their allowed values; `()`: any
    value, checked by the answer) and its answer."""

    query: dict[str, tuple[str, ...]]
    answer: Callable[[dict[str, str]], Answer]


def check_token(expected: str | None, header: str | None) -> bool:
    """`Authorization: Bearer TOKEN` against the configured token, in constant time."""
    if expected is None:
        return True
    scheme, _, given = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name`, `name:port`, `[v6]` or `[v6]:port` as (lowercase name, port or None);
    None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    else:
        host, colon, port_text = value.rpartition(":")
        host, port = (host, port_text) if colon else (value, None)
    if port is None:
        return (host, None) if host else None
    if not (host and port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    return host, int(port)


def host_allowed(value: str, bind_host: str | None, bind_port: int) -> bool:
    """Does a Host header (or an Origin's host:port) name this server as bound on
    loopback: `localhost`, a loopback address or the bind name, with the bound port
    (80 when it names none)? A DNS-rebound name is none of these."""
    parsed = split_host(value)
    if parsed is None:
        return False
    host, port = parsed
    if (80 if port is None else port) != bind_port:
        return False
    if host in LOCAL_NAMES or (bind_host and host == bind_host.lower().strip("[]")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def content_length_problem(text: str) -> tuple[str, str] | None:
    """(status, reason) for a Content-Length that is not a small count of bytes:
    ASCII digits only (`²` is a digit to str.isdigit, not to HTTP) and no more than
    MAX_BODY."""
    if not (text.isascii() and text.isdigit()):
        return "400 Bad Request", f"bad Content-Length {text[:40]!r}"
    digits = text.lstrip("0")  # int() refuses over 4,300 digits, leading zeros too
    if len(digits) > 12 or int(digits or "0") > MAX_BODY:
        return "413 Content Too Large", f"body over {MAX_BODY} bytes"
    return None


class StatusApi:
    """The API as a WSGI app (call it with `environ, start_response`).

    A request first passes the gate (`_refusal`: token or Host/Origin, body framing),
    then the router finds its path (`route`: the fixed paths, then `/flows/SWITCH`),
    checks the method and the query, and the path's handler answers. Without
    `read_switch`, `?source=switch` answers 503; without `metrics`, /metrics is 404.
    `bind` is the (host, port) the server listens on, which Host and Origin must name
    when there is no token (without it: loopback names and the environ's SERVER_PORT)."""

    def __init__(self, state: ControllerState, token: str | None = None,
                 read_switch: SwitchReader | None = None,
                 metrics: MetricsRenderer | None = None, read_timeout_s: float = 5.0,
                 bind: tuple[str, int] | None = None,
                 mirror: MirrorRunner | None = None) -> None:
        self.state = state
        self.mirror = mirror
        self.token = token
        self.read_switch = read_switch
        self.metrics = metrics
        self.read_timeout_s = read_timeout_s
        self.bind = bind
        self.routes: dict[str, Route] = {
            "/status": Route({}, self._status),
            "/policy": Route({}, self._policy),
            "/topology": Route({}, self._topology),
        }
        if metrics is not None:
            self.routes["/metrics"] = Route({}, self._metrics)
        for path, (keys, doc) in Dashboard(state).routes().items():
            self.routes[path] = Route({k: () for k in keys}, _board_answer(doc))
        for path in PUBLIC:
            self.routes[path] = Route({}, _page)

    def __call__(self, environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        try:
            ans = self.answer(environ)
        except Exception:  # a bug must not become a traceback on the wire or a dead thread
            log.exception("API request %s failed", environ.get("PATH_INFO"))
            ans = _error("500 Internal Server Error", "internal error (see the daemon's log)")
        headers = [("Content-Type", ans.kind), ("Content-Length", str(len(ans.body))),
                   ("Cache-Control", "no-store"), NOSNIFF, *ans.headers]
        start(ans.status, headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [ans.body]

    def answer(self, environ: dict[str, Any]) -> Answer:
        path = environ.get("PATH_INFO", "/").rstrip("/") or "/"
        refused = self._refusal(environ, path)
        if refused is not None:
            return refused
        method = environ.get("REQUEST_METHOD", "GET")
        if path in COMMANDS:
            return self._command(environ, COMMANDS[path], method)
        found = self.route(path)
        if found is None:
            return _error("404 Not Found", f"no such path {path!r}")
        if method not in ("GET", "HEAD"):
            return _error("405 Method Not Allowed", f"{method} not allowed",
                          (("Allow", "GET, HEAD"),))
        query, problem = _parse_query(environ.get("QUERY_STRING", ""), found.query)
        if problem:
            return _error("400 Bad Request", problem)
        return found.answer(query)

    def route(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        head, _, name = path[1:].partition("/")
        if head == "flows" and name and "/" not in name:
            return Route({"source": ("intent", "switch")}, lambda q: self._flows(name, q))
        return None

    # ---- the gate --------------------------------------------------------------------
    def _refusal(self, environ: dict[str, Any], path: str) -> Answer | None:
        """Why a request is refused before routing (None: it may go on)."""
        if self.token is None:
            refused = self._misdirected(environ)
            if refused is not None:
                return refused
        elif path not in PUBLIC and not check_token(self.token,
                                                    environ.get("HTTP_AUTHORIZATION")):
            return _error("401 Unauthorized", "a valid 'Authorization: Bearer TOKEN' is needed",
                          (("WWW-Authenticate", 'Bearer realm="sdnctl"'),))
        bad_length = content_length_problem(environ.get("CONTENT_LENGTH") or "0")
        if bad_length is not None:
            return _error(*bad_length)
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return _error("411 Length Required", "chunked bodies are not accepted")
        return None

    def _misdirected(self, environ: dict[str, Any]) -> Answer | None:
        """Without a token: a request whose Host or Origin is not this server."""
        bind_host, bind_port = self.bind or (None, int(environ.get("SERVER_PORT") or 80))
        host = environ.get("HTTP_HOST")
        if host is not None and not host_allowed(host, bind_host, bind_port):
            return _error("421 Misdirected Request",
                          f"Host {host[:100]!r} is not this server: use "
                          f"{bind_host or '127.0.0.1'}:{bind_port}")
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            parts = urllib.parse.urlsplit(origin) if origin.isascii() else None
            if (parts is None or parts.scheme != "http"
                    or not host_allowed(parts.netloc, bind_host, bind_port)):
                return _error("403 Forbidden", "cross-origin requests are refused")
        return None

    def _command(self, environ: dict[str, Any], action: str, method: str) -> Answer:
        """A POST command: its JSON object to the runner (gate passed already)."""
        if method != "POST":
            return _error("405 Method Not Allowed", f"{method} not allowed",
                          (("Allow", "POST"),))
        kind = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if kind != JSON:
            return _error("415 Unsupported Media Type", "send the request as application/json")
        if environ.get("QUERY_STRING"):
            return _error("400 Bad Request", "a command takes no query")
        if self.mirror is None:
            return _error("503 Service Unavailable", "mirror control is not available")
        size = int(environ.get("CONTENT_LENGTH") or 0)  # checked by the gate
        try:
            body = json.loads(environ["wsgi.input"].read(size) or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            return _error("400 Bad Request", f"the body is not JSON: {exc}")
        if not isinstance(body, dict):
            return _error("400 Bad Request", "the body must be a JSON object")
        status, doc = self.mirror(action, body)
        return _json(status, doc)

    # ---- the paths -------------------------------------------------------------------
    def _status(self, _q: dict[str, str]) -> Answer:
        return _json("200 OK", self.state.status())

    def _policy(self, _q: dict[str, str]) -> Answer:
        with self.state.lock:  # a reload swaps it
            return Answer("200 OK", self.state.policy_info.text.encode(), YAML)

    def _topology(self, _q: dict[str, str]) -> Answer:
        with self.state.lock:
            info = self.state.topology_info
        if info is None:
            return _error("503 Service Unavailable", "no topology file loaded")
        return Answer("200 OK", info.text.encode(), YAML)

    def _metrics(self, _q: dict[str, str]) -> Answer:
        assert self.metrics is not None
        return Answer("200 OK", self.metrics().encode(), PROMETHEUS)

    def _flows(self, name: str, q: dict[str, str]) -> Answer:
        with self.state.lock:
            sw = self.state.switches.get(name)
            desired = sw.desired if sw else None
        if sw is None:
            return _error("404 Not Found", f"no switch {name!r}")
        if q.get("source", "intent") == "switch":
            return self._live_flows(name)
        if desired is None:
            return _error("503 Service Unavailable", "no compiled flows")
        return _json("200 OK", flowset_to_json(desired))

    def _live_flows(self, name: str) -> Answer:
        if self.read_switch is None:
            return _error("503 Service Unavailable", "live reads are not available")
        try:
            return _json("200 OK", self.read_switch(name, self.read_timeout_s))
        except SwitchReadError as exc:
            return _error(exc.status, str(exc))


def _board_answer(doc: Callable[[dict[str, str]], object]) -> Callable[[dict[str, str]], Answer]:
    """A dashboard document as an answer: a bad query is the client's 400."""

    def run(q: dict[str, str]) -> Answer:
        try:
            return _json("200 OK", doc(q))
        except BadQuery as exc:
            return _error("400 Bad Request", str(exc))

    return run


def _page(_q: dict[str, str]) -> Answer:
    return Answer("200 OK", page().body, HTML, page().headers)


def make_api(
    state: ControllerState,
    token: str | None = None,
    read_switch: SwitchReader | None = None,
    metrics: MetricsRenderer | None = None,
    read_timeout_s: float = 5.0,
    bind: tuple[str, int] | None = None,
    mirror: MirrorRunner | None = None,
) -> WsgiApp:
    """The API as a WSGI app (`StatusApi`)."""
    return StatusApi(state, token, read_switch, metrics, read_timeout_s, bind, mirror)


def _parse_query(text: str, allowed: dict[str, tuple[str, ...]]) -> tuple[dict[str, str], str]:
    """(query, problem): every key known, given once, with an allowed value."""
    if not text:
        return {}, ""
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True,
                                       max_num_fields=len(allowed) + 1)
    except ValueError as exc:
        return {}, f"bad query {text!r}: {exc}"
    query: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            return {}, f"unknown query parameter {key!r} (known: {known})"
        if key in query:
            return {}, f"query parameter {key!r} given twice"
        if allowed[key] and value not in allowed[key]:
            return {}, f"{key}={value!r}: expected one of {', '.join(allowed[key])}"
        query[key] = value
    return query, ""


def start_api(
    state: ControllerState,
    host: str,
    port: int,
    token: str | None = None,
    read_switch: SwitchReader | None = None,
    metrics: MetricsRenderer | None = None,
    limits: Limits | None = None,
    mirror: MirrorRunner | None = None,
) -> HttpServer:
    """Serve the API from its own thread (sdnctl/httpserver.py); `shutdown()` +
    `server_close()` stop it. Binding fails here, in the caller."""
    server = HttpServer(host, port, limits)
    app = make_api(state, token, read_switch, metrics, bind=(host, server.server_port),
                   mirror=mirror)
    server.start(app, name="status-api")
    return server
