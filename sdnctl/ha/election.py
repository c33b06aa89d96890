"""The campaign of one replica: a lease, its keepalive, the leadership key.

One thread per replica runs `step()` every POLL_S:

1. Keep a lease (TTL LEASE_TTL_S) alive: a keepalive every TTL/4. The lease is
   known good until `sent + TTL` of the last keepalive etcd acknowledged, since etcd
   restarted its clock no earlier than that request left; the replica counts itself
   leader only until then, less a margin (`leading()` checks it at every write). A
   keepalive that fails is retried at the next step; when the lease can no longer
   be vouched for, or etcd says it is gone, leadership is lost at once.
2. Read the leadership key and the published revision in one request.
3. Nobody leads: campaign, if its own files match the published revision (else say
   why not): one transaction creates the key bound to the lease only if it does
   not exist and the revision key did not move since it was read. Its create
   revision is the new generation.
4. Leading: publish its revision when it differs from the published one, in a
   transaction that succeeds only while the key still has its generation (a
   deposed leader cannot overwrite its successor's).

Changes of the view (role, leader, generation, refusal) go to `on_change`, called
from this thread and never under its lock. Stopping resigns: the lease is revoked,
so a follower takes over at its next step instead of after the TTL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sdnctl.ha.model import HaView, LeaderRecord, Published, Revision, Role, refusal

log = logging.getLogger("ha")

LEASE_TTL_S = 2  # etcd's minimum with its default timings (it rounds 1 up to 2)
KEEPALIVE_EVERY_S = LEASE_TTL_S / 4
POLL_S = 0.2  # how often followers look for a vacant leadership
MARGIN_S = 0.25  # stop counting on the lease this long before it could lapse


class StoreError(Exception):
    """etcd did not answer, or answered with an error."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The leadership key and the revision key, read together."""

    leader: LeaderRecord | None
    published: Published | None


class Store(Protocol):
    """What the election needs from etcd (sdnctl.ha.etcd; an in-memory fake in tests).
    Every method raises StoreError when etcd cannot be reached."""

    def grant(self, ttl: int) -> int: ...  # a new lease's id

    def keepalive(self, lease: int) -> int: ...  # its TTL now; <= 0: the lease is gone

    def revoke(self, lease: int) -> None: ...

    def close(self) -> None: ...  # its connections: the campaign is over

    def read(self) -> Snapshot: ...

    def campaign(self, lease: int, record: LeaderRecord, published_mod: int) -> int | None:
        """Create the leadership key under `lease` if it does not exist and the revision
        key's mod revision is still `published_mod` (0: absent); its create revision
        (the generation), or None when the transaction's conditions failed."""
        ...

    def publish(self, generation: int, published: Published) -> bool:
        """Write the revision key if the leadership key's create revision is `generation`."""
        ...


@dataclass
class _Lease:
    id: int
    valid_until: float  # monotonic: known alive until then (without the margin)
    renewed_at: float  # monotonic: when the last keepalive was sent


class Election:
    """One replica's campaign (see the module docstring)."""

    def __init__(self, store: Store, replica: str, api: str = "",
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 ttl: int = LEASE_TTL_S, poll_s: float = POLL_S) -> None:
        self._store = store
        self._replica = replica
        self._api = api
        self._clock = clock
        self._wall = wall
        self._ttl = ttl
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._view = HaView(replica)
        self._local: Revision | None = None
        self._lease: _Lease | None = None
        self._on_change: Callable[[HaView], None] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- for the rest of the daemon (any thread) ----------------------------------
    @property
    def replica(self) -> str:
        return self._replica

    @property
    def ttl(self) -> int:
        return self._ttl

    def view(self) -> HaView:
        with self._lock:
            return self._view

    def leading(self) -> bool:
        """Leader, and the lease still vouched for: checked before every write."""
        with self._lock:
            return self._leading_locked()

    def _leading_locked(self) -> bool:
        lease = self._lease
        return (self._view.leading and lease is not None
                and self._clock() < lease.valid_until - MARGIN_S)

    def set_local(self, revision: Revision) -> None:
        """The revision this replica enforces now (at start and after every reload)."""
        with self._lock:
            self._local = revision
        self._wake.set()

    def subscribe(self, on_change: Callable[[HaView], None]) -> None:
        """Call `on_change(view)` on every change, starting with the view now."""
        with self._lock:
            self._on_change = on_change
            view = self._view
        on_change(view)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ha-election", daemon=True)
        self._thread.start()

    def stop(self, resign: bool = True) -> None:
        """End the campaign; with `resign`, revoke the lease (the key goes with it)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            lease, self._lease = self._lease, None
        if resign and lease is not None:
            try:
                self._store.revoke(lease.id)
            except StoreError as exc:
                log.warning("could not revoke the lease (it lapses by itself): %s", exc)
        self._store.close()
        self._change(role=Role.FOLLOWER, leading_since=None, reason="stopped")

    def status(self) -> dict[str, object]:
        with self._lock:
            v, lease = self._view, self._lease
            leading = self._leading_locked()
            now = self._clock()
        return {
            "enabled": True,
            "replica": v.replica,
            "role": v.role.value,
            "leading": leading,
            "leader": v.leader,
            "generation": v.generation,
            "leading_since": v.leading_since,
            "published": v.published.as_json() if v.published else None,
            "refusal": v.refusal,
            "etcd_ok": v.etcd_ok,
            "last_error": v.last_error,
            "lease_ttl_s": self._ttl,
            "lease_valid_s": round(lease.valid_until - now, 3) if lease else None,
        }

    # ---- the campaign ------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a bug must not end the campaign silently
                log.exception("election step failed")
            self._wake.wait(self._poll_s)
            self._wake.clear()

    def step(self) -> None:
        """One round: keep the lease, read etcd, campaign or publish."""
        try:
            self._keep_lease()
            snap = self._store.read()
        except StoreError as exc:
            self._etcd_failed(exc)
            return
        view = self.view()
        mine = snap.leader is not None and snap.leader.replica == self._replica \
            and view.leading and snap.leader.generation == view.generation
        with self._lock:
            local = self._local
        why_not = refusal(local, snap.published)
        if view.leading and not mine:
            holder = snap.leader.replica if snap.leader else "nobody"
            self._change(role=Role.FOLLOWER, leading_since=None,
                         reason=f"the leadership key is gone or taken (held by {holder})")
            view = self.view()
        if view.leading:
            self._change(leader=self._replica, published=snap.published, refusal=None,
                         etcd_ok=True, last_error=None)
            self._publish(view, snap.published)
            return
        if snap.leader is None and why_not is None and self._lease is not None:
            self._campaign(snap)
            return
        self._change(leader=snap.leader.replica if snap.leader else None,
                     generation=snap.leader.generation if snap.leader else view.generation,
                     published=snap.published, refusal=why_not, etcd_ok=True,
                     last_error=None)

    def _keep_lease(self) -> None:
        now = self._clock()
        lease = self._lease
        if lease is not None and now >= lease.valid_until - MARGIN_S:
            self._lose_lease("the lease could not be renewed in time")
            lease = None
        if lease is None:
            lease_id = self._store.grant(self._ttl)
            with self._lock:
                self._lease = _Lease(lease_id, now + self._ttl, now)
            return
        if now - lease.renewed_at < KEEPALIVE_EVERY_S:
            return
        ttl = self._store.keepalive(lease.id)
        if ttl <= 0:
            self._lose_lease("etcd says the lease expired")
            self._keep_lease()  # a new one, to campaign with
            return
        with self._lock:
            if self._lease is lease:
                lease.valid_until, lease.renewed_at = now + ttl, now

    def _lose_lease(self, why: str) -> None:
        with self._lock:
            lease, self._lease = self._lease, None
            was_leading = self._view.leading
        if was_leading:
            self._change(role=Role.FOLLOWER, leading_since=None, reason=why)
        if lease is not None:
            # The key would otherwise outlive our leadership by up to the TTL.
            with contextlib.suppress(StoreError):
                self._store.revoke(lease.id)

    def _etcd_failed(self, exc: StoreError) -> None:
        log.debug("etcd: %s", exc)
        with self._lock:
            lapsed = self._view.leading and not self._leading_locked()
        if lapsed:
            self._lose_lease(f"etcd unreachable and the lease could lapse ({exc})")
        self._change(etcd_ok=False, last_error=str(exc))

    def _campaign(self, snap: Snapshot) -> None:
        assert self._lease is not None
        since = self._wall()
        record = LeaderRecord(self._replica, 0, since, self._api)
        published_mod = snap.published.mod_revision if snap.published else 0
        try:
            generation = self._store.campaign(self._lease.id, record, published_mod)
        except StoreError as exc:
            self._etcd_failed(exc)
            return
        if generation is None:  # someone else was quicker, or the revision moved
            self._wake.set()
            return
        self._change(role=Role.LEADER, leader=self._replica, generation=generation,
                     leading_since=since, published=snap.published, refusal=None,
                     etcd_ok=True, last_error=None, reason="won the leadership key")
        self._publish(self.view(), snap.published)

    def _publish(self, view: HaView, published: Published | None) -> None:
        with self._lock:
            local = self._local
        if local is None or view.generation is None:
            return
        if published is not None and published.revision == local \
                and published.generation == view.generation:
            return
        new = Published(local, self._replica, view.generation, self._wall())
        try:
            ok = self._store.publish(view.generation, new)
        except StoreError as exc:
            self._etcd_failed(exc)
            return
        if ok:
            log.info("published %s as generation %d", local.short(), view.generation)
            self._change(published=new)
        else:  # our key is not there any more: we are not the leader
            self._change(role=Role.FOLLOWER, leading_since=None,
                         reason="could not publish: the leadership key is no longer ours")

    def _change(self, **fields: object) -> None:
        with self._lock:
            old = self._view
            new = dataclasses.replace(old, **fields)  # type: ignore[arg-type]
            if new == old:
                return
            self._view = new
            notify = self._on_change
        if new.role != old.role:
            log.info("%s: %s -> %s (%s)", self._replica, old.role.value, new.role.value,
                     new.reason)
        if notify is not None and _matters(old, new):
            notify(new)


def _matters(old: HaView, new: HaView) -> bool:
    """Changes the app acts on or reports (not every etcd round trip)."""
    return (old.role, old.leader, old.generation, old.refusal, old.published, old.etcd_ok) != (
        new.role, new.leader, new.generation, new.refusal, new.published, new.etcd_ok)
