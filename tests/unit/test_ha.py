"""Replicas without etcd: the decisions (sdnctl.ha.model) and the campaign
(sdnctl.ha.election) against an in-memory store with etcd's semantics and a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sdnctl.ha.election import LEASE_TTL_S, MARGIN_S, Election, Snapshot, StoreError
from sdnctl.ha.etcd import parse_etcd_url
from sdnctl.ha.model import (
    HaView,
    LeaderRecord,
    Published,
    Revision,
    Role,
    is_newer,
    refusal,
    role_to_ask,
)

REV = Revision("a" * 64, "b" * 64)
OTHER = Revision("c" * 64, "b" * 64)


# ---- the pure decisions -------------------------------------------------------------


def test_generations_compare_like_openflow_with_wraparound() -> None:
    assert is_newer(5, 2) and not is_newer(2, 5) and not is_newer(5, 5)
    assert is_newer(1, 2**64 - 1)  # wrapped: 1 comes after 2^64 - 1
    assert not is_newer(2**64 - 1, 1)


def test_role_to_ask_master_with_own_generation_only_when_leading() -> None:
    assert role_to_ask(HaView("a", Role.LEADER, "a", 7)).master
    assert role_to_ask(HaView("a", Role.LEADER, "a", 7)).generation == 7
    follower = role_to_ask(HaView("b", Role.FOLLOWER, "a", 7))
    assert not follower.master and follower.generation == 7  # SLAVE with the leader's
    assert role_to_ask(HaView("b")).generation == 0  # nobody known yet


def test_refusal_when_files_differ_from_published() -> None:
    published = Published(REV, "a", 3, 0.0)
    assert refusal(REV, None) is None  # a new cluster: nothing to match
    assert refusal(REV, published) is None
    why = refusal(OTHER, published)
    assert why is not None and why.startswith("its policy (")
    assert "a published" in why
    both = refusal(Revision("x" * 64, "y" * 64), published)
    assert both is not None and "policy and topology" in both
    assert refusal(None, published) is not None


def test_records_round_trip_and_survive_garbage() -> None:
    rec = LeaderRecord("a", 9, 12.5, "127.0.0.1:1")
    assert LeaderRecord.decode(rec.encode(), 9) == rec
    pub = Published(REV, "a", 9, 3.0, 0)
    assert Published.decode(pub.encode(), 11) == Published(REV, "a", 9, 3.0, 11)
    assert LeaderRecord.decode(b"\xff not json", 4).generation == 4


def test_etcd_url_checked() -> None:
    assert parse_etcd_url("http://127.0.0.1:2379") == ("http", "127.0.0.1", 2379)
    for bad in ("127.0.0.1:2379", "http://h:2379/v3", "ftp://h:1", "http://h:x"):
        with pytest.raises(ValueError):
            parse_etcd_url(bad)


# ---- the campaign, on a fake etcd --------------------------------------------------


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeEtcd:
    """Leases, keys with create/mod revisions, guarded transactions: etcd's semantics."""

    clock: Clock
    revision: int = 1
    leases: dict[int, float] = field(default_factory=dict)  # id -> expiry
    keys: dict[str, tuple[bytes, int, int, int | None]] = field(default_factory=dict)
    down: bool = False
    next_lease: int = 1

    def expire(self) -> None:
        for lease, until in list(self.leases.items()):
            if self.clock() >= until:
                del self.leases[lease]
                for key, (_v, _c, _m, owner) in list(self.keys.items()):
                    if owner == lease:
                        del self.keys[key]
                        self.revision += 1

    def put(self, key: str, value: bytes, lease: int | None = None) -> int:
        self.revision += 1
        old = self.keys.get(key)
        self.keys[key] = (value, old[1] if old else self.revision, self.revision, lease)
        return self.revision


@dataclass
class FakeStore:
    etcd: FakeEtcd

    def _check(self) -> None:
        if self.etcd.down:
            raise StoreError("etcd down")
        self.etcd.expire()

    def grant(self, ttl: int) -> int:
        self._check()
        lease, self.etcd.next_lease = self.etcd.next_lease, self.etcd.next_lease + 1
        self.etcd.leases[lease] = self.etcd.clock() + ttl
        return lease

    def keepalive(self, lease: int) -> int:
        self._check()
        if lease not in self.etcd.leases:
            return -1
        self.etcd.leases[lease] = self.etcd.clock() + LEASE_TTL_S
        return LEASE_TTL_S

    def revoke(self, lease: int) -> None:
        self._check()
        self.etcd.leases[lease] = self.etcd.clock()
        self.etcd.expire()

    def close(self) -> None:
        pass  # nothing held open in memory

    def read(self) -> Snapshot:
        self._check()
        leader = self.etcd.keys.get("leader")
        rev = self.etcd.keys.get("revision")
        return Snapshot(LeaderRecord.decode(leader[0], leader[1]) if leader else None,
                        Published.decode(rev[0], rev[2]) if rev else None)

    def campaign(self, lease: int, record: LeaderRecord, published_mod: int) -> int | None:
        self._check()
        rev = self.etcd.keys.get("revision")
        if "leader" in self.etcd.keys or (rev[2] if rev else 0) != published_mod \
                or lease not in self.etcd.leases:
            return None
        return self.etcd.put("leader", record.encode(), lease)

    def publish(self, generation: int, published: Published) -> bool:
        self._check()
        leader = self.etcd.keys.get("leader")
        if leader is None or leader[1] != generation:
            return False
        self.etcd.put("revision", published.encode())
        return True


def replica(name: str, etcd: FakeEtcd, revision: Revision = REV) -> Election:
    e = Election(FakeStore(etcd), name, clock=etcd.clock, wall=etcd.clock)
    e.set_local(revision)
    return e


def advance(etcd: FakeEtcd, seconds: float, *alive: Election, step: float = 0.2) -> None:
    """Let `seconds` pass, the `alive` replicas stepping every `step` (the others are dead)."""
    end = etcd.clock.now + seconds
    while etcd.clock.now < end:
        etcd.clock.now = min(end, etcd.clock.now + step)
        for e in alive:
            e.step()


def test_one_leader_then_takeover_with_a_newer_generation_after_the_ttl() -> None:
    etcd = FakeEtcd(Clock())
    a, b = replica("a", etcd), replica("b", etcd)
    a.step()
    b.step()
    assert a.leading() and not b.leading()
    assert b.view().leader == "a" and b.view().generation == a.view().generation
    gen_a = a.view().generation
    assert etcd.keys["revision"][0] and Published.decode(etcd.keys["revision"][0], 0).leader == "a"
    advance(etcd, 10, a, b)
    assert a.leading() and not b.leading()  # keepalives hold the lease indefinitely

    advance(etcd, LEASE_TTL_S - MARGIN_S - 0.5, b)  # a is dead: no keepalive
    assert not b.leading()  # the lease still lives: no takeover
    assert not a.leading() or etcd.clock() < a._lease.valid_until - MARGIN_S  # type: ignore
    advance(etcd, 2.0, b)
    assert b.leading() and not a.leading()
    assert is_newer(b.view().generation or 0, gen_a or 0)


def test_a_stalled_leader_stops_counting_on_its_lease_before_it_can_lapse() -> None:
    etcd = FakeEtcd(Clock())
    a, b = replica("a", etcd), replica("b", etcd)
    a.step()
    b.step()
    for t in range(40):  # at every instant, never two replicas that believe they lead
        etcd.clock.now += 0.1
        b.step()  # a is stalled (SIGSTOP): it does not step
        assert not (a.leading() and b.leading()), f"two leaders at t+{t / 10:.1f} s"
    assert b.leading() and not a.leading()
    a.step()  # a resumes: its keepalive finds the lease gone
    assert a.view().role is Role.FOLLOWER and a.view().leader == "b"
    assert "lease" in a.view().reason


def test_a_deposed_leader_cannot_overwrite_the_published_revision() -> None:
    etcd = FakeEtcd(Clock())
    a, b = replica("a", etcd), replica("b", etcd)
    a.step()
    gen_a = a.view().generation or 0
    advance(etcd, 3.0, b)
    assert b.leading()
    store = FakeStore(etcd)
    assert not store.publish(gen_a, Published(OTHER, "a", gen_a, 0.0))
    assert Published.decode(etcd.keys["revision"][0], 0).leader == "b"


def test_a_follower_with_other_files_refuses_until_they_match() -> None:
    etcd = FakeEtcd(Clock())
    a, b = replica("a", etcd), replica("b", etcd, OTHER)
    a.step()
    b.step()
    assert b.view().refusal is not None
    advance(etcd, 5.0, b)  # a died
    assert not b.leading() and b.view().leader is None
    b.set_local(REV)
    b.step()
    assert b.leading() and b.view().refusal is None


def test_the_leader_publishes_a_reloaded_revision() -> None:
    etcd = FakeEtcd(Clock())
    a = replica("a", etcd)
    a.step()
    a.set_local(OTHER)
    a.step()
    assert Published.decode(etcd.keys["revision"][0], 0).revision == OTHER


def test_etcd_unreachable_loses_leadership_before_the_lease_could_lapse() -> None:
    etcd = FakeEtcd(Clock())
    a = replica("a", etcd)
    a.step()
    assert a.leading()
    etcd.down = True
    seen = []
    a.subscribe(seen.append)
    for _ in range(15):
        etcd.clock.now += 0.2
        a.step()
        if not a.leading():
            break
    assert not a.leading() and a.view().role is Role.FOLLOWER
    assert not a.view().etcd_ok and "etcd down" in (a.view().last_error or "")
    assert etcd.clock() < 100 + LEASE_TTL_S + 0.5  # gave up within the TTL
    assert any(v.role is Role.FOLLOWER for v in seen)


def test_resigning_hands_over_at_once() -> None:
    etcd = FakeEtcd(Clock())
    a, b = replica("a", etcd), replica("b", etcd)
    a.step()
    b.step()
    a.stop(resign=True)
    b.step()
    assert b.leading()


def test_status_text_names_the_leader_and_a_refusal() -> None:
    from sdnctl.render.status import render_status

    base = {"policy": {"file": "p.yaml", "sha256": "a" * 64}, "switches": {}}
    leader = render_status({**base, "ha": {"enabled": True, "replica": "a", "leading": True,
                                           "generation": 5, "leading_since": 1.0,
                                           "etcd_ok": True}}, now=4.0)
    assert "replica   a: LEADER (generation 5)" in leader
    follower = render_status({**base, "ha": {"enabled": True, "replica": "b", "leading": False,
                                             "leader": "a", "generation": 5, "etcd_ok": True,
                                             "refusal": "its policy differ"}}, now=4.0)
    assert "follower of a (generation 5); will not take over: its policy differ" in follower
    assert "replica" not in render_status({**base, "ha": {"enabled": False}}, now=4.0)
