"""The API token rule, shared by the daemon and its clients.

The status API listens on 127.0.0.1 unless told otherwise. Binding it to any
address that is not loopback needs a token (`--api-token-file FILE`, or the
environment variable SDNCTL_API_TOKEN); with a token configured, every request
needs `Authorization: Bearer TOKEN`, loopback included. Clients (`sdnctl status`,
`verify`, `plan`, the lab) take the same file option or the same variable.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat

ENV = "SDNCTL_API_TOKEN"


class TokenError(ValueError):
    """The token cannot be used (unreadable, empty); the message says why."""


def read_token(path: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The token from `path` (whitespace around it stripped), else from $SDNCTL_API_TOKEN,
    else None. TokenError for an unreadable or empty file, or an empty variable."""
    env = os.environ if environ is None else environ
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"--api-token-file {path}: {exc}") from None
        if not token:
            raise TokenError(f"--api-token-file {path}: the file is empty")
        if any(c.isspace() for c in token) or not token.isprintable():
            raise TokenError(f"--api-token-file {path}: the token must be one printable word")
        return token
    if ENV in env:
        token = env[ENV].strip()
        if not token:
            raise TokenError(f"{ENV} is set but empty")
        return token
    return None


def loosely_protected(path: str) -> bool:
    """Can users other than the owner read the token file?"""
    try:
        return bool(os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO))
    except OSError:
        return False


def is_loopback(host: str) -> bool:
    """Does `host` (an address or a name) mean this machine only? `0.0.0.0`, `::`
    and names that resolve anywhere else are not loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)
