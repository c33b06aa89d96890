"""Stats reads in flight that are not reconciliation: `verify`'s dumps and the
periodic flow-stats poll behind /metrics.

A `Read` is one or more multipart requests to one switch, matched to their replies
by xid (so a read never mixes with the dump a (re)connect starts, nor with another
read). When every requested kind has its last part, `done` is called once, in
the app's thread, with the state lock held. A switch that disconnects first ends
its reads with an error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("flows", "groups", "meters")


@dataclass
class Read:
    switch: str
    pending: set[str]
    done: Callable[[Read], None]
    replies: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in KINDS})
    xids: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    error: str | None = None

    def add(self, kind: str, body: list[Any], more: bool) -> bool:
        """One reply part; True when the read is complete."""
        self.replies[kind].extend(body)
        if not more:
            self.pending.discard(kind)
        return not self.pending

    def fail(self, error: str) -> None:
        self.error = error
        self.pending.clear()
        self.done(self)


class Waiter:
    """Hands a read's result from the app's thread to a thread that waits for it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.result: dict[str, object] | None = None
        self.error: str | None = None

    def set(self, result: dict[str, object] | None, error: str | None = None) -> None:
        self.result, self.error = result, error
        self._event.set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)
