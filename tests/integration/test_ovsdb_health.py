"""The OVSDB monitor tells a lost connection from a bug (sdnctl/southbound/ovsdb.py).

Against a private ovsdb-server the test starts and stops: a lost session is one
log line without a traceback (and one more when it is back), however many
retries lie between; an error that is not about the connection is logged with
its traceback, then the monitor starts over and recovers. Both show in the
monitor's `health`, which /status and /metrics report."""

from __future__ import annotations

import logging
import time

import pytest
from private_ovsdb import Ovsdb

from sdnctl.policy.load import parse_policy
from sdnctl.southbound.ovsdb import OvsdbMonitor
from sdnctl.topology.load import parse_topology

pytestmark = pytest.mark.needs("ovsdb-tool", "ovsdb-server")

POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.7.10.0/24}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:07:10:11", ip: 10.7.10.11, host: hv1}
"""
TOPOLOGY = "version: 1\nswitches:\n  hv1: {dpid: 1, role: hypervisor}\nlinks: []\n"


class PolicyWithABug:
    """The real policy, except that reading its VMs fails the first time: a stand-in
    for a bug in the code that turns OVSDB rows into bindings."""

    def __init__(self, policy) -> None:
        self._policy = policy
        self.failed = False

    def __getattr__(self, name: str):
        if name == "vms" and not self.failed:
            self.failed = True
            raise RuntimeError("injected bug")
        return getattr(self._policy, name)


def messages(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ovsdb" and text in r.getMessage()]


def wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def ovsdb(tmp_path):
    db = Ovsdb(tmp_path)
    db.start()
    yield db
    db.stop()


def monitor_for(ovsdb: Ovsdb, policy) -> OvsdbMonitor:
    return OvsdbMonitor(ovsdb.remote, policy, parse_topology(TOPOLOGY, "topology.yaml"),
                        poll_ms=100)


def test_a_lost_connection_is_one_line_without_traceback_and_one_when_back(ovsdb,
                                                                          caplog) -> None:
    caplog.set_level(logging.INFO, logger="ovsdb")
    monitor = monitor_for(ovsdb, parse_policy(POLICY, "policy.yaml"))
    monitor.start()
    try:
        assert monitor.wait_ready(10)
        assert monitor.health.as_json()["connected"] is True
        ovsdb.stop()
        wait(lambda: not monitor.connected, 10, "the loss seen")
        time.sleep(2.5)  # at least two failed attempts to reconnect
        lost = messages(caplog, "connection lost")
        assert len(lost) == 1 and lost[0].levelno == logging.ERROR
        assert lost[0].exc_info is None  # the network, not a bug: no traceback
        health = monitor.health.as_json()
        assert health["connected"] is False and health["last_error"]
        assert health["reconnects"] == 0

        ovsdb.start()
        wait(lambda: monitor.connected, 10, "the connection back")
        assert len(messages(caplog, "connection back")) == 1
        assert monitor.health.as_json()["reconnects"] == 1
    finally:
        monitor.stop()


def test_an_error_that_is_not_the_connection_is_logged_with_its_traceback(ovsdb,
                                                                          caplog) -> None:
    caplog.set_level(logging.INFO, logger="ovsdb")
    policy = PolicyWithABug(parse_policy(POLICY, "policy.yaml"))
    monitor = monitor_for(ovsdb, policy)
    monitor.start()
    try:
        assert monitor.wait_ready(10), "the monitor did not recover from the error"
        assert policy.failed
        bugs = messages(caplog, "unexpected error")
        assert len(bugs) == 1 and bugs[0].levelno == logging.ERROR
        assert bugs[0].exc_info is not None and bugs[0].exc_info[0] is RuntimeError
        assert "RuntimeError: injected bug" in caplog.text  # the traceback, in the log
        assert messages(caplog, "connection lost") == []  # not passed off as the network
        health = monitor.health.as_json()
        assert health["last_error"] == "unexpected RuntimeError: injected bug"
        assert health["connected"] is True and health["reconnects"] == 1
    finally:
        monitor.stop()
