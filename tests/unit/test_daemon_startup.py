"""The daemon's start-up has no time limit a big network can exceed (sdnctl/startup.py):
the start-up compile and os-ken's start are waited for as long as they take, OVSDB's
first read too once it has answered; only a stop signal or a failure ends a wait."""

from __future__ import annotations

import threading
import time

import pytest

from sdnctl.startup import Startup, run_until, wait_for_bindings


def test_run_until_waits_as_long_as_it_takes() -> None:
    assert run_until(lambda: time.sleep(0.5), "t", [], "sleeping") is True


def test_run_until_raises_what_the_function_raised() -> None:
    def boom() -> None:
        raise ValueError("os-ken said no")

    with pytest.raises(ValueError, match="os-ken said no"):
        run_until(boom, "t", [], "failing")


def test_run_until_gives_up_on_a_stop_signal_at_once() -> None:
    stopping: list[int] = []
    threading.Timer(0.1, stopping.append, (15,)).start()
    t0 = time.monotonic()
    assert run_until(lambda: time.sleep(5), "t", stopping, "sleeping") is False
    assert time.monotonic() - t0 < 1.0


class FakeMonitor:
    """Connected (or not) from the start; its first read is in after `ready_after` s."""

    remote = "unix:/nowhere"

    def __init__(self, connected: bool, ready_after: float | None,
                 drops_after: float | None = None) -> None:
        self._t0 = time.monotonic()
        self._connected, self._ready_after, self._drops_after = (
            connected, ready_after, drops_after)

    @property
    def connected(self) -> bool:
        dropped = self._drops_after is not None and self._age() > self._drops_after
        return self._connected and not dropped

    def _age(self) -> float:
        return time.monotonic() - self._t0

    def wait_ready(self, timeout: float) -> bool:
        if self._ready_after is not None and self._age() + timeout >= self._ready_after:
            time.sleep(max(0.0, self._ready_after - self._age()))
            return True
        time.sleep(timeout)
        return False


def test_a_slow_first_read_is_waited_for_once_ovsdb_answered() -> None:
    # thousands of interfaces take longer than the time allowed to connect
    assert wait_for_bindings(FakeMonitor(True, 0.6), [], connect_s=0.1) is True  # type: ignore[arg-type]


def test_an_ovsdb_that_never_answers_is_not_waited_for() -> None:
    t0 = time.monotonic()
    assert wait_for_bindings(FakeMonitor(False, None), [], connect_s=0.2) is False  # type: ignore[arg-type]
    assert 0.2 <= time.monotonic() - t0 < 1.0


def test_a_connection_lost_during_the_first_read_ends_the_wait() -> None:
    monitor = FakeMonitor(True, None, drops_after=0.3)
    assert wait_for_bindings(monitor, [], connect_s=0.1) is False  # type: ignore[arg-type]


def test_a_stop_signal_ends_the_wait_for_ovsdb() -> None:
    assert wait_for_bindings(FakeMonitor(True, None), [15], connect_s=10) is False  # type: ignore[arg-type]


def test_startup_timeline_is_one_dict_updated_in_place() -> None:
    startup = Startup(time.monotonic())
    doc = startup.doc
    assert doc["phase"] == "reading OVSDB" and doc["loaded_s"] >= 0
    startup.reached("compiling", bindings_s=0.5, bound=3)
    startup.reached("running", openflow_s=1.0)
    assert doc is startup.doc
    assert doc["phase"] == "running" and doc["bound"] == 3 and "running_s" in doc
