"""Where the daemon listens for switches, and OpenFlow over TLS.

`--listen` takes `tcp:HOST:PORT`, `ssl:HOST:PORT` (the spelling `ovs-vsctl
set-controller` uses) or plain `HOST:PORT` (tcp). With `ssl:` the daemon needs its
private key, its certificate and the CA that signed the switches' certificates:
a switch must present a certificate from that CA (mutual TLS) or its connection
is refused during the handshake, before any OpenFlow message is read.

os-ken starts the listener from its own configuration (`ctl_privkey`,
`ctl_cert`, `ca_certs`, `ofp_ssl_listen_port`): `configure_os_ken` sets those.
When a key and certificate are set, os-ken listens with TLS only, never beside
plain TCP. The files are checked here first, with Python's own `ssl` module, so
that a wrong path or a key that does not fit the certificate stops `sdnctl run`
with a clear message instead of killing os-ken's listener thread later.

os-ken says nothing when it refuses a handshake: the daemon's listener
(sdnctl/app/listener.py) reports each to a `HandshakeWatch`, which counts them and
logs one line per 10 s, naming the last peer and the reason.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SCHEMES = ("tcp", "ssl")
HANDSHAKE_TIMEOUT_S = 10.0

log = logging.getLogger("tls")


@dataclass(frozen=True, slots=True)
class Listen:
    scheme: str  # "tcp" or "ssl"
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}:{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The controller's key and certificate, and the CA its switches' certificates chain to."""

    privkey: str
    cert: str
    ca_cert: str


def parse_listen(text: str) -> Listen:
    """`[tcp:|ssl:]HOST:PORT` (IPv6 as `[::1]`) -> Listen; ValueError with a clear message."""
    scheme, sep, rest = text.partition(":")
    if sep and scheme in SCHEMES:
        address = rest
    else:
        scheme, address = "tcp", text
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen {text!r}: expected [tcp:|ssl:]HOST:PORT")
    return Listen(scheme, host.strip("[]") or "0.0.0.0", int(port))


def check_tls(listen: Listen, tls: TlsFiles | None) -> None:
    """ValueError unless the TLS options fit the listener and the files load."""
    if listen.scheme == "tcp":
        if tls is not None:
            raise ValueError("--ctl-privkey/--ctl-cert/--ca-cert need --listen ssl:HOST:PORT")
        return
    if tls is None or not (tls.privkey and tls.cert and tls.ca_cert):
        raise ValueError(f"--listen {listen}: needs --ctl-privkey, --ctl-cert and --ca-cert "
                         "(switches must present a certificate from that CA)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(tls.cert, tls.privkey)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--ctl-cert {tls.cert} / --ctl-privkey {tls.privkey}: {exc}") from None
    try:
        ctx.load_verify_locations(tls.ca_cert)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--ca-cert {tls.ca_cert}: {exc}") from None


# Switch liveness: an OpenFlow echo every ECHO_INTERVAL_S; a switch that leaves
# ECHO_MISSES + 1 of them unanswered is dropped (seen dead within
# (ECHO_MISSES + 1) * ECHO_INTERVAL_S, whatever else the daemon is sending). The
# echoes also end a connection whose peer went away: os-ken's send thread waits on
# its queue until something is sent, and only then notices the closed socket and
# lets the connection (and its two threads) go.
ECHO_INTERVAL_S = 0.75
ECHO_MISSES = 3


def configure_os_ken(conf: Any, listen: Listen, tls: TlsFiles | None) -> None:
    """Set os-ken's listener and liveness options (`conf`: os_ken.cfg.CONF, parsed)."""
    conf.set_override("echo_request_interval", ECHO_INTERVAL_S)
    conf.set_override("maximum_unreplied_echo_requests", ECHO_MISSES)
    conf.set_override("ofp_listen_host", listen.host)
    if listen.scheme == "ssl":
        assert tls is not None
        conf.set_override("ofp_ssl_listen_port", listen.port)
        conf.set_override("ctl_privkey", tls.privkey)
        conf.set_override("ctl_cert", tls.cert)
        conf.set_override("ca_certs", tls.ca_cert)
    else:
        conf.set_override("ofp_tcp_listen_port", listen.port)


class HandshakeWatch:
    """Counts refused TLS handshakes; logs one line (with the last peer and reason) per
    `every_s`, however often a misconfigured switch retries."""

    def __init__(self, every_s: float = 10.0,
                 on_refused: Callable[[], None] | None = None) -> None:
        self.every_s = every_s
        self.on_refused = on_refused
        self.refused = 0
        self._logged_at = float("-inf")
        self._since_log = 0
        self._lock = threading.Lock()

    def refuse(self, peer: str, reason: str) -> None:
        with self._lock:
            self.refused += 1
            self._since_log += 1
            now = time.monotonic()
            quiet = now - self._logged_at < self.every_s
            if not quiet:
                count, self._since_log, self._logged_at = self._since_log, 0, now
        if self.on_refused is not None:
            self.on_refused()
        if not quiet:
            log.warning("OpenFlow TLS handshake refused (%d since the last report), last from "
                        "%s: %s", count, peer, reason)
