"""The daemon's start-up and teardown leave nothing running, whatever ends them
(sdnctl/daemon.py `Daemon`: one ExitStack), and OVSDB's connection is visible.

Each daemon runs in a process of its own (tests/integration/leftovers.py) that,
once `sdnctl run` has returned, reports from the inside what is still alive:
threads, sockets (listening or not) and child processes. The process exiting
would close them all anyway; looking before it exits is what shows the daemon's
own teardown did. OVSDB is a private `ovsdb-server` on a socket of the test's
own, started and stopped by the test (nothing shared with the machine's OVS).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from private_ovsdb import Ovsdb

from sdnctl.client.api import ApiError, get_status

REPO = Path(__file__).resolve().parents[2]
LEFTOVERS = Path(__file__).with_name("leftovers.py")

POLICY = """\
version: 1
tenants:
  t1:
    segments:
      web: {vlan: 10, subnet: 10.7.10.0/24, gateway: 10.7.10.1}
    rules:
      - {from: any, to: any, allow: [icmp]}
vms:
  w1: {tenant: t1, segment: web, mac: "02:00:00:07:10:11", ip: 10.7.10.11, host: hv1}
"""


def topology(dpid: int) -> str:
    return f"version: 1\nswitches:\n  hv1: {{dpid: {dpid}, role: hypervisor}}\nlinks: []\n"


class Run:
    """`sdnctl run OPTIONS` under tests/integration/leftovers.py."""

    def __init__(self, lab, *options: str) -> None:
        self.report_path = lab.tmp / f"leftovers-{time.monotonic_ns()}.json"
        self.log = lab.tmp / f"daemon-{time.monotonic_ns()}.log"
        self.api = next((options[i + 1] for i, o in enumerate(options) if o == "--api"), "")
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(LEFTOVERS), str(self.report_path), "--", *options],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        lab.cleanup.process(self.proc)

    def finish(self, timeout: float = 30) -> dict[str, object]:
        assert self.proc.wait(timeout) == 0, self.log_text()
        report: dict[str, object] = json.loads(self.report_path.read_text())
        return report

    def stop(self) -> dict[str, object]:
        self.proc.send_signal(signal.SIGTERM)
        return self.finish()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def status(self) -> dict[str, object] | None:
        try:
            return get_status(self.api, timeout=5)
        except ApiError:
            return None

    def metrics(self) -> dict[str, float]:
        import urllib.request

        with urllib.request.urlopen(f"http://{self.api}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                if line and not line.startswith("#")}


def files(lab, dpid: int = 1) -> list[str]:
    return ["-p", str(lab.write("policy.yaml", POLICY)),
            "-t", str(lab.write("topology.yaml", topology(dpid)))]


def assert_nothing_left(report: dict[str, object]) -> None:
    assert report["threads"] == [], report
    assert report["sockets"] == [], report
    assert report["children"] == [], report


def test_a_bad_policy_exits_2_with_file_line(lab) -> None:
    pol = lab.write("policy.yaml", POLICY.replace("vlan: 10", "vlan: 5000"))
    topo = lab.write("topology.yaml", topology(1))
    run = Run(lab, "-p", str(pol), "-t", str(topo), "--api", f"127.0.0.1:{lab.free_port()}")
    report = run.finish()
    assert report["code"] == 2
    assert f"{pol}:5: " in run.log_text() and "5000" in run.log_text()
    assert "Traceback" not in run.log_text()
    assert_nothing_left(report)


@pytest.mark.needs("ovsdb-tool", "ovsdb-server")
def test_a_taken_api_port_exits_1_and_stops_what_had_started(lab) -> None:
    ovsdb = Ovsdb(lab.tmp)
    lab.cleanup.add("private ovsdb-server", ovsdb.stop)
    ovsdb.start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        api = f"127.0.0.1:{taken.getsockname()[1]}"
        run = Run(lab, *files(lab), "--api", api, "--ovsdb", ovsdb.remote,
                  "--listen", f"127.0.0.1:{lab.free_port()}")
        report = run.finish()
    log = run.log_text()
    assert report["code"] == 1, log
    assert f"sdnctl run: cannot listen for the status API on {api}: Address already in use" \
        in log
    assert "Traceback" not in log
    # The OVSDB monitor was up (its session open) when the API failed: stopped, closed.
    assert_nothing_left(report)


@pytest.mark.needs("ovsdb-tool", "ovsdb-server")
def test_a_missing_ovsdb_socket_is_reported_then_followed_as_it_comes_and_goes(lab) -> None:
    ovsdb = Ovsdb(lab.tmp)  # its socket does not exist until start()
    lab.cleanup.add("private ovsdb-server", ovsdb.stop)
    run = Run(lab, *files(lab), "--api", f"127.0.0.1:{lab.free_port()}",
              "--ovsdb", ovsdb.remote, "--listen", f"127.0.0.1:{lab.free_port()}")
    status = lab.wait_for(run.status, 30, "the API answers")
    lab.wait_for(lambda: (run.status() or {})["daemon"]["startup"]["phase"] == "running", 30,
                 "the daemon runs without OVSDB")
    status = run.status()
    assert status["ovsdb"]["connected"] is False and status["bindings_ready"] is False
    assert "No such file or directory" in status["ovsdb"]["last_error"]
    time.sleep(2.5)  # two more attempts: still one line in the log
    assert run.log_text().count("cannot connect") == 1, run.log_text()
    assert run.metrics()["sdnctl_ovsdb_connected"] == 0

    ovsdb.start()
    lab.wait_for(lambda: run.status()["ovsdb"]["connected"], 10, "OVSDB connected")
    assert run.status()["ovsdb"]["reconnects"] == 0  # the first session is no reconnect
    assert run.status()["bindings_ready"] is True

    down_at = time.time()
    ovsdb.stop()
    lab.wait_for(lambda: not run.status()["ovsdb"]["connected"], 10, "OVSDB loss seen")
    status = run.status()
    assert status["ovsdb"]["since"] >= down_at - 1 and status["ovsdb"]["last_error"]
    assert run.metrics()["sdnctl_ovsdb_connected"] == 0
    time.sleep(2.5)
    assert run.log_text().count("connection lost") == 1, run.log_text()

    ovsdb.start()
    lab.wait_for(lambda: run.status()["ovsdb"]["connected"], 10, "OVSDB back")
    metrics = run.metrics()
    assert metrics["sdnctl_ovsdb_connected"] == 1
    assert metrics["sdnctl_ovsdb_reconnects_total"] == 1
    assert run.log_text().count("connection back") == 1, run.log_text()

    report = run.stop()
    assert report["code"] == 0
    assert_nothing_left(report)


@pytest.mark.ovs
def test_a_running_daemon_with_a_switch_stops_leaving_nothing(lab) -> None:
    dpid, of_port = lab.random_dpid(), lab.free_port()
    bridge = lab.bridge(dpid, controller_port=of_port)
    run = Run(lab, *files(lab, dpid), "--api", f"127.0.0.1:{lab.free_port()}",
              "--listen", f"127.0.0.1:{of_port}", "--stats-interval", "0.5")
    lab.wait_for(lambda: ((run.status() or {}).get("switches") or {}).get("hv1", {})
                 .get("programmed"), 30, "hv1 programmed")
    assert lab.flow_count(bridge) > 0
    report = run.stop()
    assert report["code"] == 0
    # The switch's connection, os-ken's listener and its threads, the API, the OVSDB
    # monitor, the watcher and the stats poll: all gone before the process exits.
    assert_nothing_left(report)


def test_the_openflow_listener_reports_a_taken_port_and_closes_what_it_opened() -> None:
    from os_ken.base import app_manager  # noqa: F401 (before controller: an import cycle)
    from os_ken.controller import controller

    from sdnctl.app.listener import openflow_listener

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with openflow_listener() as listeners:
            server = controller.StreamServer(("127.0.0.1", taken.getsockname()[1]), None)
            server.serve_forever()  # returns at once: nothing to serve
            with pytest.raises(OSError, match="in use"):
                listeners.wait_listening(1)

    original = controller.StreamServer
    with openflow_listener() as listeners:
        server = controller.StreamServer(("127.0.0.1", 0), None)
        port = server.server.getsockname()[1]
        assert listeners.wait_listening(1)
        with socket.create_connection(("127.0.0.1", port)):
            pass  # it listens
    assert controller.StreamServer is original
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


@pytest.mark.needs("etcd")
def test_an_openflow_port_taken_during_start_up_ends_it_and_the_campaign(lab) -> None:
    """The port is free when the daemon checks it and taken (by someone else) before
    os-ken listens: the daemon used to run deaf with a dead listener thread. Here it
    exits 1 saying so, after it had won the etcd lease, which it gives back."""
    from sdnctl.ha.etcd import EtcdStore
    from sdnctl.ha.server import start_etcd

    etcd = start_etcd(lab.tmp)
    lab.cleanup.add(f"etcd pid {etcd.proc.pid}", etcd.stop)
    of_port = lab.free_port()
    missing = lab.tmp / "no-ovsdb.sock"  # start-up waits 5 s for it: time to take the port
    run = Run(lab, *files(lab), "--api", f"127.0.0.1:{lab.free_port()}",
              "--listen", f"127.0.0.1:{of_port}", "--ovsdb", f"unix:{missing}",
              "--etcd", etcd.url)
    status = lab.wait_for(lambda: (run.status() or {}).get("ha", {}).get("leading"), 5,
                          "leading, while waiting for OVSDB")
    assert status and run.status()["daemon"]["startup"]["phase"] == "reading OVSDB"
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", of_port))
        taken.listen()
        report = run.finish(60)
    log = run.log_text()
    assert report["code"] == 1, log
    assert f"sdnctl run: cannot listen for OpenFlow on tcp:127.0.0.1:{of_port}: Address " \
           "already in use" in log
    assert "Traceback" not in log
    assert_nothing_left(report)  # os-ken's apps, the API, the monitor, the campaign
    assert EtcdStore(etcd.url).read().leader is None  # the lease was given back
