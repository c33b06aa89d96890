"""Who leads, with which generation, enforcing which revision. Pure: no etcd, no os-ken.

The leadership key in etcd is created under the leader's lease; the etcd revision at
which it was created is the leader's *generation*. Every new leader creates the key
anew, so generations grow strictly from one leader to the next, and an OpenFlow
switch that saw generation N refuses a MASTER (or SLAVE) request carrying less
(OFPRRFC_STALE): a deposed leader cannot take a switch back.

The *published revision* is the pair of file hashes (policy, topology) the leader
enforces. A replica whose own files hash differently refuses to take over: two
replicas must never enforce different policies one after the other by accident.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

GENERATION_BITS = 64


class Role(enum.Enum):
    LEADER = "leader"
    FOLLOWER = "follower"


@dataclass(frozen=True, slots=True)
class Revision:
    """The input files a replica enforces, by content."""

    policy: str  # sha256
    topology: str  # sha256

    def short(self) -> str:
        return f"policy {self.policy[:12]}, topology {self.topology[:12]}"


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """The leadership key: who holds it, since when; `generation` is its create revision."""

    replica: str
    generation: int
    since: float  # wall clock, as the leader wrote it
    api: str = ""

    def encode(self) -> bytes:
        return json.dumps({"replica": self.replica, "since": self.since,
                           "api": self.api}).encode()

    @classmethod
    def decode(cls, value: bytes, generation: int) -> LeaderRecord:
        doc = _object(value)
        return cls(str(doc.get("replica", "?")), generation, float(doc.get("since", 0.0)),
                   str(doc.get("api", "")))


@dataclass(frozen=True, slots=True)
class Published:
    """The revision key: what the leader `leader` (generation) enforces since `at`."""

    revision: Revision
    leader: str
    generation: int
    at: float  # wall clock
    mod_revision: int = 0  # etcd's, filled in when read (0: not read from etcd)

    def encode(self) -> bytes:
        return json.dumps({"policy": self.revision.policy, "topology": self.revision.topology,
                           "leader": self.leader, "generation": self.generation,
                           "at": self.at}).encode()

    @classmethod
    def decode(cls, value: bytes, mod_revision: int) -> Published:
        doc = _object(value)
        return cls(Revision(str(doc.get("policy", "")), str(doc.get("topology", ""))),
                   str(doc.get("leader", "?")), int(doc.get("generation", 0)),
                   float(doc.get("at", 0.0)), mod_revision)

    def as_json(self) -> dict[str, object]:
        return {"policy": self.revision.policy, "topology": self.revision.topology,
                "leader": self.leader, "generation": self.generation, "at": self.at}


def _object(value: bytes) -> dict[str, object]:
    try:
        doc = json.loads(value.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def refusal(local: Revision | None, published: Published | None) -> str | None:
    """Why a replica enforcing `local` must not take over (None: it may).

    Nothing published yet (a new cluster): whoever wins first publishes its own.
    """
    if published is None:
        return None
    if local is None:
        return "its own files are not loaded yet"
    differs = [what for what, mine, theirs in (
        ("policy", local.policy, published.revision.policy),
        ("topology", local.topology, published.revision.topology)) if mine != theirs]
    if not differs:
        return None
    return (f"its {' and '.join(differs)} ({local.short()}) differ from the revision "
            f"{published.leader} published ({published.revision.short()})")


def is_newer(generation: int, than: int) -> bool:
    """OpenFlow's comparison of generation ids: the unsigned difference read as a
    signed 64-bit number (so the counter may wrap)."""
    diff = (generation - than) % (1 << GENERATION_BITS)
    return 0 < diff < 1 << (GENERATION_BITS - 1)


@dataclass(frozen=True, slots=True)
class HaView:
    """What a replica knows about the election, as one consistent value."""

    replica: str
    role: Role = Role.FOLLOWER
    leader: str | None = None  # who holds the leadership key (None: nobody)
    generation: int | None = None  # the current leader's (this replica's when leading)
    leading_since: float | None = None  # wall clock, when this replica won the lease
    published: Published | None = None
    refusal: str | None = None  # why it would not take over, if it would not
    etcd_ok: bool = False  # the last request to etcd was answered
    last_error: str | None = None
    reason: str = ""  # what the last change of role was about

    @property
    def leading(self) -> bool:
        return self.role is Role.LEADER


@dataclass(frozen=True, slots=True)
class RoleAsk:
    """The OpenFlow role to ask a switch for, and the generation id to send with it."""

    master: bool
    generation: int


def role_to_ask(view: HaView) -> RoleAsk:
    """MASTER with its own generation when leading; otherwise SLAVE with the newest
    generation known (a switch refuses a SLAVE request older than the last MASTER's)."""
    return RoleAsk(view.leading, view.generation or 0)
