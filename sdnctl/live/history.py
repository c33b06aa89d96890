"""What happened to the running controller, for /status, /metrics and the dashboard:
the last events, the last enforced edits (with what they replaced), the last
refused edit, and the rollout of the latest policy to the switches it changed.

Bounded: MAX_EVENTS events and MAX_EDITS edits are kept. Callers hold the state
lock (sdnctl/live/state.py) around every call, as around every other write.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass

from sdnctl.flows import FlowSet
from sdnctl.policy.model import Policy
from sdnctl.topology.model import Topology

log = logging.getLogger("controller")

MAX_EVENTS = 50
MAX_EDITS = 8  # enforced edits remembered for the dashboard (each holds two policies)


@dataclass
class Rollout:
    """A reloaded policy on its way to the switches it changes."""

    sha256: str
    detected_at: float  # monotonic
    sent_after: float  # monotonic: a batch sent after this carries the new policy
    waiting: set[str]
    took_s: float | None = None  # from the change being seen to the last barrier reply
    done_at: float | None = None  # wall clock of that reply (minus the file's mtime: from save)

    def finish(self) -> None:
        self.took_s = time.monotonic() - self.detected_at
        self.done_at = time.time()


@dataclass(frozen=True, slots=True)
class EditStart:
    """What an edit is about to replace (`ControllerState.edit_started`)."""

    policy: Policy
    sha256: str
    desired: dict[str, FlowSet | None]


@dataclass(frozen=True, slots=True)
class EnforcedEdit:
    """A reload the daemon enforced, kept for the dashboard's "last edits": the
    dashboard (sdnctl.dashboard) works out its reachability and flow-mod effect on
    demand, so the app only keeps references here."""

    time: float  # wall clock
    what: str  # the change, as the events say it
    before: Policy
    after: Policy
    before_sha: str
    after_sha: str
    topology: Topology
    flowsets: dict[str, tuple[FlowSet | None, FlowSet | None]]  # changed switch -> (old, new)


class History:
    """The events, edits, refusal and rollout of one daemon's life."""

    def __init__(self) -> None:
        self.events: collections.deque[dict[str, object]] = collections.deque(maxlen=MAX_EVENTS)
        self.edits: collections.deque[EnforcedEdit] = collections.deque(maxlen=MAX_EDITS)
        self.last_refused: dict[str, object] | None = None
        self.rollout: Rollout | None = None

    def record(self, kind: str, message: str, level: int = logging.INFO) -> None:
        log.log(level, message)
        self.events.append({"time": time.time(), "kind": kind, "message": message})

    def refused(self, problems: list[str], sha256: dict[str, str]) -> None:
        """An edit was refused: these problems, in files with these hashes."""
        self.last_refused = {"time": time.time(), "problems": problems, "sha256": sha256}

    def enforced(self, edit: EnforcedEdit) -> None:
        self.edits.append(edit)

    def start_rollout(self, sha256: str, detected_at: float, waiting: set[str]) -> None:
        self.rollout = Rollout(sha256, detected_at, time.monotonic(), waiting)
        if not waiting:
            self.rollout.finish()

    def rollout_progress(self, switch: str, batch_started: float) -> None:
        """`switch` acknowledged an update sent at `batch_started` (monotonic): if it
        carried the new policy, one switch less to wait for."""
        r = self.rollout
        if r is None or r.took_s is not None or batch_started < r.sent_after:
            return
        r.waiting.discard(switch)
        if not r.waiting:
            r.finish()
