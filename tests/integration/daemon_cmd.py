"""`python -m sdnctl.daemon` with any command-line options, for the tests that need
options `conftest.start_daemon` does not pass (TLS, tokens, the stats interval).
The process is registered with the test's cleanup registry."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class DaemonProc:
    proc: subprocess.Popen[bytes]
    api: str
    log: Path

    def stop(self, timeout: float = 10.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start(lab, policy: Path, topology: Path, *options: str, api_port: int | None = None,
          env: dict[str, str] | None = None) -> DaemonProc:
    """The daemon with `options` (e.g. `--listen ssl:...`), its API on a free port."""
    api = f"127.0.0.1:{api_port or lab.free_port()}"
    log = lab.tmp / f"daemon-{time.monotonic_ns()}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sdnctl.daemon", "-p", str(policy), "-t", str(topology),
             "--api", api, *options],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=env,
        )
    lab.cleanup.process(proc)
    return DaemonProc(proc, api, log)


def one_hypervisor(lab, policy_text: str, *options: str) -> tuple[str, DaemonProc]:
    """A one-switch network (hv1, a random dpid, no links) under `policy_text`: its
    bridge, and the daemon (with `options`) once it has programmed it."""
    from sdnctl.client.api import wait_programmed

    dpid, of_port = lab.random_dpid(), lab.free_port()
    topo = lab.write("topology.yaml", f"""\
        version: 1
        switches:
          hv1: {{dpid: {dpid}, role: hypervisor}}
        links: []
        """)
    policy = lab.write("policy.yaml", policy_text)
    bridge = lab.bridge(dpid, controller_port=of_port)
    daemon = start(lab, policy, topo, "--listen", f"127.0.0.1:{of_port}", *options)
    wait_programmed(daemon.api, ["hv1"], timeout=30)
    return bridge, daemon
