"""Where the daemon listens, checked before anything starts: the OpenFlow listener
(`--listen`, plain or TLS), the status API (`--api`) and its token. A bad value is a
ValueError naming the option (exit 2); an address that cannot be used, an OSError
(exit 1)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from sdnctl.apitoken import ENV as TOKEN_ENV
from sdnctl.apitoken import TokenError, is_loopback, loosely_protected, read_token
from sdnctl.tls import Listen, TlsFiles, check_tls, parse_listen

log = logging.getLogger("daemon")


def parse_address(text: str, what: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::1]:port`) -> (host, port); ValueError with a clear message."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} {text!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def check_bindable(host: str, port: int, what: str) -> None:
    """Fail early and clearly on a taken port (os-ken's listener would die in a green thread)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen for {what} on {host}:{port}: {exc.strerror}") from exc


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the daemon listens, checked before anything starts."""

    listen: Listen
    tls: TlsFiles | None
    api_host: str
    api_port: int
    api_token: str | None


def check_endpoints(listen: str, api: str, api_token_file: str | None,
                    tls: TlsFiles | None) -> Endpoints:
    """ValueError (bad input: exit 2) or OSError (address unusable: exit 1), with a message
    naming the option, before anything listens."""
    of = parse_listen(listen)
    check_tls(of, tls)
    api_host, api_port = parse_address(api, "--api")
    try:
        token = read_token(api_token_file)
    except TokenError as exc:
        raise ValueError(str(exc)) from None
    if token is None and not is_loopback(api_host):
        raise ValueError(
            f"--api {api}: the status API would be reachable from other machines without "
            f"a token; give one (--api-token-file FILE or {TOKEN_ENV}=...) or listen on "
            "127.0.0.1")
    if api_token_file and loosely_protected(api_token_file):
        log.warning("%s can be read by other users (chmod 600 it)", api_token_file)
    # OpenFlow before the start-up compile (minutes on a big network): a taken port fails
    # now. The API's port is taken by binding it (start_api), so it has no check here.
    check_bindable(of.host, of.port, "OpenFlow")
    return Endpoints(of, tls if of.scheme == "ssl" else None, api_host, api_port, token)
