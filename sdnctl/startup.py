"""The daemon's start-up, step by step (sdnctl/daemon.py): the timeline /status
shows, the waits that have no time limit a big network can exceed (only a stop
signal or a failure ends them), and the periodic ticker of the stats poll."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sdnctl.southbound.ovsdb import OvsdbMonitor

log = logging.getLogger("daemon")

# How long to wait for OVSDB to answer at all before starting without bindings (the
# switches are then held until it does). Once it has answered, its first full read is
# waited for however long it takes: nothing at start-up has a limit a big network can
# exceed.
OVSDB_WAIT_S = 5.0


class Startup:
    """The start-up timeline, shown under `daemon.startup` in /status: the phase it is
    in, and when (seconds since the daemon started) each step ended."""

    def __init__(self, started_at: float) -> None:
        self._t0 = started_at
        # the files are read and validated by now (20,000 VMs: seconds, docs/benchmarks.md §6)
        self.doc: dict[str, object] = {"phase": "reading OVSDB", "loaded_s": self.since()}

    def since(self) -> float:
        return round(time.monotonic() - self._t0, 3)

    def reached(self, phase: str, **figures: object) -> None:
        self.doc.update(figures)  # one dict, updated in place: /status reads it as is
        self.doc["phase"] = phase
        if phase == "running":
            self.doc["running_s"] = self.since()


def wait_for_bindings(monitor: OvsdbMonitor, stopping: list[int],
                      connect_s: float = OVSDB_WAIT_S) -> bool:
    """Wait for the first full read of OVSDB: True once it is in.

    An OVSDB that does not answer within `connect_s` is not waited for (False: the
    switches are held until it answers). One that answered is waited for as long as
    it takes to send every row (thousands of interfaces take seconds), unless the
    connection drops. A stop signal ends the wait (False)."""
    deadline = time.monotonic() + connect_s
    next_note = time.monotonic() + 10.0
    while not monitor.wait_ready(0.1):
        now = time.monotonic()
        if stopping or (now > deadline and not monitor.connected):
            return False
        if now > next_note:
            log.info("still reading OVSDB %s", monitor.remote)
            next_note = now + 10.0
    return True


def run_until(fn: Callable[[], object], name: str, stopping: list[int], what: str) -> bool:
    """Run `fn` in a daemon thread and wait for it without a time limit, watching for a
    stop signal meanwhile: True when it returned, False on a stop (it is abandoned: the
    process is about to exit). Its exception, if any, is raised here."""
    done = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the caller
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    began = next_note = time.monotonic()
    while not done.wait(0.2):
        if stopping:
            log.info("stop requested while %s", what)
            return False
        if time.monotonic() > next_note + 30.0:
            next_note = time.monotonic()
            log.info("still %s (%.0f s)", what, next_note - began)
    if failure:
        raise failure[0]
    return True


class Ticker:
    """Calls `fn` every `interval_s` from a daemon thread until stopped."""

    def __init__(self, interval_s: float, fn: Callable[[], object]) -> None:
        self._stop = threading.Event()
        self._interval = interval_s
        self._fn = fn
        self._thread = threading.Thread(target=self._run, name="stats-poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception:  # a failed tick must not end the ticking
                log.exception("periodic task failed")

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
