"""The status API's HTTP server: h11 parses HTTP/1.1, one asyncio loop in its own
thread does all the socket I/O, a bounded pool of threads runs the WSGI app.

h11 (python-hyper; the parser under httpcore/httpx and one of uvicorn's) is a
maintained, strict, sans-I/O HTTP/1.1 implementation: request line and header
syntax, Content-Length (ASCII digits, at most 20, conflicting values refused),
Transfer-Encoding, keep-alive and pipelining are its. What a server adds around a
parser is here, because none of the servers measured could hold the limits below
without patching their internals (docs/decisions.md, "The API's HTTP server").
The loop is asyncio's own (epoll): an open connection costs about 3.5 KB (no
thread, no buffer of its own: every socket is read into one shared buffer) and
nothing per loop turn while it is quiet; a slow client's bytes are only appended
until a newline comes. It runs beside os-ken's threads; nothing is monkey-patched.

Limits (`Limits`):

- connections: at most `connections` open (12,288 by default, about 40 MB at the
  cap); the soft file limit is raised for them as far as the hard one allows,
  else the cap is lowered to fit. A connection past the cap closes the oldest one
  that has not delivered a whole request yet (idle, slow, half-sent or closing),
  so a flood of idle or slow connections cannot lock out a client that sends its
  request at once; only when every open connection has a request in the app is
  the newcomer answered 503;
- deadlines, each a total and not a silence: the request line and headers must
  arrive within `header_s` of the connection opening (or of the previous answer on
  a kept-alive connection), the body within `body_s` of the headers, and the
  client must take the answer within `send_s`. Past one it gets 408 (or, idle
  between requests, a plain close);
- sizes: request line and headers at most `max_header_bytes` (414 when the
  request line alone is that long, else 431), a body at most `max_body_bytes`
  (413, refused unread); chunked bodies are refused (411);
- work: `workers` threads run the app, one request per connection at a time;
  with `queued` more requests waiting for them, another is answered 503.

Every answer the server makes itself is JSON (`{"error": "..."}`), with
`X-Content-Type-Options: nosniff` and `Cache-Control: no-store`, and closes the
connection (our side first, reading what the client still sends until it closes
too, so that a reset does not destroy the answer). The app's answers get
`nosniff` too if they lack it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http
import io
import json
import logging
import os
import resource
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import h11

log = logging.getLogger("api.http")

StartResponse = Callable[..., object]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = list[tuple[bytes, bytes]]

NOSNIFF = (b"X-Content-Type-Options", b"nosniff")
MAX_MESSAGE = 200  # characters of a client's bytes quoted back in an error
ACCEPT_BATCH = 64  # connections accepted per turn of the loop


@dataclass(frozen=True, slots=True)
class Limits:
    workers: int = 8  # threads running the app (a live switch read holds one up to 5 s)
    queued: int = 256  # requests waiting for a worker; one more is answered 503
    connections: int = 12_288  # open at once; past it the oldest without a request goes
    backlog: int = 1024  # the kernel's queue of connections not accepted yet
    header_s: float = 10.0  # request line and headers, in total
    body_s: float = 10.0  # the body after the headers, in total
    send_s: float = 10.0  # the client takes the answer (and, closing, closes)
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 16 * 1024


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}, separators=(",", ":")).encode()


def error_response(status: int, message: str, head: bool = False,
                   extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A whole answer the server makes itself, closing the connection. Composed
    here rather than through h11: it is fixed text around a JSON body (the client's
    bytes appear only inside the JSON string), and it is what a flood of slow or
    broken clients gets, so it must be cheap."""
    body = error_body(message)
    try:
        reason = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    lines = [b"HTTP/1.1 %d %s" % (status, reason), b"Content-Type: application/json",
             b"Content-Length: %d" % len(body), b"Cache-Control: no-store",
             b"X-Content-Type-Options: nosniff", b"Connection: close",
             *(name + b": " + value for name, value in extra)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body)


def connection_room(wanted: int) -> int:
    """`wanted` connections, or as many as the file limit allows: the soft limit is
    raised towards the hard one as far as `wanted` needs, and descriptors are left
    to the rest of the process (an eighth of the limit, at least 256: switches,
    OVSDB, files). Past the limit accept() would fail and asyncio would stop
    accepting for a second, the authenticated client included."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = 64

    def room(limit: int) -> int:
        return limit - used - max(256, limit // 8)

    if soft != resource.RLIM_INFINITY and room(soft) < wanted:
        want = used + wanted + max(256, (used + wanted) // 7) + 1
        new = want if hard == resource.RLIM_INFINITY else min(hard, want)
        if new > soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
                log.info("API: file limit raised from %d to %d", soft, new)
                soft = new
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, room(soft)))


class HttpServer:
    """Bound and listening once constructed (so a busy port fails at once, in the
    caller); `start(app)` serves; `shutdown()` + `server_close()` stop it."""

    def __init__(self, host: str, port: int, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(self.limits.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.socket = sock
        self.server_address: tuple[Any, ...] = sock.getsockname()
        self.server_name = host
        self.server_port: int = self.server_address[1]
        self.max_connections = connection_room(self.limits.connections)
        if self.max_connections < self.limits.connections:
            log.warning("API: at most %d connections (the file limit allows no more)",
                        self.max_connections)
        self.app: WsgiApp | None = None
        self.pending = 0  # requests handed to the workers, not answered yet
        self.rbuf = bytearray(64 * 1024)  # every socket is read into this, in turn
        self.rbuf_view = memoryview(self.rbuf)
        self.inflight: set[asyncio.Future[Any]] = set()
        self.open: set[_Connection] = set()
        self.waiting: dict[_Connection, None] = {}  # no whole request yet, oldest first
        self.stopping = False
        self.counts = {"accepted": 0, "evicted": 0, "refused": 0, "timed_out": 0, "busy": 0}
        self._last_warning = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None

    # -- lifecycle (any thread) --

    def start(self, app: WsgiApp, name: str = "http") -> None:
        self.app = app
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.limits.workers, thread_name_prefix=f"{name}-worker")
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.set_exception_handler(_loop_exception)
            try:
                # asyncio accepts up to `backlog` connections per turn of the loop and
                # listens with it: a small batch keeps a turn short under a connection
                # flood, then the listen queue is set back to its size.
                self._server = loop.run_until_complete(loop.create_server(
                    lambda: _Connection(self), sock=self.socket, backlog=ACCEPT_BATCH))
                self.socket.listen(self.limits.backlog)
            except BaseException as exc:  # noqa: BLE001 (handed to the caller)
                failed.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                for conn in list(self.open):
                    conn.abort()
                for future in list(self.inflight):  # answers for nobody: not delivered
                    future.cancel()
                loop.run_until_complete(asyncio.sleep(0))  # let the aborts finish
                loop.close()

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        ready.wait(10.0)
        if failed:
            raise failed[0]

    def shutdown(self) -> None:
        """Stop serving: no new connections, open ones closed, the workers let go."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._stop)
            thread.join(5.0)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)

    def server_close(self) -> None:
        self.socket.close()

    def _stop(self) -> None:
        self.stopping = True
        if self._server is not None:
            self._server.close()
        assert self._loop is not None
        self._loop.stop()

    # -- the loop's side --

    def admit(self, conn: _Connection) -> bool:
        """A new connection: past the cap the oldest one still without a whole
        request makes room for it; if there is none, the newcomer is refused."""
        self.counts["accepted"] += 1
        self.open.add(conn)
        if len(self.open) <= self.max_connections:
            return True
        victim = next(iter(self.waiting), None)
        if victim is None:
            self.counts["refused"] += 1
            self._warn("API: %d connections open, all busy: refusing new ones (503)",
                       len(self.open))
            return False
        self.counts["evicted"] += 1
        self._warn("API: at the cap of %d connections: closing the oldest that have not "
                   "sent a whole request", self.max_connections)
        victim.evict()
        return True

    def forget(self, conn: _Connection) -> None:
        self.open.discard(conn)
        self.waiting.pop(conn, None)

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 60.0:
            self._last_warning = now
            log.warning(message + " (%s)", *args,
                        ", ".join(f"{k} {v}" for k, v in self.counts.items()))


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    exc = context.get("exception")
    if isinstance(exc, OSError):  # e.g. accept() out of descriptors: not our bug
        log.warning("API: %s: %s", context.get("message"), exc)
    else:
        loop.default_exception_handler(context)


def _call_app(app: WsgiApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """In a worker thread: the app's whole answer."""
    got: dict[str, Any] = {}
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and got:
            raise exc_info[1].with_traceback(exc_info[2])
        got["status"], got["headers"] = status, headers
        return chunks.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if "status" not in got:
        raise RuntimeError("the app did not call start_response")
    return got["status"], got["headers"], b"".join(chunks)


# States of a connection.
REQUEST, BODY, APP, SEND, CLOSING, CLOSED = range(6)


class _Connection(asyncio.BufferedProtocol):
    """One client connection, driven by the loop; one request at a time."""

    __slots__ = ("server", "loop", "transport", "http", "state", "timer", "request", "body",
                 "inbox", "eof", "got_bytes", "line_seen", "write_paused")

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.http = h11.Connection(h11.SERVER,
                                   max_incomplete_event_size=server.limits.max_header_bytes)
        self.state = REQUEST
        self.timer: asyncio.TimerHandle | None = None
        self.request: h11.Request | None = None
        self.body: list[bytes] = []
        self.inbox = bytearray()  # received, not yet handed to h11
        self.eof = 0  # 1: the client closed its side, 2: h11 knows
        self.got_bytes = False  # of the current request
        self.line_seen = False  # its request line is whole
        self.write_paused = False

    # -- asyncio's callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=0)  # pause_writing until all is sent
        if not self.server.admit(self):
            self.fail(503, "too many connections, all busy; try again",
                      ((b"Retry-After", b"1"),))
            return
        self._wait_for_request()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.rbuf_view  # shared: the loop reads one socket at a time

    def buffer_updated(self, nbytes: int) -> None:
        self.got_bytes = True
        if self.state not in (REQUEST, BODY):
            return  # closing: what the client still sends is read and dropped
        try:
            rbuf = self.server.rbuf
            self.inbox += rbuf[:nbytes]
            # A head ends with a newline: until one comes, h11 has nothing to do
            # (a slow client's bytes cost an append), unless it grows too big.
            if (self.state == BODY or rbuf.find(b"\n", 0, nbytes) >= 0
                    or len(self.inbox) > self.server.limits.max_header_bytes):
                self._advance()
        except Exception:  # a bug here must cost one connection, not the loop
            log.exception("API: handling a request failed")
            self.abort()

    def eof_received(self) -> bool:
        if self.state == CLOSING:
            assert self.transport is not None
            self.transport.close()  # once our answer is out
        elif self.state in (REQUEST, BODY):
            try:
                self.eof = 1
                self._advance()
            except Exception:
                log.exception("API: handling a request failed")
                self.abort()
        return True  # half-closed: an answer may still go out

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.state == SEND:
            self._next_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        self._cancel_timer()
        self.server.forget(self)

    # -- reading a request --

    def _wait_for_request(self) -> None:
        self.state = REQUEST
        self.request, self.body = None, []
        self.server.waiting[self] = None
        self._set_timer(self.server.limits.header_s)

    def _advance(self) -> None:
        while self.state in (REQUEST, BODY):
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if status == 431 and not self.line_seen:
                    self.fail(414, "request line too long")
                elif status == 431:
                    self.fail(431, "request headers too large")
                elif status == 501:  # a Transfer-Encoding h11 does not know
                    self.fail(411, "only bodies with a Content-Length are accepted")
                else:
                    self.fail(status, f"bad request: {str(exc)[:MAX_MESSAGE]}")
                return
            if event is h11.NEED_DATA and self.inbox:
                self._feed()
                continue
            if event is h11.NEED_DATA and self.eof == 1:
                self.eof = 2
                self.http.receive_data(b"")  # no more is coming
                continue
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._headers(event)
            elif isinstance(event, h11.Data):
                self.body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self.close()

    def _feed(self) -> None:
        """Hand h11 the next slice of what came in. In slices, because h11 checks its
        size limit only while a head is incomplete: a whole oversized head handed over
        at once would pass."""
        size = self.server.limits.max_header_bytes
        data = bytes(self.inbox[:size])
        del self.inbox[:size]
        if not self.line_seen and b"\n" in data:
            self.line_seen = True
        self.http.receive_data(data)

    def _headers(self, request: h11.Request) -> None:
        self.request = request
        self.line_seen = True
        # h11 measures only what it still waits for: a head that came in one read
        # is whole, so its size is checked here.
        limit = self.server.limits.max_header_bytes
        line = len(request.method) + len(request.target) + 11
        if line > limit:
            self.fail(414, "request line too long")
            return
        if line + sum(len(n) + len(v) + 4 for n, v in request.headers.raw_items()) > limit:
            self.fail(431, "request headers too large")
            return
        if request.http_version not in (b"1.0", b"1.1"):
            self.fail(505, "only HTTP/1.0 and HTTP/1.1 are served")
            return
        for name, value in request.headers:
            if name == b"transfer-encoding":
                self.fail(411, "chunked bodies are not accepted")
                return
            if name == b"content-length" and int(value) > self.server.limits.max_body_bytes:
                self.fail(413, f"body over {self.server.limits.max_body_bytes} bytes")
                return
        if not (request.target.startswith(b"/") or request.target.startswith(b"http://")):
            self.fail(400, "bad request target")
            return
        self.state = BODY
        self._set_timer(self.server.limits.body_s)
        if self.http.they_are_waiting_for_100_continue:
            self._write(self.http.send(h11.InformationalResponse(status_code=100, headers=[])))

    def _dispatch(self) -> None:
        """A whole request: to a worker, or 503 when too many wait for one."""
        assert self.request is not None and self.transport is not None
        srv = self.server
        srv.waiting.pop(self, None)
        self._cancel_timer()
        self.state = APP
        self.transport.pause_reading()
        if srv.pending >= srv.limits.workers + srv.limits.queued or srv.executor is None:
            srv.counts["busy"] += 1
            self.fail(503, "too many requests at once; try again", ((b"Retry-After", b"1"),))
            return
        srv.pending += 1
        try:
            future = self.loop.run_in_executor(srv.executor, _call_app, srv.app,
                                               self._environ(self.request))
        except RuntimeError:  # the workers are gone: shutting down
            srv.pending -= 1
            self.abort()
            return
        srv.inflight.add(future)
        future.add_done_callback(self._answered)

    def _environ(self, request: h11.Request) -> dict[str, Any]:
        target = request.target
        if target.startswith(b"http://"):  # absolute form: the path is what counts
            target = b"/" + target[7:].partition(b"/")[2]
        path, _, query = target.partition(b"?")
        path = path.partition(b"#")[0]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("latin-1"),
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": self.server.server_name,
            "SERVER_PORT": str(self.server.server_port),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("latin-1"),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(b"".join(self.body)),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        assert self.transport is not None
        peer = self.transport.get_extra_info("peername")
        if peer:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(peer[0]), str(peer[1])
        for raw, value in request.headers.raw_items():
            name = raw.decode("latin-1").upper()
            if "_" in name:  # Content_Length would pose as Content-Length: dropped
                continue
            key = name.replace("-", "_")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        return environ

    # -- answering --

    def _answered(self, future: asyncio.Future[Any]) -> None:
        self.server.pending -= 1
        self.server.inflight.discard(future)
        if self.state != APP:
            return  # the client left meanwhile
        if future.cancelled():
            self.abort()
            return
        exc = future.exception()
        if exc is not None:
            log.error("API: the app failed", exc_info=exc)
            self.fail(500, "internal error (see the daemon's log)")
            return
        try:
            self._respond(*future.result())
        except Exception:
            log.exception("API: sending an answer failed")
            self.abort()

    def _respond(self, status: str, app_headers: list[tuple[str, str]], body: bytes) -> None:
        assert self.request is not None
        head = self.request.method == b"HEAD"
        headers: Headers = []
        for name, value in app_headers:
            low = name.lower()
            if low in ("connection", "transfer-encoding") or (low == "content-length"
                                                               and not head):
                continue
            headers.append((name.encode("latin-1"), value.encode("latin-1")))
        if not any(n.lower() == b"x-content-type-options" for n, _ in headers):
            headers.append(NOSNIFF)
        if not head:
            headers.append((b"Content-Length", str(len(body)).encode()))
        if self.server.stopping:
            headers.append((b"Connection", b"close"))
        code = int(status[:3])
        out = self.http.send(h11.Response(status_code=code, headers=headers,
                                          reason=status[4:].encode("latin-1")))
        if body and not head:
            out += self.http.send(h11.Data(data=body))
        out += self.http.send(h11.EndOfMessage())
        self._write(out)
        if self.http.our_state is not h11.DONE or self.http.their_state is not h11.DONE:
            self.close()
        elif self.write_paused:  # the client has not taken it all yet
            self.state = SEND
            self._set_timer(self.server.limits.send_s)
        else:
            self._next_request()

    def _next_request(self) -> None:
        assert self.transport is not None
        self._cancel_timer()
        self.http.start_next_cycle()
        pipelined = self.http.trailing_data[0]
        self.got_bytes = bool(pipelined or self.inbox)
        self.line_seen = b"\n" in pipelined
        self._wait_for_request()
        self.transport.resume_reading()
        self._advance()

    def fail(self, status: int, message: str,
             extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        """Answer `status` with a JSON reason, then close."""
        if self.state in (CLOSING, CLOSED):
            return
        if self.http.our_state in (h11.IDLE, h11.SEND_RESPONSE):  # nothing sent yet
            head = self.request is not None and self.request.method == b"HEAD"
            self._write(error_response(status, message, head, extra))
        self.close()

    # -- closing --

    def close(self) -> None:
        """Our side ends once what was written is sent; what the client still sends
        is read and dropped until it closes too (closing on unread bytes would reset
        the connection, and a reset can destroy the answer before the client reads
        it). A client that does not take the answer and close within the send
        deadline is dropped; until then the connection may be evicted."""
        if self.state in (CLOSING, CLOSED):
            return
        self.state = CLOSING
        self.server.waiting.pop(self, None)
        self.server.waiting[self] = None  # the newest to evict
        transport = self.transport
        if transport is not None:
            if self.eof or not transport.can_write_eof():
                transport.close()
            else:
                transport.write_eof()
                transport.resume_reading()
        self._set_timer(self.server.limits.send_s)

    def abort(self) -> None:
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self._cancel_timer()
        self.server.forget(self)
        if self.transport is not None:
            self.transport.abort()

    def evict(self) -> None:
        """Make room: a client mid-request is cut, an idle one closed politely."""
        if self.got_bytes or self.state == CLOSING:
            self.abort()
        else:
            self.state = CLOSED
            self._cancel_timer()
            self.server.forget(self)
            if self.transport is not None:
                self.transport.close()

    def _expired(self) -> None:
        self.timer = None
        if self.state in (REQUEST, BODY):
            self.server.counts["timed_out"] += 1
            if self.got_bytes:
                self.fail(408, "request not received in time")
            else:
                self.close()  # idle between requests: nothing to answer
        else:  # SEND or CLOSING: the client does not take what it was sent
            self.abort()

    def _set_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self.timer = self.loop.call_later(seconds, self._expired)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
