"""os-ken's OpenFlow listener, under the daemon's control while it runs.

os-ken opens its listener inside one of its own threads and keeps no handle on it:
a port taken at that moment only kills that thread (the daemon would run deaf),
and nothing ever closes the listening socket or the switches' connections (a
stopped daemon would leave them open). `openflow_listener()` installs, for the
duration of a `with` block, a listener class that

- records the listener it opened, or why it could not (`wait_listening`);
- keeps every accepted connection, so that leaving the block closes them and the
  listening socket (their threads then end: os-ken's receive loop sees the close);
- with TLS, counts and logs refused handshakes (`sdnctl.tls.HandshakeWatch`) and
  bounds them: os-ken's connection threads swallow every exception, so a switch
  with a wrong certificate would be refused without a word, and a peer stalling
  mid-handshake would hold its thread forever.

os-ken's own class is put back when the block ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from sdnctl.tls import HANDSHAKE_TIMEOUT_S, HandshakeWatch


class Listeners:
    """The listener os-ken opened in the block and the connections it accepted."""

    def __init__(self, watch: HandshakeWatch | None = None,
                 handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S) -> None:
        self.watch = watch
        self.handshake_timeout_s = handshake_timeout_s
        self.error: OSError | None = None  # why the listener could not open
        self._sockets: list[socket.socket] = []  # listening
        self._connections: set[socket.socket] = set()
        self._settled = threading.Event()  # opened or failed
        self._lock = threading.Lock()
        self.closed = False

    def wait_listening(self, timeout_s: float) -> bool:
        """True once os-ken listens; False if it did not within `timeout_s`. Raises
        the OSError that kept it from listening (e.g. the port is taken)."""
        if not self._settled.wait(timeout_s):
            return False
        if self.error is not None:
            raise self.error
        return True

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
        self._settled.set()

    def failed(self, exc: OSError) -> None:
        # A copy without the traceback: its frames hold the socket that failed to bind,
        # which would stay open as long as the error is kept.
        self.error = OSError(exc.errno, exc.strerror)
        self._settled.set()

    def accepted(self, sock: socket.socket) -> bool:
        """Keep `sock` to close it at the end; False (and closed) if that has come."""
        with self._lock:
            if not self.closed:
                self._connections.add(sock)
                return True
        _shut(sock)
        return False

    def ended(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)

    def close(self) -> None:
        """Close the listening socket and every connection it accepted."""
        with self._lock:
            self.closed = True
            socks = self._sockets + list(self._connections)
            self._sockets, self._connections = [], set()
        for sock in socks:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # shutdown() wakes a thread blocked in accept() or recv() on it; close() alone does not.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def openflow_listener(watch: HandshakeWatch | None = None,
                      handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S) -> Iterator[Listeners]:
    """Within the block, os-ken listens through a class that reports to the yielded
    `Listeners`; on leaving it, everything that class opened is closed."""
    from os_ken.base import app_manager  # noqa: F401 (imports controller without a cycle)
    from os_ken.controller import controller
    from os_ken.lib import hub

    listeners = Listeners(watch, handshake_timeout_s)
    original = controller.StreamServer

    class TrackedStreamServer(original):  # type: ignore[misc, valid-type]
        def __init__(self, listen_info: Any, handle: Any = None, backlog: Any = None,
                     spawn: str = "default", **ssl_args: Any) -> None:
            local = threading.local()

            def session(sock: Any, addr: Any) -> Any:
                local.handshaken = True
                return handle(sock, addr)

            try:
                super().__init__(listen_info, session if ssl_args else handle, backlog, spawn,
                                 **ssl_args)
            except OSError as exc:
                self.server = None  # serve_forever returns at once: the daemon says why
                listeners.failed(exc)
                return
            listeners.opened(self.server)
            serve = self.handle
            tls = bool(ssl_args)

            def tracked(sock: Any, addr: Any) -> Any:
                if not listeners.accepted(sock):
                    return None
                try:
                    if not tls:
                        return serve(sock, addr)
                    local.handshaken = False
                    sock.settimeout(listeners.handshake_timeout_s)
                    try:
                        return serve(sock, addr)
                    except Exception as exc:
                        if local.handshaken or listeners.watch is None:
                            raise
                        listeners.watch.refuse(f"{addr[0]}:{addr[1]}",
                                               str(exc) or type(exc).__name__)
                        sock.close()
                        return None
                finally:
                    listeners.ended(sock)

            self.handle = tracked

        def serve_forever(self) -> None:
            while self.server is not None and not listeners.closed:
                try:
                    sock, addr = self.server.accept()
                except OSError:
                    if listeners.closed:
                        return  # closed by the daemon: the end, not an error
                    raise
                hub.spawn(self.handle, sock, addr)

    controller.StreamServer = TrackedStreamServer
    try:
        yield listeners
    finally:
        controller.StreamServer = original
        listeners.close()
