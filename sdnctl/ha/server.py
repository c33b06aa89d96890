"""A throwaway single-member etcd on loopback, for tests and lab experiments.

Debian's `etcd-server` package provides /usr/bin/etcd; its systemd service is not
used. Each server gets its own data dir and free client and peer ports, and is
stopped by PID (its data dir goes with it).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ETCD = "etcd"
START_TIMEOUT_S = 30.0


class EtcdUnavailable(RuntimeError):
    """No etcd binary, or it did not come up."""


def etcd_binary() -> str | None:
    return shutil.which(ETCD)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EtcdServer:
    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: Path

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1.0) as resp:
                return bool(json.loads(resp.read()).get("health") in ("true", True))
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_etcd(log_dir: Path, name: str = "sdnctl-test") -> EtcdServer:
    """An etcd answering on http://127.0.0.1:PORT; EtcdUnavailable if it does not."""
    binary = etcd_binary()
    if binary is None:
        raise EtcdUnavailable("no etcd binary (apt-get install etcd-server)")
    data_dir = Path(tempfile.mkdtemp(prefix="sdnctl-etcd-"))
    client, peer = _free_port(), _free_port()
    while peer == client:
        peer = _free_port()
    url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = log_dir / f"etcd-{client}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--name", name, "--data-dir", str(data_dir),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
             "--initial-cluster", f"{name}={peer_url}", "--initial-cluster-state", "new"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    server = EtcdServer(proc, url, data_dir, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.healthy():
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(Exception):
                server.stop()
            raise EtcdUnavailable(f"etcd did not come up on {url} (log: {log})")
        time.sleep(0.1)
    return server
