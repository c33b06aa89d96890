"""The election's `Store` on etcd's v3 HTTP gateway, through etcd3gw.

Keys, under a prefix (`--etcd-prefix`, default /sdnctl):
  PREFIX/leader    the leadership key, bound to the leader's lease; its create
                   revision is the leader's generation
  PREFIX/revision  the revision the leader enforces (not leased: it outlives leaders)

Every request has a short timeout (REQUEST_TIMEOUT_S): the election must notice a
silent etcd well within the lease TTL.
"""

from __future__ import annotations

import base64
import warnings
from typing import Any
from urllib.parse import urlsplit

from sdnctl.ha.election import Snapshot, StoreError
from sdnctl.ha.model import LeaderRecord, Published

DEFAULT_PREFIX = "/sdnctl"
REQUEST_TIMEOUT_S = 1.0


def parse_etcd_url(url: str) -> tuple[str, str, int]:
    """`http://HOST:PORT` -> (scheme, host, port); ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--etcd {url!r}: expected http://HOST:PORT")
    try:
        port = parts.port or 2379
    except ValueError:
        raise ValueError(f"--etcd {url!r}: bad port") from None
    if parts.path not in ("", "/"):
        raise ValueError(f"--etcd {url!r}: expected http://HOST:PORT, without a path")
    return parts.scheme, parts.hostname, port


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


class EtcdStore:
    """`sdnctl.ha.election.Store` on one etcd endpoint."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX,
                 timeout: float = REQUEST_TIMEOUT_S) -> None:
        scheme, host, port = parse_etcd_url(url)
        with warnings.catch_warnings():  # futurist imports eventlet, which warns
            warnings.simplefilter("ignore")
            from etcd3gw.client import Etcd3Client
            from etcd3gw.exceptions import Etcd3Exception
        self._errors: tuple[type[BaseException], ...] = (Etcd3Exception, OSError, ValueError,
                                                         KeyError)
        # etcd 3.4 serves the gateway at /v3/ (etcd3gw would otherwise ask /version first)
        self._client = Etcd3Client(host, port, scheme, timeout=timeout, api_path="/v3/")
        self.url = url
        self.leader_key = prefix.rstrip("/") + "/leader"
        self.revision_key = prefix.rstrip("/") + "/revision"

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            out = self._client.post(self._client.get_url(path), json=body)
        except self._errors as exc:
            raise StoreError(f"etcd {self.url}: {exc}") from exc
        if not isinstance(out, dict):
            raise StoreError(f"etcd {self.url}: unexpected answer {out!r}")
        return out

    def grant(self, ttl: int) -> int:
        out = self._post("/lease/grant", {"TTL": ttl, "ID": 0})
        if out.get("error"):
            raise StoreError(f"etcd {self.url}: lease grant: {out['error']}")
        return int(out["ID"])

    def keepalive(self, lease: int) -> int:
        out = self._post("/lease/keepalive", {"ID": lease})
        return int(out.get("result", {}).get("TTL", -1))

    def revoke(self, lease: int) -> None:
        self._post("/kv/lease/revoke", {"ID": lease})

    def close(self) -> None:
        """Close the kept-alive HTTP connections to etcd."""
        self._client.session.close()

    def read(self) -> Snapshot:
        out = self._post("/kv/txn", {"compare": [], "success": [
            {"request_range": {"key": _b64(self.leader_key)}},
            {"request_range": {"key": _b64(self.revision_key)}},
        ]})
        leader_kv, revision_kv = (_first_kv(r) for r in out.get("responses", [{}, {}]))
        leader = (LeaderRecord.decode(_value(leader_kv), int(leader_kv["create_revision"]))
                  if leader_kv else None)
        published = (Published.decode(_value(revision_kv), int(revision_kv["mod_revision"]))
                     if revision_kv else None)
        return Snapshot(leader, published)

    def campaign(self, lease: int, record: LeaderRecord, published_mod: int) -> int | None:
        out = self._post("/kv/txn", {
            "compare": [
                {"key": _b64(self.leader_key), "result": "EQUAL", "target": "CREATE",
                 "create_revision": 0},
                {"key": _b64(self.revision_key), "result": "EQUAL", "target": "MOD",
                 "mod_revision": published_mod},
            ],
            "success": [{"request_put": {"key": _b64(self.leader_key),
                                         "value": _b64(record.encode()), "lease": lease}}],
            "failure": [],
        })
        if not out.get("succeeded"):
            return None
        return int(out["header"]["revision"])  # the put's revision: the key's creation

    def publish(self, generation: int, published: Published) -> bool:
        out = self._post("/kv/txn", {
            "compare": [{"key": _b64(self.leader_key), "result": "EQUAL", "target": "CREATE",
                         "create_revision": generation}],
            "success": [{"request_put": {"key": _b64(self.revision_key),
                                         "value": _b64(published.encode())}}],
            "failure": [],
        })
        return bool(out.get("succeeded"))


def _first_kv(response: dict[str, Any]) -> dict[str, Any] | None:
    kvs = response.get("response_range", {}).get("kvs") or []
    return kvs[0] if kvs else None


def _value(kv: dict[str, Any]) -> bytes:
    return base64.b64decode(kv.get("value", ""))
